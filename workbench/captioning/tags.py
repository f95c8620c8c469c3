"""A WD14 tagger's tag list and the rule that turns its scores into caption tags.

selected_tags.csv has one row per model output: `tag_id,name,category,count`, category 9 a rating
(general / sensitive / questionable / explicit), 4 a character, 0 a general tag. A general tag is
kept when its score reaches `threshold`, a character when it reaches `character_threshold`;
characters come first, then general tags, each by score, highest first. Rating tags are only
written when asked for, and then only the most likely one (the four are one choice, not tags).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UserError

RATING, CHARACTER, GENERAL = 9, 4, 0
CATEGORY_NAMES = {RATING: "rating", CHARACTER: "character", GENERAL: "general"}
# Danbooru tags that are faces drawn with underscores: "^_^" must stay "^_^", not "^ ^"
EMOTICONS = frozenset({"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
                       "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||"})


@dataclass(frozen=True)
class TagTable:
    names: tuple[str, ...]        # as written in captions (underscores already turned into spaces)
    categories: tuple[int, ...]   # one per model output


@dataclass(frozen=True)
class ScoredTag:
    tag: str
    score: float                  # the model's sigmoid output, 0–1
    category: str                 # "rating", "character" or "general"


def caption_form(name: str) -> str:
    """Danbooru's `long_hair` as captions write it, `long hair`; emoticons keep their underscores."""
    name = name.strip()
    return name if name in EMOTICONS else name.replace("_", " ")


def tag_key(tag: str) -> str:
    """Tags compare case-insensitively and with `_` and space alike (so `long_hair` excludes `long hair`)."""
    tag = tag.strip().lower()
    return tag if tag in EMOTICONS else tag.replace("_", " ")


def read_tag_table(path: Path) -> TagTable:
    """Read selected_tags.csv; a missing column or a category that is not a number names the file."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the tag list ({exc.strerror})") from None
    if not rows or not {"name", "category"} <= set(rows[0]):
        raise UserError(f"{path}: not a WD14 tag list (needs the columns name and category)")
    try:
        categories = tuple(int(row["category"]) for row in rows)
    except (TypeError, ValueError):
        raise UserError(f"{path}: a category is not a number; is this the tagger's selected_tags.csv?") from None
    return TagTable(tuple(caption_form(row["name"]) for row in rows), categories)


@dataclass(frozen=True)
class TagRule:
    threshold: float = 0.35              # general tags: kept at this score or above
    character_threshold: float = 0.85    # character tags
    rating: bool = False                 # also write the most likely rating tag
    exclude: tuple[str, ...] = ()        # tags never written


def select_tags(scores, table: TagTable, rule: TagRule) -> list[ScoredTag]:
    """The caption tags of one image's scores, in caption order: rating (when asked), characters,
    general tags, each group by score, highest first; excluded tags dropped."""
    if len(scores) != len(table.names):
        raise UserError(f"the model gives {len(scores)} scores but its tag list has {len(table.names)} tags; "
                        "model.onnx and selected_tags.csv are from different taggers")
    excluded = {tag_key(t) for t in rule.exclude}
    picked = {RATING: [], CHARACTER: [], GENERAL: []}
    for name, category, score in zip(table.names, table.categories, scores):
        if category in picked and tag_key(name) not in excluded:
            picked[category].append(ScoredTag(name, float(score), CATEGORY_NAMES[category]))
    ratings = sorted(picked[RATING], key=lambda t: -t.score)[:1] if rule.rating else []
    characters = [t for t in picked[CHARACTER] if t.score >= rule.character_threshold]
    general = [t for t in picked[GENERAL] if t.score >= rule.threshold]
    return ratings + sorted(characters, key=lambda t: -t.score) + sorted(general, key=lambda t: -t.score)


def top_scores(scores, table: TagTable, count: int) -> list[ScoredTag]:
    """The `count` highest scores whatever the thresholds: what a preview shows next to the caption."""
    order = sorted(range(len(table.names)), key=lambda i: -float(scores[i]))[:count]
    return [ScoredTag(table.names[i], float(scores[i]), CATEGORY_NAMES.get(table.categories[i], "other"))
            for i in order]


@dataclass(frozen=True)
class Prediction:
    """What a model says about one image: the caption's tags (a sentence captioner gives one,
    the sentence) and the scores a preview shows beside them."""
    tags: list[str]
    scores: list[ScoredTag]
