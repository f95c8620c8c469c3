"""`workbench caption FOLDER --model PATH_OR_REPO_ID [options]`: caption a subset folder or a
whole train_data_dir with a WD14 tagger or a transformers captioner, in the foreground."""
from __future__ import annotations

import sys
import time

from workbench.captioning.journal import RunJournal
from workbench.captioning.run import FAILED, CaptionRun, collect_items, load_model
from workbench.captioning.settings import EXISTING_POLICIES, CaptionSettings, split_list
from workbench.captioning.stopping import StopAfterBatch
from workbench.captioning.summary import counts_line, eta_text, reason_lines
from workbench.commands._common import print_json

DESCRIPTION = """caption a dataset with a WD14 tagger or an image-to-text model.

FOLDER is one <repeats>_<name> folder (or any folder of images) or a train_data_dir (every
<repeats>_<name> folder in it). --model is a folder or a Hugging Face repo id: model.onnx +
selected_tags.csv make a WD14 tagger (e.g. SmilingWolf/wd-vit-tagger-v3), a transformers
config.json an image-to-text captioner (BLIP, GIT, Florence-2 …). A repo id is read from the
Hugging Face cache, downloaded when missing (unless HF_HUB_OFFLINE=1).

Existing captions: skip (default; a rerun resumes where a stopped one ended), append (new tags
after the old, no duplicates) or overwrite (the first line replaced; other lines kept). A caption
file that changes on disk during the run is left as it is. Every write is atomic, and the whole run
is one entry in the Dataset page's bulk-edit undo. Ctrl-C stops after the current batch.

Exit status: 0 when every image was captioned or skipped, 1 when some image failed (named in the
summary), 130 when stopped with Ctrl-C."""

LINE_EVERY_S = 5.0          # without a terminal: one progress line per this many seconds
BAR_WIDTH = 24


def add_arguments(parser) -> None:
    parser.add_argument("folder", help="a <repeats>_<name> folder or a train_data_dir")
    parser.add_argument("--model", required=True, help="a model folder or a Hugging Face repo id")
    tagger = parser.add_argument_group("WD14 tagger")
    tagger.add_argument("--threshold", type=float, default=0.35, help="general tags at this score or above (0.35)")
    tagger.add_argument("--character-threshold", type=float, default=0.85,
                        help="character tags at this score or above (0.85)")
    tagger.add_argument("--rating", action="store_true", help="also write the most likely rating tag")
    tagger.add_argument("--exclude", default="", help="comma-separated tags never written (long_hair = long hair)")
    sentences = parser.add_argument_group("image-to-text captioner")
    sentences.add_argument("--max-length", type=int, default=75, help="new tokens at most (75)")
    sentences.add_argument("--beams", type=int, default=1, help="beam search width (1: greedy)")
    sentences.add_argument("--prompt", default="", help="text the model continues, or its task token (<CAPTION>)")
    parser.add_argument("--prefix", default="", help="tag(s) put first, once, e.g. a trigger word (ohwx)")
    parser.add_argument("--prefix-class-tokens", action="store_true",
                        help="put each folder's class tokens (10_sks dog → sks dog) first, once")
    parser.add_argument("--existing", choices=list(EXISTING_POLICIES), default="skip",
                        help="what to do with an image that has a caption (skip)")
    parser.add_argument("--extension", default=".txt", help="caption file extension (.txt)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per model call (8)")
    parser.add_argument("--preview", type=int, metavar="N", default=0,
                        help="write nothing: show what the first N images would get, with the scores")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def settings_from(args) -> CaptionSettings:
    return CaptionSettings(
        model=args.model, threshold=args.threshold, character_threshold=args.character_threshold,
        rating=args.rating, exclude=split_list(args.exclude), prefix=args.prefix,
        prefix_class_tokens=args.prefix_class_tokens, existing=args.existing, extension=args.extension,
        batch_size=args.batch_size, max_length=args.max_length, num_beams=args.beams, prompt=args.prompt).check()


def run(args) -> int:
    settings = settings_from(args)
    items = collect_items(args.folder, settings.extension)
    model = load_model(settings, lambda note: print(f"note: {note}", file=sys.stderr))
    if args.preview:
        return _preview(CaptionRun(settings, model), items[:args.preview], args.json)
    return _caption(settings, model, items, args)


def _preview(runner, items, as_json: bool) -> int:
    rows = runner.preview(items)
    if as_json:
        print_json(rows)
        return 0
    for row in rows:
        print(row["image"])
        if row["error"]:
            print(f"  {row['error']}")
            continue
        print(f"  now:   {row['existing'] if row['existing'] is not None else '(no caption file)'}")
        print(f"  would: {row['line'] if row['line'] is not None else '(left as it is)'}")
        print("  scores: " + ", ".join(f"{s['tag']} {s['score']:.2f}{'' if s['kept'] else ' (not kept)'}"
                                       for s in row["scores"][:12]))
    return 0


def _caption(settings, model, items, args) -> int:
    journal = RunJournal(f"caption run: {settings.model} on {args.folder}")
    progress = Progress(sys.stderr, getattr(model, "device", "cpu"))
    outcomes: list[dict] = []

    def on_batch(tally, batch):
        outcomes.extend(o.to_json() for o in batch)
        progress.show(tally)

    with StopAfterBatch(progress.stopping) as stop:
        tally = CaptionRun(settings, model, journal).run(items, stop, on_batch)
    progress.done(tally, outcomes, stop.requested)
    if args.json:
        print_json({"total": tally.total, "done": tally.done, **tally.counts, "stopped": stop.requested,
                    "images_per_s": round(tally.images_per_s, 3), "journal": str(journal.path or ""),
                    "outcomes": outcomes})
    if stop.requested:
        return 130
    return 1 if tally.counts[FAILED] else 0


class Progress:
    """A bar with images/s and ETA on stderr: redrawn in place on a terminal, a line every few
    seconds otherwise; the summary at the end."""

    def __init__(self, out, device: str):
        self.out, self.tty = out, out.isatty()
        self.last = 0.0                # when the last line was printed (no terminal)
        self.drawn = False             # a bar is on the terminal's current line
        self.write(f"captioning on {device}")

    def write(self, text: str) -> None:
        self.out.write(("\n" if self.drawn else "") + text + "\n")
        self.out.flush()
        self.drawn = False

    def show(self, tally) -> None:
        filled = BAR_WIDTH * tally.done // max(1, tally.total)
        line = (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {tally.done}/{tally.total}  "
                f"{tally.images_per_s:.1f} img/s  {eta_text(tally.eta_s)}")
        if self.tty:
            self.out.write("\r" + line)
            self.out.flush()
            self.drawn = True
        elif time.monotonic() - self.last >= LINE_EVERY_S or tally.done == tally.total:
            self.write(line)
            self.last = time.monotonic()

    def stopping(self, signal_name: str) -> None:
        self.write(f"{signal_name}: stopping after this batch (Ctrl-C again to stop at once)")

    def done(self, tally, outcomes: list[dict], stopped: bool) -> None:
        self.write(counts_line(tally.counts, tally.done, tally.total, stopped))
        for line in reason_lines(outcomes):
            self.write(f"  {line}")

