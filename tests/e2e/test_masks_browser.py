"""The Dataset page's loss-mask view in chromium against the real server: with alpha_mask in the
config, "Show loss masks" turns each thumbnail's transparent (ignored) part grey-red, keeps the
trained part in colour, and stays on through a refresh (it is in the URL)."""
from __future__ import annotations

import io

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, shot, start_server, stop_server, wait_idle

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def masked_server(tmp_path_factory):
    from workbench.config.schema import TrainConfig, save_toml
    home = tmp_path_factory.mktemp("e2e-masks")
    folder = home / "data" / "2_blue"
    folder.mkdir(parents=True)
    for i in range(3):
        im = Image.new("RGBA", (128, 128), (30, 60, 220, 0))          # blue everywhere, transparent ...
        im.paste((30, 60, 220, 255), (32, 32, 96, 96))                 # ... but in the middle
        im.save(folder / f"blue{i}.png")
        (folder / f"blue{i}.txt").write_text("blue square")
    save_toml(TrainConfig(train_data_dir=str(home / "data"), output_dir=str(home / "out"), alpha_mask=True,
                          max_train_epochs=1), home / "current.toml")
    ARTIFACTS.mkdir(exist_ok=True)
    server = start_server(home, ARTIFACTS / "streamlit-masks.log")
    yield server
    stop_server(server)


def first_thumbnail(page) -> Image.Image:
    image = page.get_by_test_id("stImage").first
    image.scroll_into_view_if_needed()
    return Image.open(io.BytesIO(image.screenshot())).convert("RGB")


def test_mask_toggle_tints_what_the_loss_ignores(page, masked_server):
    page.goto(f"{masked_server.url}/Dataset")
    wait_idle(page, 120_000)
    plain = first_thumbnail(page)
    corner, middle = (4, 4), (plain.width // 2, plain.height // 2)
    assert plain.getpixel(corner)[0] > 230 and plain.getpixel(corner)[2] > 230       # transparent: drawn white
    page.get_by_text("Show loss masks", exact=True).click()
    wait_idle(page)
    expect(page.get_by_text("Grey-red: what the loss ignores", exact=False)).to_be_visible()
    masked = first_thumbnail(page)
    r, g, b = masked.getpixel(corner)
    assert r > g + 40 and r > b + 20                      # ignored: grey-red
    r, g, b = masked.getpixel(middle)
    assert b > r + 100                                   # trained: still blue
    assert "masks=true" in page.url
    shot(page, "masks-dataset-loss-masks")
    page.reload()                                        # the view is in the URL
    wait_idle(page)
    r, g, b = first_thumbnail(page).getpixel(corner)
    assert r > g + 40
