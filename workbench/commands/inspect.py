"""`workbench inspect FILE [--json]` and `workbench inspect A B --compare [--json]`."""
from __future__ import annotations

from workbench.commands._common import print_json
from workbench.errors import UserError
from workbench.lora.inspect import (
    Inspection,
    MetadataError,
    bucket_info,
    check_hash,
    compare,
    comparison_json,
    dataset_dirs,
    describe,
    norms_by_block,
    tag_frequency,
    to_json,
    training_parameters,
)
from workbench.lora.read_metadata import PARAMETER_GROUPS, short

# keys the readable report decodes in their own section (everything else is listed as stored)
DECODED_KEYS = {key for keys in PARAMETER_GROUPS.values() for key in keys} | {
    "ss_tag_frequency", "ss_dataset_dirs", "ss_reg_dataset_dirs", "ss_bucket_info", "ss_training_comment",
    "sshs_model_hash", "ss_datasets"}
LIST_LIMIT = 10      # module names shown per list in a comparison


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="a LoRA .safetensors (two with --compare)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the report")
    parser.add_argument("--compare", action="store_true", help="show what differs between two LoRAs")
    parser.add_argument("--top", type=int, default=30, help="tags shown in the tag frequency (default 30)")
    parser.add_argument("--norms", action="store_true", help="weight-update norms ‖up·down·alpha/rank‖ per block "
                        "(reads the tensors; with --json: [{label, modules, mean, max}])")


def run(args) -> int:
    if args.compare != (len(args.files) == 2) or len(args.files) > 2:
        raise UserError("give one FILE, or two FILEs with --compare")
    if args.top < 1:
        raise UserError(f"--top {args.top}: give the number of tags to show, 1 or more")
    if args.compare:
        comparison = compare(describe(args.files[0]), describe(args.files[1]))
        if args.json:
            print_json(comparison_json(comparison))
        else:
            print(comparison_report(comparison))
        return 0
    if args.norms:
        return print_norms(args.files[0], args.json)
    inspection = describe(args.files[0])
    hash_check = check_hash(inspection)
    if args.json:
        print_json(to_json(inspection, hash_check))
    else:
        print(report(inspection, hash_check, args.top))
    return 0


def print_norms(path: str, as_json: bool) -> int:
    import dataclasses

    blocks = norms_by_block(path)
    if as_json:
        print_json([dataclasses.asdict(b) for b in blocks])
        return 0
    print(f"{'block':<32}{'modules':>8}{'mean':>12}{'max':>12}")
    for b in blocks:
        print(f"{b.label:<32}{b.modules:>8}{b.mean:>12.4g}{b.max:>12.4g}")
    return 0


# ------------------------------------------------------------------ one file

def report(i: Inspection, hash_check, top: int) -> str:
    lines = [str(i.path), f"  {human_size(i.size_bytes)}, header {human_size(i.header_length)}", ""]
    lines += structure_lines(i) + [f"{'Hash':<12}{hash_line(hash_check)}", ""]
    for section in (parameter_lines, comment_lines, dataset_lines, bucket_lines):
        lines += section(i.metadata)
    lines += tag_lines(i.metadata, top) + other_metadata_lines(i.metadata)
    return "\n".join(lines).rstrip()


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def structure_lines(i: Inspection) -> list[str]:
    s = i.structure
    lines = [f"{'Network':<12}{s.type}: {len(s.modules)} modules ({s.count('unet')} UNet, "
             f"{s.count('text_encoder')} text encoder)",
             f"{'Rank':<12}{distribution_line(s.rank_distribution())}",
             f"{'Alpha':<12}{distribution_line(s.alpha_distribution())}",
             f"{'Tensors':<12}{sum(s.dtypes.values())} ({', '.join(f'{d} ×{n}' for d, n in s.dtypes.items())})",
             f"{'Base model':<12}{i.base_model or 'unknown'} ({i.base_model_source})"]
    if s.other_tensors:
        lines.append(f"{'Other':<12}{len(s.other_tensors)} tensors of no known LoRA module, e.g. {s.other_tensors[0]}")
    return lines


def distribution_line(dist: dict) -> str:
    if not dist:
        return "none stored"
    values = list(dist.items())
    if len(values) == 1:
        return f"{values[0][0]:g} (all modules)"
    return f"{values[0][0]:g} (most common); " + ", ".join(f"{v:g} ×{n}" for v, n in values)


def hash_line(check) -> str:
    if check.matches is None:
        return f"no sshs_model_hash stored; sha256 of the tensor bytes is {check.computed}"
    if check.matches:
        return f"sshs_model_hash verified ({check.computed})"
    return (f"MISMATCH: sshs_model_hash {check.stored} but the tensor bytes hash to {check.computed}: "
            "the file was changed or damaged after it was saved")


def parameter_lines(meta: dict) -> list[str]:
    lines = []
    for group, rows in training_parameters(meta):
        lines.append(f"{group}")
        lines += [f"  {name:<30}{short(value, 90)}" for name, value in rows]
    return lines + [""] if lines else []


def comment_lines(meta: dict) -> list[str]:
    comment = meta.get("ss_training_comment")
    return [f"Training comment: {comment}", ""] if comment not in (None, "", "None") else []


def decoded(meta: dict, title: str, decode) -> list[str]:
    """A section's lines, or one line saying why its metadata could not be read."""
    try:
        return decode()
    except MetadataError as exc:
        return [f"{title}: {exc}", ""]


def dataset_lines(meta: dict) -> list[str]:
    def lines_of():
        out = []
        for title, key in (("Dataset folders", "ss_dataset_dirs"), ("Regularisation folders", "ss_reg_dataset_dirs")):
            dirs = dataset_dirs(meta, key)
            if dirs:
                out.append(title)
                out += [f"  {d.name:<30} {d.n_repeats:>4} repeats × {d.img_count:>5} images = "
                        f"{d.images_times_repeats}" for d in dirs]
        return out + [""] if out else []
    return decoded(meta, "Dataset folders", lines_of)


def bucket_lines(meta: dict) -> list[str]:
    def lines_of():
        info = bucket_info(meta)
        if info is None:
            return []
        error = f", mean aspect-ratio error {info.mean_img_ar_error:.4f}" if info.mean_img_ar_error is not None else ""
        out = [f"Buckets ({len(info.buckets)}{error})"]
        out += [f"  {b.width:>5} × {b.height:<5} {b.count:>7} images × repeats" for b in info.buckets]
        return out + [""]
    return decoded(meta, "Buckets", lines_of)


def tag_lines(meta: dict, top: int) -> list[str]:
    def lines_of():
        freq = tag_frequency(meta)
        if freq is None:
            return []
        out = [f"Tag frequency ({len(freq.total)} tags over {len(freq.per_dir)} folder(s), most frequent first)"]
        out += [f"  {count:>6}  {tag}" for tag, count in freq.total[:top]]
        if len(freq.total) > top:
            out.append(f"  … {len(freq.total) - top} more (--top N shows more, --json all)")
        return out + [""]
    return decoded(meta, "Tag frequency", lines_of)


def other_metadata_lines(meta: dict) -> list[str]:
    rest = {k: v for k, v in meta.items() if k not in DECODED_KEYS}
    if not rest:
        return []
    return ["Other metadata"] + [f"  {k:<30}{short(v, 90)}" for k, v in sorted(rest.items())]


# ------------------------------------------------------------------ two files

def comparison_report(c) -> str:
    lines = [f"A: {c.a.path}", f"B: {c.b.path}", ""]
    if c.identical:
        return "\n".join(lines + ["No differences in metadata or structure."])
    if c.network_different:
        lines.append("Structure")
        lines += [f"  {k:<20} {fact(a)}  →  {fact(b)}" for k, (a, b) in c.network_different.items()]
    lines += name_list("Modules only in A", c.modules_only_in_a) + name_list("Modules only in B", c.modules_only_in_b)
    for title, changes in (("Rank differs", c.rank_different), ("Alpha differs", c.alpha_different)):
        if changes:
            lines.append(f"{title} in {len(changes)} modules")
            lines += [f"  {n}: {a} → {b}" for n, (a, b) in list(changes.items())[:LIST_LIMIT]]
    for title, keys in (("Metadata only in A", c.metadata_only_in_a), ("Metadata only in B", c.metadata_only_in_b)):
        if keys:
            lines.append(f"{title} ({len(keys)})")
            lines += [f"  {k:<30}{short(v, 80)}" for k, v in keys.items()]
    if c.metadata_different:
        lines.append(f"Metadata different ({len(c.metadata_different)})")
        for k, (a, b) in c.metadata_different.items():
            lines += [f"  {k}", f"    A: {short(a, 100)}", f"    B: {short(b, 100)}"]
    return "\n".join(lines)


def fact(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} ×{n}" for k, n in value.items()) or "none"
    return str(value)


def name_list(title: str, names: tuple[str, ...]) -> list[str]:
    if not names:
        return []
    more = [f"  … {len(names) - LIST_LIMIT} more"] if len(names) > LIST_LIMIT else []
    return [f"{title} ({len(names)})"] + [f"  {n}" for n in names[:LIST_LIMIT]] + more
