"""The Training page's run history (rebuilt from the run dirs on every render), the choice of the
run shown (kept in the URL, so a refresh keeps it), and the TensorBoard button."""
from __future__ import annotations

import streamlit as st

from ui.shared_state import run_action
from workbench.runs import tensorboard
from workbench.runs.delete import delete_run, saved_files
from workbench.runs.registry import RunInfo
from workbench.views.training import history_rows

HISTORY_HELP = {      # what the estimate-vs-actual columns mean, on hover over their headers
    "estimate": st.column_config.TextColumn(help="what the start panel estimated when the run was started: total "
                                            "steps × s/step (loading the model and sampling not counted)"),
    "est. s/step": st.column_config.TextColumn(help="the estimated seconds per optimizer step"),
    "s/step": st.column_config.TextColumn(help="measured seconds per optimizer step once the run ended (its first "
                                          "steps, which include warm-up, left out), as later estimates use it"),
    "actual ÷ est.": st.column_config.TextColumn(help="measured ÷ estimated s/step: above 1 the run was slower "
                                                 "than estimated"),
}


def selected_run(infos: list[RunInfo]) -> RunInfo | None:
    """The run named by ?run=, else the newest active run, else the newest run."""
    by_name = {info.name: info for info in infos}
    wanted = st.query_params.get("run")
    if wanted in by_name:
        return by_name[wanted]
    return next((i for i in infos if i.active), infos[0] if infos else None)


def history_table(infos: list[RunInfo]) -> None:
    st.subheader("Run history")
    if not infos:
        st.caption("No runs yet in this workspace.")
        return
    st.dataframe(history_rows(infos), hide_index=True, key="history", column_config=HISTORY_HELP)


def run_picker(infos: list[RunInfo], selected: RunInfo | None) -> None:
    """Open any run of the history in the view above (?run= in the URL)."""
    if not infos:
        return
    names = [info.name for info in infos]
    current = names.index(selected.name) if selected else 0
    chosen = st.selectbox("Open a run", names, index=current)
    if chosen != names[current]:
        st.query_params["run"] = chosen
        st.rerun()


def delete_panel(selected: RunInfo | None) -> None:
    """Delete the run shown, after a confirmation in a popover; its LoRA files stay unless ticked."""
    if selected is None or selected.active or selected.state == "queued":
        return
    files = saved_files(selected.dir)
    with st.popover(f"Delete run {selected.name}…"):
        st.markdown(f"Delete `{selected.dir}`: its config, metrics, log, samples and training state. "
                    "This cannot be undone.")
        with_loras = st.checkbox(f"Also delete its {len(files)} saved LoRA file(s)", key=f"delete-loras-"
                                 f"{selected.name}", disabled=not files) if files else False
        st.button(f"Delete {selected.name}", key=f"delete-{selected.name}", type="primary",
                  on_click=_delete, args=(selected.dir, with_loras))


def _delete(run_dir, with_loras: bool) -> None:
    if run_action(lambda: delete_run(run_dir, with_loras), f"Deleted {run_dir.name}"):
        st.query_params.pop("run", None)


def tensorboard_panel() -> None:
    board = tensorboard.running()
    if board is None and st.button("Start TensorBoard", help="TensorBoard on every run of this workspace "
                                   "(127.0.0.1, its own process; it keeps running after the app stops)"):
        board = tensorboard.ensure_running()
        st.caption("TensorBoard is starting; the link answers in a few seconds.")
    if board is not None:
        left, right = st.columns([3, 1])
        left.link_button(f"Open TensorBoard (port {board.port})", board.url)
        right.button("Stop TensorBoard", key="tensorboard_stop", on_click=tensorboard.stop, args=(board,),
                     help="ends the TensorBoard process (the runs' logs stay; Start brings it back)")
        st.caption(f"It listens on 127.0.0.1 like the workbench: from another machine, tunnel its port too "
                   f"(`ssh -L {board.port}:127.0.0.1:{board.port} you@gpu-box`).")
