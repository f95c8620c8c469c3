"""Huge images are the user's own photos, not an attack: PIL's decompression-bomb guard (an error
over 179 megapixels, a warning over 89) must not stop or litter plan, check, the thumbnails or the
trainer; `check` names them with what they cost."""
from __future__ import annotations

import json

import pytest

from tests.conftest import make_image, run_cli, write_config


def huge_png(path, side: int):
    """A real side × side PNG; 1-bit, so it is cheap to write and decode, yet PIL counts its pixels."""
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (side, side), 1).save(path)
    return path


@pytest.fixture
def dataset(tmp_path):
    make_image(tmp_path / "train" / "2_cat" / "small.png", (512, 512))
    huge_png(tmp_path / "train" / "2_cat" / "bomb-size.png", 14000)       # over PIL's error limit
    huge_png(tmp_path / "train" / "2_cat" / "warn-size.png", 12000)       # over PIL's warning limit
    return tmp_path / "train"


def test_plan_reads_huge_images_without_pils_guard(tmp_path, dataset):
    config = write_config(tmp_path / "c.toml", train_data_dir=str(dataset), max_train_epochs=1)
    done = run_cli("plan", config, "--json")
    assert done.returncode == 0, done.stderr
    assert "DecompressionBomb" not in done.stderr and done.stderr.strip() == ""
    sizes = {image["path"].rsplit("/", 1)[-1]: image["size"] for image in json.loads(done.stdout)["images"]}
    assert sizes["bomb-size.png"] == [14000, 14000] and sizes["warn-size.png"] == [12000, 12000]


def test_check_names_huge_images_and_what_they_cost(tmp_path, dataset):
    config = write_config(tmp_path / "c.toml", train_data_dir=str(dataset), max_train_epochs=1,
                          output_dir=str(tmp_path / "out"))
    done = run_cli("check", config, "--json")
    assert "DecompressionBomb" not in done.stderr and "Traceback" not in done.stderr
    findings = json.loads(done.stdout)
    huge = [f for f in findings if "megapixels" in f["message"]]
    assert len(huge) == 1 and huge[0]["level"] == "note"
    assert "2 image(s) over 64 megapixels (largest 14000×14000" in huge[0]["message"]
    assert [p.rsplit("/", 1)[-1] for p in huge[0]["files"]] == ["bomb-size.png", "warn-size.png"]
    assert not [f for f in findings if "not an image" in f["message"] or "corrupt" in f["message"]]


def test_thumbnails_and_the_trainer_load_huge_images(tmp_path, dataset):
    from trainer.data import load_pixels
    from workbench.config.schema import new_config
    from workbench.dataset.thumbnails import render
    from workbench.planning.plan import make_plan
    assert render(dataset / "2_cat" / "bomb-size.png", side=64)[:2] == b"\xff\xd8"      # a JPEG
    plan = make_plan(new_config(train_data_dir=str(dataset)))
    image = next(im for im in plan.images if im.info.path.name == "bomb-size.png")
    pixels = load_pixels(image)
    assert tuple(pixels.shape) == (3, image.bucket[1], image.bucket[0])
