"""How the Parameters page lays the config out: topics (kohya_ss' LoRA tab), and inside each topic
its sections of related fields, each field under the words kohya_ss users know it by with its
sd-scripts key beside them.

A field's topic, section and label are in its metadata (workbench/config/schema.py, `opt`); this module
only orders the sections and reads them. A field without a section (one added without it) goes
in the topic's last section, MORE, so it is still drawn; one without a label shows its key.
"""
from __future__ import annotations

import dataclasses

from workbench.config.schema import (
    ADVANCED,
    BUCKETS,
    CAPTIONS,
    FIELDS,
    FOLDERS,
    LEARNING,
    LOGGING,
    MODEL,
    NETWORK,
    SAMPLES,
    SAVING,
    TRAINING,
    VALIDATION,
    fields_in_group,
)

MORE = "More"      # the section of a field declared without one

# each topic's sections in page order; a section is drawn as one column of its fields
SECTIONS: dict[str, tuple[str, ...]] = {
    MODEL: ("Base model", "VAE"),
    FOLDERS: ("Images", "Output"),
    TRAINING: ("Batches & length", "Precision", "Caching", "Speed & memory", "Data loading"),
    LEARNING: ("Learning rates", "Schedule", "Optimizer"),
    NETWORK: ("Structure", "Regularisation", "Continue from a LoRA"),
    BUCKETS: ("Resolution", "Bucket sizes"),
    CAPTIONS: ("Caption files", "Shuffle & keep", "Dropout", "Text encoder"),
    SAVING: ("Files", "When", "Keep", "State & resume"),
    SAMPLES: ("Prompts", "When"),
    VALIDATION: ("Held-out images", "When"),
    LOGGING: ("Where", "Weights & Biases"),
    ADVANCED: ("Noise", "Timesteps & SNR", "Loss", "Masked loss", "Augmentation"),
}


def field_label(name: str) -> str:
    """The words kohya_ss users know field `name` by ("Network rank (Dimension)"); the key if none."""
    return FIELDS[name].metadata.get("label") or name


def field_topic(name: str) -> str:
    return FIELDS[name].metadata["group"]


def field_section(name: str) -> str:
    return FIELDS[name].metadata.get("section") or MORE


def widget_label(name: str) -> str:
    """The widget's label: the kohya_ss words with the sd-scripts key beside them in code font
    (Markdown, as Streamlit draws labels); the key alone where the two are the same."""
    label = field_label(name)
    return f"`{name}`" if label == name else f"{label} `{name}`"


def where(name: str) -> str:
    """ "Topic › Section › Label" of a field, to point the user at it."""
    return f"{field_topic(name)} › {field_section(name)} › {field_label(name)}"


def sections_of(topic: str) -> list[tuple[str, list[dataclasses.Field]]]:
    """[(section, its fields in declaration order)] of a topic, in SECTIONS' order; sections
    not listed there (MORE, a new one) follow in the order their first field was declared."""
    by_section: dict[str, list[dataclasses.Field]] = {}
    for f in fields_in_group(topic):
        by_section.setdefault(field_section(f.name), []).append(f)
    listed = [s for s in SECTIONS.get(topic, ()) if s in by_section]
    return [(s, by_section[s]) for s in listed + [s for s in by_section if s not in listed]]
