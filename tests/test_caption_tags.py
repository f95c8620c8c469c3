"""The tagger's pure rules and its input: tag selection (thresholds, character / general / rating,
order, underscores, exclude), the existing-caption policy, and kohya's preprocessing (white
padding, centring, BGR, 0–255) checked against a real tiny ONNX tagger whose scores follow the
image's mean colour (tests/caption_models.py)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.caption_models import build_tagger, expected_scores
from workbench.captioning.models import TAGGER, resolve_model
from workbench.captioning.policy import merged_line
from workbench.captioning.tags import TagRule, TagTable, caption_form, read_tag_table, select_tags
from workbench.captioning.wd14 import Tagger, tagger_input, to_square_rgb
from workbench.errors import UserError


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory):
    return build_tagger(tmp_path_factory.mktemp("tagger"))


def tagger(folder, **rule) -> Tagger:
    return Tagger(resolve_model(str(folder)), TagRule(**rule))


def solid(rgb, size=(32, 32)):
    return Image.new("RGB", size, rgb)


def scores_of(prediction) -> dict[str, float]:
    return {s.tag: s.score for s in prediction.scores}


# ---------------------------------------------------------------- selection (pure)

TABLE = TagTable(("general", "sensitive", "hero", "long hair", "smile", "^_^"), (9, 9, 4, 0, 0, 0))


def test_characters_first_then_general_each_by_score_rating_only_when_asked():
    scores = [0.9, 0.2, 0.86, 0.4, 0.7, 0.1]
    assert [t.tag for t in select_tags(scores, TABLE, TagRule())] == ["hero", "smile", "long hair"]
    assert [t.tag for t in select_tags(scores, TABLE, TagRule(rating=True))] == ["general", "hero", "smile",
                                                                                 "long hair"]


def test_thresholds_are_inclusive_and_separate_for_characters():
    scores = [0.9, 0.2, 0.84, 0.35, 0.34, 0.1]
    picked = [t.tag for t in select_tags(scores, TABLE, TagRule(threshold=0.35, character_threshold=0.85))]
    assert picked == ["long hair"]                     # 0.35 kept, 0.34 not; the character at 0.84 not
    picked = [t.tag for t in select_tags(scores, TABLE, TagRule(threshold=0.35, character_threshold=0.84))]
    assert picked == ["hero", "long hair"]


def test_exclude_matches_with_underscores_or_spaces_and_any_case():
    scores = [0.9, 0.2, 0.9, 0.9, 0.9, 0.9]
    picked = [t.tag for t in select_tags(scores, TABLE, TagRule(exclude=("Long_Hair", "^_^")))]
    assert picked == ["hero", "smile"]


def test_underscores_become_spaces_except_in_emoticons():
    assert caption_form("long_hair") == "long hair"
    assert caption_form("^_^") == "^_^" and caption_form(">_<") == ">_<"


def test_tag_list_errors_name_the_file(tmp_path):
    bad = tmp_path / "selected_tags.csv"
    bad.write_text("id,label\n1,x\n")
    with pytest.raises(UserError, match="selected_tags.csv: not a WD14 tag list"):
        read_tag_table(bad)
    with pytest.raises(UserError, match="different taggers"):
        select_tags([0.5], TABLE, TagRule())


# ---------------------------------------------------------------- existing captions (pure)

@pytest.mark.parametrize("existing, policy, expected", [
    (None, "skip", "ohwx, red, blue"),
    ("", "skip", "ohwx, red, blue"),                    # an empty file has nothing to keep
    ("mine, red", "skip", None),
    ("mine, Red", "append", "ohwx, mine, Red, blue"),   # no duplicate, case-insensitive; old tags in place
    ("mine, red", "overwrite", "ohwx, red, blue"),
    ("ohwx, red, blue", "append", None),                 # nothing new: left as it is
    ("red, ohwx", "overwrite", "ohwx, red, blue"),       # the prefix once, first
])
def test_existing_caption_policy_and_prefix(existing, policy, expected):
    assert merged_line(existing, ["red", "blue", "red"], policy, ("ohwx",)) == expected


def test_append_treats_underscores_and_spaces_alike():
    assert merged_line("long_hair", ["long hair", "smile"], "append") == "long_hair, smile"


# ---------------------------------------------------------------- preprocessing against the real graph

def test_input_is_bgr_in_0_255_nhwc():
    batch = tagger_input([solid((255, 0, 0)), solid((0, 0, 255))], 16)
    assert batch.shape == (2, 16, 16, 3) and batch.dtype == np.float32
    assert batch[0, 5, 5].tolist() == [0.0, 0.0, 255.0]         # red arrives as B=0, G=0, R=255
    assert batch[1, 5, 5].tolist() == [255.0, 0.0, 0.0]


def test_non_square_image_is_centred_on_white():
    square = np.asarray(to_square_rgb(solid((255, 0, 0), (40, 20))))
    assert square.shape == (40, 40, 3)
    assert square[:10].min() == 255 and square[30:].min() == 255        # white bands above and below
    assert square[10:30].reshape(-1, 3).tolist() == [[255, 0, 0]] * 800  # the image in the middle
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert np.asarray(to_square_rgb(transparent)).min() == 255         # transparency becomes white


def test_tagger_scores_follow_the_bgr_means(tagger_dir):
    red, blue = tagger(tagger_dir).predict([solid((255, 0, 0)), solid((0, 0, 255))])
    for prediction, bgr in ((red, (0, 0, 255)), (blue, (255, 0, 0))):
        want = {caption_form(k): v for k, v in expected_scores(bgr).items()}
        assert scores_of(prediction) == pytest.approx(want, abs=1e-4)
    assert red.tags == ["red theme"]          # fed RGB, the red image would come out as "blue theme"
    assert blue.tags == ["blue hero", "blue theme"]


def test_wide_image_is_padded_white_before_resizing(tagger_dir):
    (wide,) = tagger(tagger_dir).predict([solid((255, 0, 0), (64, 32))])
    # half the square is white: G and B average 127.5; stretched, they would stay 0 (black padding: 0 too)
    want = {caption_form(k): v for k, v in expected_scores((127.5, 127.5, 255)).items()}
    assert scores_of(wide) == pytest.approx(want, abs=1e-3)
    assert wide.tags[0] == "red theme" and set(wide.tags[1:]) == {"blue theme", "green theme"}   # 0.5 each


def test_character_and_general_thresholds_on_the_model(tagger_dir):
    image = solid((0, 0, 191))                 # B = 0.75: blue hero and blue theme score sigmoid(3) = 0.953
    (default,) = tagger(tagger_dir).predict([image])
    assert default.tags == ["blue hero", "blue theme"]
    (strict,) = tagger(tagger_dir, character_threshold=0.96, threshold=0.96).predict([image])
    assert strict.tags == []
    (rated,) = tagger(tagger_dir, rating=True, exclude=("blue_theme",)).predict([image])
    assert rated.tags == ["general", "blue hero"]


def test_emoticon_keeps_its_underscore(tagger_dir):
    (green,) = tagger(tagger_dir).predict([solid((0, 255, 0))])
    assert green.tags == ["green theme", "^_^"]


def test_fixed_batch_model_gives_the_same_scores(tmp_path, tagger_dir):
    images = [solid(c) for c in ((255, 0, 0), (0, 255, 0), (10, 20, 200))]
    fixed = tagger(build_tagger(tmp_path / "fixed", fixed_batch=1)).predict(images)
    dynamic = tagger(tagger_dir).predict(images)
    assert [scores_of(p) for p in fixed] == [pytest.approx(scores_of(p), abs=1e-6) for p in dynamic]


def test_model_kind_is_read_from_the_folder(tmp_path, tagger_dir):
    assert resolve_model(str(tagger_dir)).kind == TAGGER
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds neither model.onnx"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no such folder, and not a Hugging Face repo id"):
        resolve_model(str(tmp_path / "missing"))
