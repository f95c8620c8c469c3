"""How a new caption meets the caption already on disk, and where the prefix goes.

`merged_line` is the one rule the CLI, the page's preview and the job process share: given the
existing first line (None: no caption file), the new tags (or one sentence), the policy and the
prefix tags, it returns the first line to write, or None when the image is left as it is."""
from __future__ import annotations

from workbench.captioning.tags import tag_key
from workbench.dataset.captions import join_tags, prepend_tag, split_tags


def merged_line(existing: str | None, new: list[str], policy: str, prefix: tuple[str, ...] = ()) -> str | None:
    """The first line to write, or None to leave the caption alone. An empty caption file counts
    as no caption (nothing to keep). `append` keeps every existing tag in place and adds the new
    ones that are not there yet (compared case-insensitively, `_` and space alike); the prefix tags come first, once."""
    has_caption = existing is not None and existing.strip() != ""
    if has_caption and policy == "skip":
        return None
    if has_caption and policy == "append":
        tags = split_tags(existing)
        known = {tag_key(t) for t in tags}
        tags += [t for t in _unique(new) if tag_key(t) not in known]
    else:
        tags = _unique(new)
    line = join_tags(tags)
    for tag in reversed(prefix):
        line = prepend_tag(line, tag)
    if has_caption and split_tags(line) == split_tags(existing):
        return None                      # nothing new: the file keeps its exact spelling
    return line


def _unique(tags: list[str]) -> list[str]:
    seen, out = set(), []
    for tag in tags:
        if tag.strip() and tag_key(tag) not in seen:
            seen.add(tag_key(tag))
            out.append(tag.strip())
    return out
