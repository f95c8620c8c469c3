"""What a new user met on the pages (issue 13), in headless chromium against the real server:
a Hugging Face repo id as the base model (from a hub-layout cache holding the demo model, offline),
the quick pick of local models. Its own server, with HF_HUB_CACHE pointing at a temporary cache."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import write_checkpoint
from tests.e2e.conftest import ARTIFACTS, shot, start_server, stop_server, wait_idle
from tests.e2e.test_browser import go, open_page
from tests.hub_cache import fill_hub_cache

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
SDXL_KEYS = {"model.diffusion_model.input_blocks.0.0.weight": (4, 4), "conditioner.embedders.1.model.x": (2,)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ARTIFACTS.mkdir(exist_ok=True)
    base = tmp_path_factory.mktemp("friction")
    srv = start_server(base / "home", ARTIFACTS / "streamlit-friction.log",
                       {"HF_HUB_CACHE": str(base / "hf"), "HF_HUB_OFFLINE": "1"})
    srv.hf_cache = base / "hf"
    yield srv
    stop_server(srv)


def set_model(page, value: str) -> None:
    page.get_by_role("tab", name="Source model").click()
    wait_idle(page)
    field = page.get_by_label("pretrained_model_name_or_path", exact=True)
    field.fill(value)
    field.press("Enter")
    wait_idle(page)


def test_a_cached_repo_id_is_said_cached_with_its_family(page, server):
    open_page(page, server)                                   # the first start builds the demo
    fill_hub_cache(server.hf_cache, "acme/tiny-sd1", server.home / "demo" / "models" / "tiny-sd1")
    go(page, "Parameters")
    set_model(page, "acme/tiny-sd1")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text(re.compile(r"acme/tiny-sd1: SD 1\.x, in the Hugging Face cache"))).to_be_visible()
    expect(main.get_by_text("Model: SD 1.x (diffusers", exact=False)).to_be_visible()
    assert 'pretrained_model_name_or_path = "acme/tiny-sd1"' in (server.home / "current.toml").read_text()
    shot(page, "13-1-parameters-repo-id-cached")
    set_model(page, "acme/not-here")
    expect(main.get_by_text("acme/not-here: not in the Hugging Face cache", exact=False).first).to_be_visible()


def test_quick_pick_finds_an_a1111_checkpoint_with_its_family(page, server, tmp_path):
    webui = tmp_path / "stable-diffusion-webui"
    checkpoint = write_checkpoint(webui / "models" / "Stable-diffusion" / "juggernaut-xl.safetensors", SDXL_KEYS)
    open_page(page, server)
    go(page, "Parameters")
    page.get_by_text("Pick a model", exact=False).click()
    folder = page.get_by_label(re.compile("Add a folder to look in"))
    folder.fill(str(webui))
    folder.press("Enter")
    wait_idle(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Model").click()
    option = page.get_by_role("option", name=re.compile(r"juggernaut-xl\.safetensors — SDXL"))
    expect(option).to_be_visible()
    expect(page.get_by_role("option", name="acme/tiny-sd1 — SD 1.x (Hugging Face cache)", exact=True)).to_have_count(1)
    option.click()
    wait_idle(page)
    page.get_by_role("button", name="Use this model").click()
    wait_idle(page)
    assert f'pretrained_model_name_or_path = "{checkpoint}"' in (server.home / "current.toml").read_text()
    main = page.get_by_test_id("stMain")
    expect(main.get_by_text("Model: SDXL", exact=False)).to_be_visible()
    expect(main.get_by_text("set sdxl = true", exact=False)).to_be_visible()     # the demo config says SD1
    shot(page, "13-2-parameters-quick-pick")
