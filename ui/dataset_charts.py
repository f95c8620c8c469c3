"""Tag frequency and bucket charts (Altair) and the bucket assignment table."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ui.tag_chart import tag_bar_chart
from workbench.views.dataset_tables import bucket_assignment_rows, bucket_histogram_rows, reg_balance_note, top_tags


def tag_chart(dataset, limit: int = 30) -> None:
    rows = top_tags(dataset, limit)
    if not rows:
        st.info("No tags: the training images have no captions or class tokens.")
        return
    st.caption(f"The {len(rows)} most frequent tags of the training captions, counted as sd-scripts' "
               "ss_tag_frequency counts them (lower-cased; repeats not counted).")
    st.altair_chart(tag_bar_chart(pd.DataFrame(rows)), width="stretch")


def bucket_panel(plan) -> None:
    histogram = pd.DataFrame(bucket_histogram_rows(plan))
    chart = alt.Chart(histogram).mark_bar().encode(
        x=alt.X("bucket:N", sort=None, title="bucket (width×height)", axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("with repeats:Q", title="images × repeats"), tooltip=["bucket", "images", "with repeats"])
    st.altair_chart(chart, width="stretch")
    st.caption("Each row: the image's size, the bucket it trains in, the size it is scaled to, and the pixels "
               "cropped away (split evenly between both sides).")
    note = reg_balance_note(plan)
    if note:
        st.info(note)
    st.dataframe(pd.DataFrame(bucket_assignment_rows(plan)), hide_index=True)
