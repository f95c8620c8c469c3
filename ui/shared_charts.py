"""Chart styles that more than one page draws with (Altair encodings)."""
from __future__ import annotations

import altair as alt

# UNet first and wide and pale, the text encoder thin and dashed on top: when their learning rates
# are equal the two curves coincide, and both stay visible
CURVE_COLOURS, CURVE_WIDTHS, CURVE_DASHES = ["#9ecae9", "#1f4e99"], [6, 2], [[1, 0], [6, 3]]


def overlapping_curves(field: str, names: list[str], title: str | None) -> dict:
    """color/strokeWidth/strokeDash encodings of `field` whose curves may coincide (`names` in drawing order)."""
    def scale(values):
        return alt.Scale(domain=names, range=values[:len(names)])
    return {"color": alt.Color(f"{field}:N", title=title, scale=scale(CURVE_COLOURS)),
            "strokeWidth": alt.StrokeWidth(f"{field}:N", legend=None, scale=scale(CURVE_WIDTHS)),
            "strokeDash": alt.StrokeDash(f"{field}:N", legend=None, scale=scale(CURVE_DASHES))}
