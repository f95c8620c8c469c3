"""The caption job process: `python -m workbench.captioning.worker JOB_DIR` (jobs.py starts it).

Reads job.json, loads the model, captions the folder batch by batch, appends each image's outcome
to outcomes.jsonl and rewrites status.json after every batch (done, counts, images/s, ETA).
SIGTERM (the page's Stop) ends it after the current batch as "stopped"; a bad folder or model
ends it as "failed" with the one-line reason in status.json."""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from workbench.captioning.jobs import read_job
from workbench.captioning.journal import RunJournal
from workbench.captioning.run import CaptionRun, collect_items, load_model
from workbench.captioning.stopping import StopAfterBatch
from workbench.errors import UserError
from workbench.runs.registry import proc_start_time, write_status


def main(job_dir: Path) -> int:
    pid = os.getpid()
    write_status(job_dir, pid=pid, pid_start=proc_start_time(pid), state="starting", error=None)
    with StopAfterBatch(lambda name: print(f"{name}: stopping after this batch", flush=True)) as stop:
        try:
            state = caption(job_dir, stop)
        except UserError as exc:
            print(f"error: {exc}", flush=True)
            write_status(job_dir, state="failed", error=str(exc), ended_at=time.time())
            return 1
        except Exception as exc:       # a workbench bug: the traceback goes to worker.log
            traceback.print_exc()
            write_status(job_dir, state="failed", ended_at=time.time(),
                         error=f"internal error: {exc.__class__.__name__}: {exc} (see worker.log)")
            return 1
    write_status(job_dir, state=state, ended_at=time.time())
    return 0


def caption(job_dir: Path, stop) -> str:
    settings, folder = read_job(job_dir)
    items = collect_items(folder, settings.extension)
    write_status(job_dir, state="loading", total=len(items), done=0)
    model = load_model(settings, lambda note: write_status(job_dir, notes=[note]))
    device = getattr(model, "device", "cpu")
    print(f"captioning {len(items)} images in {folder} with {settings.model} on {device}", flush=True)
    write_status(job_dir, state="running", device=device)
    journal = RunJournal(f"caption run: {settings.model} on {folder.name}", job=str(job_dir))
    with open(job_dir / "outcomes.jsonl", "a", encoding="utf-8") as log:
        def on_batch(tally, outcomes):
            log.write("".join(json.dumps(o.to_json(), ensure_ascii=False) + "\n" for o in outcomes))
            log.flush()
            write_status(job_dir, done=tally.done, total=tally.total, counts=tally.counts,
                         images_per_s=round(tally.images_per_s, 3), eta_s=tally.eta_s,
                         journal=str(journal.path or ""))
        CaptionRun(settings, model, journal).run(items, stop, on_batch)
    return "stopped" if stop.requested else "finished"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m workbench.captioning.worker JOB_DIR")
    sys.exit(main(Path(sys.argv[1]).absolute()))
