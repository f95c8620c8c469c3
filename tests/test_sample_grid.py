"""sample_grid: real PNGs named as the trainer names them (workbench.runs.sample_prompts, which
trainer/sampling.py calls) become rows by epoch/step × columns by prompt, aligned, with gaps."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import make_image
from workbench.config.schema import new_config, save_toml
from workbench.runs.sample_prompts import parse_sample_name, sample_file_name, when_tag
from workbench.views.sample_grid import When, build_grid, has_samples, run_grid, run_prompts, side_by_side

T0 = 1_800_000_000.0        # a fixed local time for the names' stamps (seconds since the epoch)
PROMPTS = "# a comment\nlorat, red circle --w 128 --h 128 --d 1\n\nlorat, yellow square --n blurry\n"


def sample(run_dir: Path, index: int, epoch: int | None = None, step: int = 0, seed: int | None = None,
           name: str = "my_lora_v2_000100", later_s: float = 0.0) -> Path:
    """A real PNG where the trainer would write it: <name>_<e000002|000150>_<index>_<stamp>[_seed].png"""
    file = sample_file_name(name, when_tag(epoch, step), index, seed, T0 + later_s)
    return make_image(run_dir / "samples" / file, (16, 16), (10 * index, 40, 200))


def run_with_prompts(tmp_path: Path, name: str = "run", prompts: str = PROMPTS) -> Path:
    run_dir = tmp_path / name
    (tmp_path / f"{name}-prompts.txt").write_text(prompts)
    run_dir.mkdir()
    save_toml(new_config(output_name="my_lora_v2_000100", sample_prompts=str(tmp_path / f"{name}-prompts.txt")),
              run_dir / "config.toml")
    return run_dir


def test_a_sample_name_is_read_back_even_when_the_output_name_has_underscores_and_digits():
    epoch = parse_sample_name(sample_file_name("my_lora_v2_000100", when_tag(2, 300), 1, 7, T0))
    assert (epoch.kind, epoch.number, epoch.index) == ("epoch", 2, 1)
    step = parse_sample_name(sample_file_name("a_000001", when_tag(None, 150), 0, None, T0))
    assert (step.kind, step.number, step.index) == ("step", 150, 0)
    assert parse_sample_name("notes.png") is None and parse_sample_name("x_e000001_00_2026.png") is None


def test_rows_are_epochs_in_order_columns_are_the_prompt_file_and_a_missing_sample_is_a_gap(tmp_path):
    run_dir = run_with_prompts(tmp_path)
    for epoch in (1, 2, 10):
        sample(run_dir, 0, epoch, seed=1)
    sample(run_dir, 1, 1)
    sample(run_dir, 1, 10)                      # epoch 2 of the second prompt is missing
    make_image(run_dir / "samples" / "cover.png", (8, 8))
    grid = run_grid(run_dir)
    assert grid.prompts == ["lorat, red circle", "lorat, yellow square"]
    assert [when for when, _ in grid.rows] == [When("epoch", 1), When("epoch", 2), When("epoch", 10)]
    assert all(len(cells) == 2 for _, cells in grid.rows)
    second = grid.rows[1][1]
    assert second[0].name.startswith("my_lora_v2_000100_e000002_00_") and second[1] is None
    assert [when.label() for when, _ in grid.newest_first()] == ["epoch 10", "epoch 2", "epoch 1"]
    assert [p.name for p in grid.others] == ["cover.png"]


def test_step_rows_and_the_later_render_of_one_cell_wins(tmp_path):
    run_dir = run_with_prompts(tmp_path)
    sample(run_dir, 0, step=1200)
    sample(run_dir, 0, step=150)
    first = sample(run_dir, 1, step=150)
    again = sample(run_dir, 1, step=150, later_s=90)     # a resumed run rendered step 150 again
    grid = run_grid(run_dir)
    assert [when.label() for when, _ in grid.rows] == ["step 150", "step 1200"]
    assert grid.rows[0][1][1] == again != first


def test_a_prompt_index_beyond_the_file_gets_a_column_and_a_header(tmp_path):
    grid = build_grid([sample(tmp_path, 0, 1), sample(tmp_path, 2, 1)], ["only one prompt"])
    assert grid.prompts == ["only one prompt", "prompt 1", "prompt 2"]
    assert grid.rows[0][1][1] is None and grid.rows[0][1][2] is not None


def test_the_prompts_the_run_rendered_win_over_an_edited_prompt_file(tmp_path):
    run_dir = run_with_prompts(tmp_path)
    rendered = sample(run_dir, 1, 1)
    (tmp_path / "run-prompts.txt").write_text("edited first\n")
    events = [{"event": "sample", "path": str(rendered), "prompt": "lorat, yellow square", "step": 9}]
    assert run_prompts(run_dir, events) == ["edited first", "lorat, yellow square"]


def test_an_unreadable_prompt_file_leaves_numbered_headers(tmp_path):
    run_dir = run_with_prompts(tmp_path)
    (tmp_path / "run-prompts.txt").unlink()
    sample(run_dir, 1, 1)
    assert run_grid(run_dir).prompts == ["prompt 0", "prompt 1"]
    assert run_grid(tmp_path / "no-such-run").rows == []


def test_two_runs_side_by_side_by_prompt_text_rows_aligned_by_epoch(tmp_path):
    mine = run_with_prompts(tmp_path, "a")
    theirs = run_with_prompts(tmp_path, "b", "lorat, yellow square\nlorat, red circle\n")   # order swapped
    for epoch in (1, 2, 3):
        sample(mine, 1, epoch)
    for epoch in (2, 3, 4):
        sample(theirs, 0, epoch)               # the yellow square is their prompt 0
    sample(theirs, 1, 4)
    compared = side_by_side(run_grid(mine), run_grid(theirs), 1)
    assert (compared.prompt, compared.other_index, compared.same_text) == ("lorat, yellow square", 0, True)
    assert [when.number for when, _, _ in compared.rows] == [1, 2, 3, 4]
    first, *_, last = compared.rows
    assert first[1] is not None and first[2] is None and last[1] is None
    assert "_e000004_00_" in last[2].name


def test_a_prompt_the_other_run_lacks_falls_back_to_the_same_index(tmp_path):
    mine = run_with_prompts(tmp_path, "a")
    theirs = run_with_prompts(tmp_path, "b", "something else\n")
    sample(mine, 0, 1)
    sample(theirs, 0, 1)
    compared = side_by_side(run_grid(mine), run_grid(theirs), 0)
    assert (compared.other_index, compared.same_text) == (0, False)
    assert side_by_side(run_grid(mine), run_grid(theirs), 1).other_index is None


def test_has_samples_is_true_only_for_a_run_with_a_named_sample(tmp_path):
    run = tmp_path / "run"
    assert not has_samples(run)
    make_image(run / "samples" / "notes.png", (8, 8))
    assert not has_samples(run)
    make_image(run / "samples" / sample_file_name("lora", when_tag(1, 6), 0, None, T0), (8, 8))
    assert has_samples(run)
