"""The tag-frequency bar chart the Dataset and Inspect pages both draw: one bar per tag, the tag
as the axis label, never cut off (Vega-Lite's default cuts axis labels at 180 px with "…", and a
caption's tags are often phrases: "blue green gradient background")."""
from __future__ import annotations

import altair as alt

LABEL_LIMIT_PX = 0       # Vega's text limit: 0 = no limit, the axis grows to the longest tag


def tag_bar_chart(frame) -> alt.Chart:
    """`frame`: columns tag and count, most frequent first."""
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("count:Q", title="captions with the tag"),
        y=alt.Y("tag:N", sort="-x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT_PX)),
        tooltip=["tag:N", "count:Q"])
