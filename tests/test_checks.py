"""Preflight on real files: each finding names the field or the files; the exit rule of `check`."""
from __future__ import annotations

import json

from tests.conftest import make_image, run_cli, write_caption, write_checkpoint, write_config
from tests.test_modelinfo import SD1, SDXL
from workbench.config.schema import TrainConfig, new_config
from workbench.runs.preflight import BackgroundCheck, cuda_available, failing, run_checks


def clean_setup(tmp_path, **changes) -> TrainConfig:
    """An SD1 checkpoint, an empty output folder and one captioned 512×512 image: nothing to report."""
    image = make_image(tmp_path / "train" / "5_sks dog" / "a.png", (512, 512))
    write_caption(image, "sks dog, sitting")
    (tmp_path / "out").mkdir()
    model = write_checkpoint(tmp_path / "sd15.safetensors", SD1)
    return new_config(pretrained_model_name_or_path=str(model), train_data_dir=str(tmp_path / "train"),
                       output_dir=str(tmp_path / "out"), output_name="dog", optimizer_type="AdamW",
                       mixed_precision="bf16", **changes)         # fp16 needs a CUDA GPU


def about(findings, *words):
    """The findings whose message holds every word."""
    return [f for f in findings if all(w in f.message for w in words)]


def names(finding):
    return sorted(p.rsplit("/", 1)[1] for p in finding.files)


def test_a_clean_setup_has_no_findings(tmp_path):
    findings = run_checks(clean_setup(tmp_path), cuda=False)
    assert findings == [] and not failing(findings)


def test_unreadable_truncated_and_zero_byte_images_are_errors_naming_the_files(tmp_path):
    cfg = clean_setup(tmp_path)
    folder = tmp_path / "train" / "5_sks dog"
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    good = make_image(folder / "full.jpg", (512, 512)).read_bytes()
    (folder / "half.jpg").write_bytes(good[: len(good) // 2])
    findings = run_checks(cfg, cuda=False)
    [zero] = about(findings, "zero-byte")
    [not_image] = about(findings, "not an image PIL can open")
    [truncated] = about(findings, "truncated")
    assert (names(zero), names(not_image), names(truncated)) == (["empty.png"], ["text.jpg"], ["half.jpg"])
    assert {zero.level, not_image.level, truncated.level} == {"error"}


def test_images_smaller_than_their_bucket_are_reported_as_upscaled(tmp_path):
    cfg = clean_setup(tmp_path)
    make_image(tmp_path / "train" / "5_sks dog" / "small.png", (200, 200))
    make_image(tmp_path / "train" / "5_sks dog" / "big.png", (1024, 1024))
    [f] = about(run_checks(cfg, cuda=False), "upscaled")
    assert f.level == "warning" and names(f) == ["small.png"] and "×2.56" in f.message
    assert about(run_checks(cfg.replace(bucket_no_upscale=True), cuda=False), "upscaled") == []


def test_captions_under_another_extension_are_the_silent_trap(tmp_path):
    cfg = clean_setup(tmp_path)
    folder = tmp_path / "train" / "5_sks dog"
    write_caption(make_image(folder / "b.png", (512, 512)), "sks dog", ".caption")
    write_caption(make_image(folder / "c.png", (512, 512)), "sks dog", ".TXT")
    findings = run_checks(cfg, cuda=False)
    by_ext = {f.message.split(" are ")[1].split(" files")[0]: f for f in about(findings, "silently ignored")}
    assert set(by_ext) == {".caption", ".TXT"}
    assert names(by_ext[".caption"]) == ["b.caption"] and by_ext[".caption"].field == "caption_extension"
    assert "caption_extension = '.caption'" in by_ext[".caption"].message
    assert about(findings, "have no caption") == []                # reported once, as the extension trap


def test_missing_empty_blank_bom_and_non_utf8_captions(tmp_path):
    cfg = clean_setup(tmp_path)
    folder = tmp_path / "train" / "5_sks dog"
    make_image(folder / "missing.png", (512, 512))
    (make_image(folder / "zero.png", (512, 512)).with_suffix(".txt")).write_bytes(b"")
    write_caption(make_image(folder / "blank.png", (512, 512)), "\nsecond line")
    write_caption(make_image(folder / "bom.png", (512, 512)), "\ufeffsks dog")
    (make_image(folder / "latin.png", (512, 512)).with_suffix(".txt")).write_bytes("caf\xe9".encode("latin-1"))
    findings = run_checks(cfg, cuda=False)
    [missing] = about(findings, "have no caption")
    assert missing.level == "warning" and names(missing) == ["missing.png"] and "'sks dog'" in missing.message
    [empty] = about(findings, "empty caption file")
    [not_utf8] = about(findings, "not UTF-8")
    [blank] = about(findings, "empty first line")
    [bom] = about(findings, "byte-order mark")
    assert (empty.level, not_utf8.level, blank.level, bom.level) == ("error", "error", "warning", "warning")
    assert (names(empty), names(not_utf8), names(blank), names(bom)) == (["zero.txt"], ["latin.txt"],
                                                                        ["blank.txt"], ["bom.txt"])


def test_uncaptioned_folders_use_class_tokens_as_a_note_or_nothing_as_a_warning(tmp_path):
    cfg = clean_setup(tmp_path)
    make_image(tmp_path / "train" / "2_cat" / "x.png", (512, 512), color=(1, 1, 1))
    make_image(tmp_path / "train" / "3" / "y.png", (512, 512), color=(2, 2, 2))
    findings = run_checks(cfg, cuda=False)
    [note] = about(findings, "2_cat: no caption files")
    assert note.level == "note" and "'cat'" in note.message
    [empty] = about(findings, "in 3 have no caption", "empty caption")
    assert empty.level == "warning" and names(empty) == ["y.png"]


def test_duplicates_by_content_hash(tmp_path):
    cfg = clean_setup(tmp_path)
    folder = tmp_path / "train"
    (folder / "2_copy").mkdir()
    (folder / "2_copy" / "same.png").write_bytes((folder / "5_sks dog" / "a.png").read_bytes())
    make_image(folder / "2_copy" / "other.png", (512, 512), color=(1, 2, 3))
    [dup] = about(run_checks(cfg, cuda=False), "same image")
    assert dup.level == "warning" and names(dup) == ["a.png", "same.png"]


def test_folders_and_loose_images_that_sd_scripts_skips(tmp_path):
    cfg = clean_setup(tmp_path)
    make_image(tmp_path / "train" / "abc_x" / "a.png", (512, 512))
    make_image(tmp_path / "train" / "0_x" / "a.png", (512, 512))
    make_image(tmp_path / "train" / "loose.png", (512, 512))
    (tmp_path / "train" / "4_empty").mkdir()
    findings = run_checks(cfg, cuda=False)
    assert {f.files[0].rsplit("/", 1)[1] for f in about(findings, "folder '")} == {"abc_x", "0_x"}
    [loose] = about(findings, "directly in")
    assert names(loose) == ["loose.png"] and loose.field == "train_data_dir"
    assert about(findings, "4_empty: no images")


def test_output_that_would_be_overwritten(tmp_path):
    cfg = clean_setup(tmp_path, max_train_epochs=4, save_every_n_epochs=1)
    (tmp_path / "out" / "dog.safetensors").write_bytes(b"x")
    (tmp_path / "out" / "dog-000002.safetensors").write_bytes(b"x")
    (tmp_path / "out" / "dog-000009.safetensors").write_bytes(b"x")   # a 4-epoch run never writes it
    (tmp_path / "out" / "dogs.safetensors").write_bytes(b"x")          # another name: fine
    [f] = about(run_checks(cfg, cuda=False), "would overwrite")
    assert f.level == "error" and f.field == "output_name"
    assert names(f) == ["dog-000002.safetensors", "dog.safetensors"]


def test_model_missing_or_of_another_family(tmp_path):
    cfg = clean_setup(tmp_path)
    [missing] = about(run_checks(cfg.replace(pretrained_model_name_or_path=str(tmp_path / "no.safetensors")),
                                 cuda=False), "model not found")
    assert missing.level == "error" and missing.field == "pretrained_model_name_or_path"
    xl = write_checkpoint(tmp_path / "xl.safetensors", SDXL)
    [clash] = about(run_checks(cfg.replace(pretrained_model_name_or_path=str(xl)), cuda=False), "SDXL model")
    assert clash.level == "error" and "set sdxl = true" in clash.message
    assert about(run_checks(cfg.replace(pretrained_model_name_or_path=str(xl), sdxl=True, resolution="1024,1024"),
                            cuda=False), "SDXL model") == []


def test_eight_bit_optimizer_without_cuda_and_config_findings(tmp_path):
    eight = clean_setup(tmp_path).replace(optimizer_type="AdamW8bit", network_alpha=16)
    findings = run_checks(eight, ["netwrok_dim"], cuda=False)
    assert about(findings, "8-bit optimizer")[0].field == "optimizer_type"
    assert about(run_checks(eight, cuda=True), "8-bit optimizer") == []
    assert about(findings, "alpha 16 is above rank 8")[0].level == "warning"
    assert about(findings, "unknown key")[0].field == "netwrok_dim"
    assert [f.level for f in findings] == sorted((f.level for f in findings), key=["error", "warning", "note"].index)


def test_torch_compile_without_cuda_is_a_warning_and_cudagraphs_an_error(tmp_path):
    compiled = clean_setup(tmp_path).replace(torch_compile=True)
    [slow] = about(run_checks(compiled, cuda=False), "compiling takes minutes")
    assert (slow.level, slow.field) == ("warning", "torch_compile")
    [graphs] = about(run_checks(compiled.replace(dynamo_backend="cudagraphs"), cuda=False), "needs a CUDA GPU")
    assert (graphs.level, graphs.field) == ("error", "dynamo_backend")
    assert about(run_checks(compiled.replace(dynamo_backend="cudagraphs"), cuda=True), "CUDA") == []
    assert about(run_checks(compiled.replace(torch_compile=False), cuda=False), "compil") == []


def test_mixed_case_extensions_are_a_note(tmp_path):
    cfg = clean_setup(tmp_path)
    write_caption(make_image(tmp_path / "train" / "5_sks dog" / "b.JpG", (512, 512), color=(5, 5, 5)), "x")
    write_caption(make_image(tmp_path / "train" / "5_sks dog" / "c.PNG", (512, 512), color=(6, 6, 6)), "y")
    findings = run_checks(cfg, cuda=False)
    [f] = about(findings, "mixed-case extension")
    assert f.level == "note" and names(f) == ["b.JpG"] and not failing(findings)


def test_exif_rotation_is_reported(tmp_path):
    from PIL import Image
    cfg = clean_setup(tmp_path)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (512, 512)).save(tmp_path / "train" / "5_sks dog" / "phone.jpg", exif=exif)
    [f] = about(run_checks(cfg, cuda=False), "EXIF rotation")
    assert names(f) == ["phone.jpg"]


def test_cuda_detection_honours_a_hidden_device_list(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cuda_available() is False


def test_background_check_reports_progress_and_the_same_findings(tmp_path):
    cfg = clean_setup(tmp_path)
    for i in range(6):
        make_image(tmp_path / "train" / "5_sks dog" / f"s{i}.png", (100 + i, 100))
    check = BackgroundCheck(cfg)
    assert check.wait(60)
    assert check.error == "" and (check.progress.done, check.progress.total) == (7, 7)
    assert [f.message for f in check.findings] == [f.message for f in run_checks(cfg)]


def test_background_check_never_reports_nothing_when_it_failed(tmp_path, monkeypatch):
    import workbench.runs.preflight as checks

    def broken(*args):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(checks, "run_checks", broken)
    check = BackgroundCheck(clean_setup(tmp_path))
    assert check.wait(60) and check.findings == [] and "disk on fire" in check.error


def test_check_cli_exit_codes_and_json(tmp_path):
    cfg = clean_setup(tmp_path)
    values = {k: v for k, v in cfg.to_dict().items() if v is not None}
    clean = write_config(tmp_path / "clean.toml", **values)
    make_image(tmp_path / "train" / "2_cat" / "x.png", (512, 512), color=(9, 9, 9))   # a note only
    done = run_cli("check", clean)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: 2_cat: no caption files" in done.stdout
    (tmp_path / "train" / "2_cat" / "bad.png").write_bytes(b"\x89PNG broken")
    done = run_cli("check", clean, "--json")
    assert done.returncode == 1
    findings = json.loads(done.stdout)
    assert all(set(f) == {"level", "field", "message", "files"} for f in findings)
    assert any(f["level"] == "error" and f["files"][0].endswith("bad.png") for f in findings)
    assert "--json" in run_cli("check", "--help").stdout and "Exit status: 1" in run_cli("check", "--help").stdout


def test_an_incomplete_diffusers_folder_is_an_error_before_the_run(tmp_path):
    from tests.conftest import diffusers_stub
    cfg = clean_setup(tmp_path)
    model = diffusers_stub(tmp_path / "model")
    (model / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    [f] = about(run_checks(cfg.replace(pretrained_model_name_or_path=str(model)), cuda=False), "incomplete")
    assert f.level == "error" and "vae/ weights" in f.message and f.files == (str(model),)


def test_xformers_needs_a_gpu():
    from workbench.config.schema import TrainConfig
    from workbench.runs.preflight import hardware_findings

    def xformers(cfg, cuda):
        return [f.level for f in hardware_findings(cfg, cuda) if f.field == "xformers"]
    assert xformers(TrainConfig(xformers=True), cuda=False) == ["error"]
    assert xformers(TrainConfig(xformers=True), cuda=True) == []
    assert xformers(TrainConfig(xformers=True, mem_eff_attn=True), cuda=False) == []    # mem_eff_attn wins
