"""The tag chart of the Dataset and Inspect pages draws every tag label whole: Vega-Lite's default
axis label limit (180 px) cut phrases such as "yellow orange gradient background" with "…"."""
from __future__ import annotations

import pandas as pd

from ui.tag_chart import tag_bar_chart


def test_the_tag_axis_has_no_label_limit():
    frame = pd.DataFrame([{"tag": "a very long descriptive tag about the gradient background " * 2, "count": 3},
                          {"tag": "red", "count": 1}])
    spec = tag_bar_chart(frame).to_dict()
    assert spec["encoding"]["y"]["field"] == "tag" and spec["encoding"]["y"]["axis"]["labelLimit"] == 0
