"""One LoRA on the Inspect page: the summary, the hash check, and its metadata decoded (training
parameters, the training comment, dataset folders, buckets, tag frequency, everything as stored).
The decoding is workbench.lora.inspect's; a section whose metadata cannot be decoded says why."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from ui.tag_chart import tag_bar_chart
from workbench.errors import UserError
from workbench.lora.inspect import Inspection, bucket_info, check_hash, dataset_dirs, tag_frequency, training_parameters

TOP_TAGS = 40        # tags in the frequency chart


@st.cache_data(show_spinner="Hashing the tensors…", max_entries=16)
def hash_check(path: str, size: int, mtime_ns: int, _inspection: Inspection):
    """sshs_model_hash verification, computed once per version of the file (path, size, mtime)."""
    return check_hash(_inspection)


def summary(i: Inspection) -> None:
    s = i.structure
    cols = st.columns(5)
    cols[0].metric("Network", s.type)
    cols[1].metric("Modules", len(s.modules), help=f"{s.count('unet')} UNet, {s.count('text_encoder')} text encoder")
    cols[2].metric("Rank", _number(s.rank()))
    cols[3].metric("Alpha", _number(s.alpha()))
    cols[4].metric("Base model", i.base_model or "unknown", help=f"from {i.base_model_source}")
    st.caption(f"`{i.path}` · {i.size_bytes / 1e6:.1f} MB · {s.count('unet')} UNet and "
               f"{s.count('text_encoder')} text-encoder modules · tensors "
               + ", ".join(f"{dtype} ×{n}" for dtype, n in s.dtypes.items()))


def _number(value) -> str:
    return "—" if value is None else f"{value:g}"


def hash_section(i: Inspection) -> None:
    stat = Path(i.path).stat()
    check = hash_check(str(i.path), stat.st_size, stat.st_mtime_ns, i)
    if check.matches is None:
        st.info(f"No sshs_model_hash stored; the tensors hash to `{check.computed}`.")
    elif check.matches:
        st.success(f"Hash verified: sshs_model_hash matches the tensors (`{check.computed}`).")
    else:
        st.error(f"Hash MISMATCH: stored `{check.stored}`, the tensors hash to `{check.computed}` — the file "
                 "was changed or damaged after it was saved.")


def decoded(title: str, render) -> None:
    """Render a section; metadata that cannot be decoded shows its one-line reason instead."""
    try:
        render()
    except UserError as exc:
        st.warning(f"{title}: {exc}")


def training_section(i: Inspection) -> None:
    comment = i.metadata.get("ss_training_comment")
    if comment not in (None, "", "None"):
        st.markdown(f"**Training comment:** {comment}")
    groups = training_parameters(i.metadata)
    if not groups:
        st.caption("No training parameters stored (not a kohya/workbench-trained LoRA?).")
    columns = st.columns(3)
    for n, (group, rows) in enumerate(groups):
        with columns[n % 3]:
            st.markdown(f"**{group}**")
            st.dataframe([{"parameter": k, "value": v} for k, v in rows], hide_index=True)


def dataset_section(i: Inspection) -> None:
    for title, key in (("Dataset folders", "ss_dataset_dirs"), ("Regularisation folders", "ss_reg_dataset_dirs")):
        dirs = dataset_dirs(i.metadata, key)
        if dirs:
            st.markdown(f"**{title}**")
            st.dataframe([{"folder": d.name, "repeats": d.n_repeats, "images": d.img_count,
                           "images × repeats": d.images_times_repeats} for d in dirs], hide_index=True)
    info = bucket_info(i.metadata)
    if info is not None:
        error = ("" if info.mean_img_ar_error is None
                 else f" — mean aspect-ratio error {info.mean_img_ar_error:.4f}")
        st.markdown(f"**Buckets** ({len(info.buckets)}){error}")
        st.dataframe([{"bucket": f"{b.width}×{b.height}", "images × repeats": b.count} for b in info.buckets],
                     hide_index=True)


def tags_section(i: Inspection) -> None:
    freq = tag_frequency(i.metadata)
    if freq is None:
        st.caption("No tag frequency stored.")
        return
    st.markdown(f"**Tag frequency** — {len(freq.total)} tags over {len(freq.per_dir)} folder(s)")
    frame = pd.DataFrame(freq.total[:TOP_TAGS], columns=["tag", "count"])
    st.altair_chart(tag_bar_chart(frame))
    with st.expander("Per folder"):
        for folder, tags in freq.per_dir.items():
            st.markdown(f"`{folder}`: " + ", ".join(f"{t} ({n})" for t, n in tags))


def raw_metadata(i: Inspection) -> None:
    st.dataframe([{"key": k, "value": v} for k, v in sorted(i.metadata.items())], hide_index=True)
