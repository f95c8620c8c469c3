"""The network's structure on the Inspect page: type, modules per UNet block and text-encoder
layer with their ranks, rank/alpha distributions, and weight-update norms per block. The norms
read the tensors with torch, which the app process never imports: they run in a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import altair as alt
import streamlit as st

from workbench.lora.inspect import Inspection, modules_by_block


def structure_section(i: Inspection) -> None:
    s = i.structure
    left, right = st.columns(2)
    left.markdown("**Rank** (value: modules) " + _dist(s.rank_distribution()))
    right.markdown("**Alpha** (value: modules) " + _dist(s.alpha_distribution()))
    rows = [{"block": b.label, "modules": len(b.modules), "rank": _dist(b.rank_distribution())}
            for b in modules_by_block(s.modules)]
    st.dataframe(rows, hide_index=True)
    if s.other_tensors:
        st.caption(f"{len(s.other_tensors)} tensors belong to no known module, e.g. `{s.other_tensors[0]}`")
    _norms(i)


def _dist(dist: dict) -> str:
    return ", ".join(f"{v:g}: {n}" for v, n in dist.items()) or "none stored"


@st.cache_data(show_spinner="Reading the tensors…", max_entries=16)
def block_norms(path: str, size: int, mtime_ns: int) -> dict | list:
    """`workbench inspect --norms --json` in a subprocess: [{label, modules, mean, max}] or {"error": line}."""
    done = subprocess.run([sys.executable, "-m", "workbench", "inspect", path, "--norms", "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1].removeprefix("workbench inspect: error: ") if lines
                else f"exit status {done.returncode}"}
    return json.loads(done.stdout)


def _norms(i: Inspection) -> None:
    st.markdown("**Weight-update norms per block** ‖up·down·alpha/rank‖ — how hard each part was pushed")
    if not st.toggle("Compute the norms (reads the tensors)", key=f"norms-{i.path}"):
        return
    stat = Path(i.path).stat()
    norms = block_norms(str(i.path), stat.st_size, stat.st_mtime_ns)
    if isinstance(norms, dict):
        st.warning(norms["error"])
        return
    order = [b["label"] for b in norms]
    chart = (alt.Chart(alt.Data(values=norms)).mark_bar()
             .encode(x=alt.X("label:N", sort=order, title=None), y=alt.Y("mean:Q", title="mean norm per module"),
                     tooltip=["label:N", "modules:Q", alt.Tooltip("mean:Q", format=".4g"),
                              alt.Tooltip("max:Q", format=".4g")]))
    st.altair_chart(chart)
