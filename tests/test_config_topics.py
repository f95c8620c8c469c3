"""The Parameters page's layout as data: every field has kohya_ss words for a label, one topic and
a section of that topic; related fields share a section; a field added without them still shows."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import pytest

from workbench.config.schema import ADVANCED, FIELDS, GROUPS, TrainConfig, opt, to_toml
from workbench.config.topics import MORE, SECTIONS, field_label, field_section, sections_of, where, widget_label


def test_every_field_has_a_label_a_topic_and_a_section_of_that_topic():
    for name, f in FIELDS.items():
        assert f.metadata.get("label"), f"{name}: no label"
        assert f.metadata["group"] in GROUPS, name
        assert f.metadata.get("section") in SECTIONS[f.metadata["group"]], name


def test_topics_have_their_sections_in_page_order_and_no_empty_one():
    assert tuple(SECTIONS) == GROUPS
    for topic in GROUPS:
        assert [s for s, _ in sections_of(topic)] == list(SECTIONS[topic]), topic


def test_the_sections_hold_every_field_exactly_once():
    drawn = [f.name for topic in GROUPS for _, fields in sections_of(topic) for f in fields]
    assert sorted(drawn) == sorted(FIELDS)


@pytest.mark.parametrize("related", [
    ("train_batch_size", "max_train_epochs", "max_train_steps", "seed", "gradient_accumulation_steps"),
    ("mixed_precision", "full_bf16", "full_fp16", "fp8_base", "fp8_base_unet"),
    ("learning_rate", "unet_lr", "text_encoder_lr"),
    ("lr_scheduler", "lr_warmup_steps", "lr_scheduler_num_cycles", "lr_scheduler_power"),
    ("optimizer_type", "optimizer_args", "max_grad_norm"),
    ("network_module", "network_dim", "network_alpha", "network_args"),
    ("min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale"),
    ("shuffle_caption", "keep_tokens", "keep_tokens_separator"),
    ("loss_type", "huber_schedule", "huber_c", "huber_scale"),
    ("save_every_n_epochs", "save_every_n_steps"),
    ("save_state", "resume"),
    ("sample_every_n_epochs", "sample_every_n_steps"),
])
def test_related_fields_share_one_section(related):
    assert len({where(name).rsplit(" › ", 1)[0] for name in related}) == 1, [where(n) for n in related]


def test_labels_are_the_words_kohya_ss_users_know():
    assert {name: field_label(name) for name in ("network_dim", "network_alpha", "learning_rate", "lr_scheduler",
                                                 "max_train_epochs", "train_batch_size", "clip_skip",
                                                 "caption_extension")} == {
        "network_dim": "Network rank (Dimension)", "network_alpha": "Network alpha",
        "learning_rate": "Learning rate", "lr_scheduler": "LR scheduler", "max_train_epochs": "Max train epoch",
        "train_batch_size": "Train batch size", "clip_skip": "Clip skip", "caption_extension": "Caption extension"}


def test_the_widget_label_has_the_sd_scripts_key_beside_the_words():
    assert widget_label("network_dim") == "Network rank (Dimension) `network_dim`"
    assert where("network_dim") == "Network › Structure › Network rank (Dimension)"


@dataclass
class _Later:
    """A field as another branch may add it: the old opt() call, no label, no section."""
    new_option: int = opt(0, "Something new.", ADVANCED, (0, 1), min=0)


def test_a_field_declared_without_label_or_section_shows_its_key_in_the_last_section(monkeypatch):
    later = dataclasses.fields(_Later)[0]
    assert later.metadata["group"] == ADVANCED and later.metadata["choices"] == (0, 1)   # positional args kept
    monkeypatch.setitem(FIELDS, "new_option", later)
    assert (field_label("new_option"), field_section("new_option")) == ("new_option", MORE)
    assert widget_label("new_option") == "`new_option`"
    assert sections_of(ADVANCED)[-1] == (MORE, [later])


def test_grouped_toml_tables_are_bare_topic_names():
    tables = [line for line in to_toml(TrainConfig(), grouped=True).splitlines() if line.startswith("[")]
    assert "[learning_rate_schedule]" in tables and "[model]" in tables
    assert len(tables) == len(GROUPS) and all(re.fullmatch(r"\[[a-z_]+\]", t) for t in tables), tables
