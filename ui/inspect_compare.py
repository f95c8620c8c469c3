"""Two LoRAs side by side: what differs in structure and metadata (workbench.lora.inspect.compare)."""
from __future__ import annotations

import streamlit as st

from workbench.commands.inspect import fact
from workbench.lora.inspect import Comparison
from workbench.lora.read_metadata import short

NAMES_SHOWN = 50     # module names listed per difference


def comparison_section(c: Comparison) -> None:
    st.caption(f"A: `{c.a.path}` · B: `{c.b.path}`")
    if c.identical:
        st.success("No differences in metadata or structure.")
        return
    if c.network_different:
        st.markdown("**Structure**")
        st.dataframe([{"": k, "A": fact(a), "B": fact(b)} for k, (a, b) in c.network_different.items()],
                     hide_index=True)
    for title, changes in (("Rank differs", c.rank_different), ("Alpha differs", c.alpha_different)):
        if changes:
            st.markdown(f"**{title}** in {len(changes)} modules")
            st.dataframe([{"module": n, "A": a, "B": b} for n, (a, b) in list(changes.items())[:NAMES_SHOWN]],
                         hide_index=True)
    for title, names in (("Modules only in A", c.modules_only_in_a), ("Modules only in B", c.modules_only_in_b)):
        if names:
            st.markdown(f"**{title}** ({len(names)}): " + ", ".join(f"`{n}`" for n in names[:NAMES_SHOWN]))
    rows = ([{"key": k, "A": short(a, 120), "B": short(b, 120)} for k, (a, b) in c.metadata_different.items()]
            + [{"key": k, "A": short(v, 120), "B": "(absent)"} for k, v in c.metadata_only_in_a.items()]
            + [{"key": k, "A": "(absent)", "B": short(v, 120)} for k, v in c.metadata_only_in_b.items()])
    if rows:
        st.markdown(f"**Metadata** ({len(rows)} keys differ)")
        st.dataframe(rows, hide_index=True)

