"""Opening the user's image files: one rule for what "a readable image" is, for the dataset scan,
the thumbnails, preflight and the trainer.

PIL refuses images over 2 × 89.5 megapixels (DecompressionBombError) and warns above 89.5: a guard
against hostile uploads. The workbench only opens the user's own dataset files, and a huge photo
is a cost to report (`workbench check` names it), not an attack; so the guard is off here and a
14000 × 14000 image is read, planned and trained like any other."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from workbench.errors import UserError

# above this an image costs real time and memory to decode every time it is loaded (preflight says so)
HUGE_PIXELS = 64_000_000


class UnreadableImage(UserError):
    """The message names the file: "<path>: not a readable image (<why>); fix or remove the file";
    `why` alone is what preflight lists beside the file."""

    def __init__(self, name, why: str):
        super().__init__(f"{name}: not a readable image ({why}); fix or remove the file")
        self.why = why


def why_unreadable(exc: Exception) -> str:
    """What is wrong with an image PIL failed on, in a few words."""
    from PIL import UnidentifiedImageError
    if isinstance(exc, UnidentifiedImageError):
        return "not an image PIL can open"
    return "truncated" if "truncated" in str(exc) else f"corrupt ({exc})"


def pil_image():
    """PIL's Image module, with its decompression-bomb limit lifted (see the module docstring)."""
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None
    return Image


@contextmanager
def open_image(source: Path | str | IO[bytes], name: Path | str | None = None) -> Iterator:
    """A PIL image of a file (or bytes in memory, named `name`); any failure to read it, here or
    while the caller decodes it, is an UnreadableImage naming the file."""
    from PIL import UnidentifiedImageError
    try:
        with pil_image().open(source) as im:
            yield im
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:   # PIL: SyntaxError for a broken PNG
        raise UnreadableImage(name or source, why_unreadable(exc)) from None


def huge(size: tuple[int, int]) -> bool:
    return size[0] * size[1] > HUGE_PIXELS
