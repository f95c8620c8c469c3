"""`workbench check CONFIG [--json]`."""
from __future__ import annotations

from workbench.commands._common import print_json
from workbench.config.schema import load_toml
from workbench.runs.preflight import failing, run_checks

DESCRIPTION = """preflight: what would fail or silently surprise before a run.

Checks the config (every validation rule, unknown keys), the model (present; its family, read
from its tensor names or diffusers configs, against the v2/sdxl flags), the output (nothing
overwritten), the hardware (8-bit optimizers without CUDA) and every image and caption: a full
decode of each image (unreadable, truncated, zero-byte), images smaller than their bucket,
captions under another extension than caption_extension, missing, empty or non-UTF-8 captions,
duplicate images (content hash), folders not named <repeats>_<name>.

Exit status: 1 when there is any error or warning (something would fail or silently surprise),
0 when the config is clean or has notes only."""

SHOWN_FILES = 5   # per finding in the text output; --json lists them all


def add_arguments(parser) -> None:
    parser.add_argument("config", help="config TOML")
    parser.add_argument("--json", action="store_true",
                        help="print the findings as a JSON list of {level, field, message, files}")


def run(args) -> int:
    cfg, unknown = load_toml(args.config)
    findings = run_checks(cfg, unknown)
    if args.json:
        print_json([f.to_json() for f in findings])
    else:
        print(report(findings))
    return 1 if failing(findings) else 0


def report(findings) -> str:
    if not findings:
        return "No findings: the config, model, output and dataset look ready."
    lines = []
    for f in findings:
        lines.append(f.line())
        lines += [f"    {p}" for p in f.files[:SHOWN_FILES]]
        if len(f.files) > SHOWN_FILES:
            lines.append(f"    … and {len(f.files) - SHOWN_FILES} more (--json lists them all)")
    counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning", "note")}
    lines.append(", ".join(f"{n} {level}{'s' if n != 1 else ''}" for level, n in counts.items()))
    return "\n".join(lines)
