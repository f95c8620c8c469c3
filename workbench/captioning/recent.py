"""The Caption tab's memory across reloads: the last settings used and the recent models
(WORKBENCH_HOME/caption-settings.json), saved when a run starts."""
from __future__ import annotations

import json

from workbench import workspace
from workbench.captioning.settings import CaptionSettings
from workbench.errors import UserError
from workbench.fileio import write_json_atomic

RECENT_MODELS = 8
DEFAULT_MODEL = "SmilingWolf/wd-vit-tagger-v3"


def _path():
    return workspace.home() / "caption-settings.json"


def load_last() -> tuple[CaptionSettings, list[str]]:
    """The last settings used (defaults, with a well-known tagger, the first time) and the recent models."""
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
        return CaptionSettings.from_json(data["settings"]), list(data.get("recent") or [])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return CaptionSettings(model=DEFAULT_MODEL), []


def save_last(settings: CaptionSettings) -> None:
    _, recent = load_last()
    recent = [settings.model] + [m for m in recent if m != settings.model]
    write_json_atomic(_path(), {"settings": settings.to_json(), "recent": recent[:RECENT_MODELS]})
