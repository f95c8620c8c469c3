"""The Caption tab: choose a model and its settings, preview a few images with the model's scores,
then caption the folder in a job process (ui/caption_job.py shows it). The model runs in a
subprocess for the preview too: the app process never loads torch or onnxruntime."""
from __future__ import annotations

import shlex
from pathlib import Path

import streamlit as st

from ui.caption_job import last_job_panel
from workbench import workspace
from workbench.captioning import jobs
from workbench.captioning.recent import load_last, save_last
from workbench.captioning.settings import EXISTING_POLICIES, CaptionSettings, cli_args, split_list
from workbench.dataset.thumbnails import ThumbnailError, thumbnail
from workbench.errors import UserError

PREVIEW_IMAGES = 4
PREVIEW_KEY = "captioner_preview"        # (settings, folder, rows) of the last preview in this session
ALL_TRAINING = "all training folders"


def caption_panel(cfg, dataset) -> None:
    last, recent = load_last()
    folder = _folder_choice(cfg, dataset)
    settings = _settings_inputs(last, recent)
    if settings is None:
        return
    st.caption("Same from the command line: `" + shlex.join(["workbench", "caption", str(folder),
                                                               *cli_args(settings)]) + "`")
    preview, start = st.columns(2)
    if preview.button(f"Preview on {PREVIEW_IMAGES} images", key="captioner_preview_button"):
        _preview(folder, settings)
    busy = jobs.active_job() is not None
    if start.button("Caption the folder", key="captioner_start", type="primary", disabled=busy,
                    help="a caption run is going; stop it or let it finish" if busy else None):
        _start(folder, settings)
    _preview_table(settings, folder)
    st.divider()
    last_job_panel()


def _folder_choice(cfg, dataset):
    choices = {f"{ALL_TRAINING} ({cfg.train_data_dir})": cfg.train_data_dir}
    choices.update({f"{s.name}{' (regularisation)' if s.is_reg else ''} — {len(s.images)} images, "
                    f"{s.captioned} captioned": str(s.dir) for s in dataset.subsets})
    label = st.selectbox("Folder to caption", list(choices), key="captioner_folder")
    return choices[label]


def _settings_inputs(last: CaptionSettings, recent: list[str]) -> CaptionSettings | None:
    """The form; None (with the reason shown) while a value cannot run."""
    model = _model_input(last, recent)
    tagger, sentences = st.columns(2)
    with tagger:
        tagger_values = _tagger_inputs(last)
    with sentences:
        sentence_values = _sentence_inputs(last)
    prefix_col, class_col, batch_col = st.columns([2, 2, 1])
    prefix = prefix_col.text_input("Prefix (trigger word, put first once)", last.prefix, key="captioner_prefix")
    class_tokens = class_col.checkbox("Put the folder's class tokens first", last.prefix_class_tokens,
                                      key="captioner_class_tokens")
    batch = batch_col.number_input("Batch size", 1, 256, last.batch_size, key="captioner_batch")
    existing = st.radio("Images that already have a caption", list(EXISTING_POLICIES), horizontal=True,
                        index=list(EXISTING_POLICIES).index(last.existing), key="captioner_existing",
                        format_func=lambda k: f"{k}: {EXISTING_POLICIES[k]}")
    try:
        return CaptionSettings(model=model.strip(), prefix=prefix.strip(), prefix_class_tokens=class_tokens,
                               existing=existing, extension=_extension(), batch_size=int(batch),
                               **tagger_values, **sentence_values).check()
    except UserError as exc:
        st.warning(str(exc))
        return None


def _model_input(last: CaptionSettings, recent: list[str]) -> str:
    st.session_state.setdefault("captioner_model", last.model)
    if recent:
        st.selectbox("Recent models", [""] + recent, key="captioner_recent", on_change=_use_recent,
                     format_func=lambda m: m or "(choose one to use it)")
    return st.text_input("Model: a folder or a Hugging Face repo id", key="captioner_model",
                         help="model.onnx + selected_tags.csv: a WD14 tagger; a transformers config.json: "
                              "an image-to-text captioner (BLIP, GIT, Florence-2)")


def _tagger_inputs(last: CaptionSettings) -> dict:
    st.markdown("**WD14 tagger** (used only when the model is a tagger)")
    return {"threshold": st.number_input("General tag threshold", 0.0, 1.0, last.threshold, 0.05,
                                         key="captioner_thr"),
            "character_threshold": st.number_input("Character tag threshold", 0.0, 1.0, last.character_threshold,
                                                   0.05, key="captioner_char_thr"),
            "rating": st.checkbox("Write the rating tag", last.rating, key="captioner_rating"),
            "exclude": split_list(st.text_input("Exclude tags (comma-separated)", ", ".join(last.exclude),
                                                key="captioner_exclude"))}


def _sentence_inputs(last: CaptionSettings) -> dict:
    st.markdown("**Image-to-text captioner** (used only for a transformers model)")
    return {"max_length": int(st.number_input("Max new tokens", 1, 1024, last.max_length, key="captioner_max_length")),
            "num_beams": int(st.number_input("Beams", 1, 16, last.num_beams, key="captioner_beams")),
            "prompt": st.text_input("Prompt (optional)", last.prompt, key="captioner_prompt").strip()}


def _extension() -> str:
    cfg = workspace.load_current()
    return (cfg.caption_extension if cfg is not None else "") or ".txt"


def _use_recent() -> None:
    if st.session_state.get("captioner_recent"):
        st.session_state["captioner_model"] = st.session_state["captioner_recent"]


def _preview(folder, settings: CaptionSettings) -> None:
    with st.spinner(f"Running {settings.model} on {PREVIEW_IMAGES} images …"):
        try:
            rows, notes = jobs.run_preview(folder, settings, PREVIEW_IMAGES)
        except UserError as exc:
            st.error(f"Preview: {exc}")
            return
    st.session_state[PREVIEW_KEY] = (settings, str(folder), rows, notes)


def _start(folder, settings: CaptionSettings) -> None:
    try:
        job = jobs.create_job(settings, folder)
        jobs.launch_job(job)
    except UserError as exc:
        st.error(f"Not started: {exc}")
        return
    save_last(settings)
    st.rerun()


def _preview_table(settings: CaptionSettings, folder) -> None:
    shown = st.session_state.get(PREVIEW_KEY)
    if not shown:
        return
    if (shown[0], shown[1]) != (settings, str(folder)):
        st.caption("The settings changed since this preview: preview again to see their effect.")
    for note in shown[3]:
        st.warning(f"Note: {note}")
    for row in shown[2]:
        image_col, text_col = st.columns([1, 4])
        _thumb(image_col, row)
        with text_col:
            st.markdown(f"**{Path(row['image']).name}** — now: "
                        f"{_quoted(row['existing']) if row['existing'] is not None else '(no caption file)'}")
            if row["error"]:
                st.caption(row["error"])
                continue
            st.markdown(f"would write: {_quoted(row['line']) if row['line'] is not None else '(left as it is)'}")
            st.dataframe({"tag": [s["tag"] for s in row["scores"]],
                          "confidence": [s["score"] for s in row["scores"]],
                          "category": [s["category"] for s in row["scores"]],
                          "kept": [s["kept"] for s in row["scores"]]}, hide_index=True, height=215,
                         column_config={"confidence": st.column_config.ProgressColumn(
                             "confidence", min_value=0.0, max_value=1.0, format="%.2f")})


def _thumb(column, row: dict) -> None:
    try:
        column.image(str(thumbnail(Path(row["image"]), square=True)), width="stretch")
    except ThumbnailError as exc:
        column.warning(str(exc))


def _quoted(line: str) -> str:
    return f"“{line}”"
