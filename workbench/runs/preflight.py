"""Preflight: everything that would make a run fail or silently surprise, found before it starts.

Each finding names the field or the files and says what to do. `run_checks` is the whole pass;
its image part fully decodes every image (a header can be fine while the pixels are truncated),
so it takes a while on big datasets: `BackgroundCheck` runs it in a thread with progress, the
way the app shows it. Exit rule of `workbench check`: errors and warnings → 1, notes only → 0.
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config.validate import Finding, validate
from workbench.dataset.images import HUGE_PIXELS, UnreadableImage, huge, open_image
from workbench.dataset.masks import mask_findings
from workbench.dataset.scan import DatasetError, SubsetFolder, caption_path, list_images, subset_folders
from workbench.errors import UserError
from workbench.lora.header import PICKLE_SUFFIXES
from workbench.models.hub import is_repo_id, model_info_of, resolve
from workbench.models.modelinfo import contradiction, missing_components, model_info, prediction_mismatch
from workbench.planning.buckets import Bucketer, BucketError, BucketSpec
from workbench.runs.outputs import earlier_outputs, existing_outputs

EIGHT_BIT_OPTIMIZERS = ("AdamW8bit", "PagedAdamW8bit", "Lion8bit", "SGDNesterov8bit")
# extensions people give caption files; one of these beside an image, but not caption_extension,
# is a caption sd-scripts never reads
CAPTION_EXTENSIONS = (".txt", ".caption", ".cap", ".tags", ".tag", ".text")
EXIF_ORIENTATION = 0x0112
LEVELS = ("error", "warning", "note")


@dataclass
class Progress:
    """Images decoded so far out of the total; read it from another thread while a check runs."""
    done: int = 0
    total: int = 0
    cancelled: bool = False


@dataclass
class ImageResult:
    path: Path
    size: tuple[int, int] | None = None   # None: could not be decoded
    problem: str = ""                     # why it could not, in a few words
    digest: str = ""                      # sha256 of the file's bytes
    rotated: bool = False                 # EXIF orientation other than "normal"


def failing(findings: list[Finding]) -> bool:
    """Whether `workbench check` exits 1: anything that would fail or silently surprise."""
    return any(f.level in ("error", "warning") for f in findings)


def run_checks(cfg, unknown_keys: list[str] = (), progress: Progress | None = None,
               cuda: bool | None = None) -> list[Finding]:
    """Every finding for a config, errors first."""
    findings = [Finding("warning", key, "unknown key, not used; check its spelling") for key in unknown_keys]
    findings += validate(cfg, require_paths=True)
    findings += model_findings(cfg) + output_findings(cfg)
    findings += hardware_findings(cfg, cuda_available() if cuda is None else cuda)
    findings += dataset_findings(cfg, progress or Progress())
    return sorted(findings, key=lambda f: LEVELS.index(f.level))


class BackgroundCheck:
    """`run_checks` in a daemon thread: poll `.progress` and `.finished`, then read `.findings`
    (or `.error`, a UserError message). `cancel()` stops the image pass early."""

    def __init__(self, cfg, unknown_keys: list[str] = ()):
        self.progress = Progress()
        self.findings: list[Finding] = []
        self.error = ""
        self._thread = threading.Thread(target=self._run, args=(cfg, list(unknown_keys)), daemon=True)
        self._thread.start()

    def _run(self, cfg, unknown_keys) -> None:
        try:
            self.findings = run_checks(cfg, unknown_keys, self.progress)
        except UserError as exc:
            self.error = str(exc)
        except Exception as exc:      # never let a dead thread read as "nothing found"
            self.error = f"preflight stopped: {exc.__class__.__name__}: {exc} (a workbench bug)"

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.finished

    def cancel(self) -> None:
        self.progress.cancelled = True


# ---------------------------------------------------------------- model, output, hardware

def model_findings(cfg) -> list[Finding]:
    name, path = "pretrained_model_name_or_path", cfg.pretrained_model_name_or_path
    if not path:
        return []                      # validate() already asks for it
    out = []
    try:
        if is_repo_id(path):
            info, sentence = repo_model_info(path)
            out.append(Finding("note", name, sentence, (path,)))
            if info is None:
                return out
        else:
            info = model_info(path)
    except UserError as exc:           # a pickle's family is only known once loaded: a note
        level = "note" if Path(path).suffix.lower() in PICKLE_SUFFIXES and Path(path).is_file() else "error"
        return [Finding(level, name, str(exc), (path,))]
    if info.layout == "diffusers" and info.path.is_dir():      # a repo id not yet downloaded: nothing to look at
        missing = missing_components(info.path, info.family)
        if missing:
            out.append(Finding("error", name, f"{info.path}: incomplete diffusers folder, missing "
                               f"{', '.join(missing)}; download or convert the whole model", (str(info.path),)))
    clash = contradiction(info, cfg)
    if clash:
        out.append(Finding("error", name, clash, (str(info.path),)))
    mismatch = prediction_mismatch(info, cfg)
    if mismatch:
        out.append(Finding(mismatch[0], "v_parameterization", mismatch[1], (str(info.path),)))
    return out


def repo_model_info(repo_id: str):
    """(ModelInfo or None, one sentence: cached or what will download, and the family) of a repo id."""
    model = resolve(repo_id)
    return model_info_of(model), model.sentence()


def output_findings(cfg) -> list[Finding]:
    folder = Path(cfg.output_dir).expanduser()
    if cfg.output_dir and folder.exists() and not folder.is_dir():
        return [Finding("error", "output_dir", f"{folder} is a file, not a folder; choose a folder", (str(folder),))]
    existing = existing_outputs(cfg, cfg.max_train_epochs) if cfg.output_dir else []
    existing = [p for p in existing if p not in earlier_outputs(cfg)]       # a resumed run's own earlier saves
    if not existing:
        return []
    more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
    return [Finding("error", "output_name", f"{cfg.output_name!r} would overwrite {len(existing)} existing file(s) in "
                    f"{folder}: {existing[0]} already exists{more} and outputs are never overwritten; choose another "
                    "output_name or move them", tuple(map(str, existing)))]


def cuda_available() -> bool:
    """Without importing torch where the system says it: a hidden device list, or Linux's
    /proc/driver/nvidia (present when the NVIDIA driver is loaded)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if sys.platform.startswith("linux"):
        return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()
    import torch  # macOS/Windows: only torch knows; imported here, never at module level
    return torch.cuda.is_available()


def hardware_findings(cfg, cuda: bool) -> list[Finding]:
    out = []
    if cfg.mixed_precision == "fp16" and not cuda:
        out.append(Finding("error", "mixed_precision", "fp16 needs a CUDA GPU; on the CPU choose bf16 or no"))
    if cfg.optimizer_type in EIGHT_BIT_OPTIMIZERS and not cuda:
        out.append(Finding("warning", "optimizer_type", f"{cfg.optimizer_type} is a bitsandbytes 8-bit optimizer, "
                           "made to save GPU memory; there is no CUDA GPU here, where it only runs slower — use AdamW"))
    if cfg.torch_compile and cfg.dynamo_backend == "cudagraphs" and not cuda:
        out.append(Finding("error", "dynamo_backend", "cudagraphs needs a CUDA GPU and there is none here; "
                           "use inductor or turn torch_compile off"))
    elif cfg.torch_compile and not cuda:
        out.append(Finding("warning", "torch_compile", "without a CUDA GPU compiling takes minutes "
                           "and the steps are barely faster; turn torch_compile off"))
    if cfg.xformers and not cfg.mem_eff_attn and not cuda:
        out.append(Finding("error", "xformers", "xformers attention runs on a CUDA GPU only and there is none "
                           "here; use sdpa"))
    return out


# ---------------------------------------------------------------- dataset

def dataset_findings(cfg, progress: Progress) -> list[Finding]:
    try:
        folders, skipped = subset_folders(cfg.train_data_dir, cfg.reg_data_dir or None)
    except DatasetError as exc:           # messages start with the field: "train_data_dir /x: ..."
        field_name = str(exc).split()[0].rstrip(":")
        return [] if not cfg.train_data_dir else [Finding("error", field_name, str(exc))]
    out = [Finding("warning", "reg_data_dir" if _under(p, cfg.reg_data_dir) else "train_data_dir",
                   f"folder {p.name!r}: {why}", (str(p),)) for p, why in skipped]
    out += _loose_images(cfg)
    images = {f: list_images(f.dir) for f in folders}
    out += [Finding("warning", "", f"{f.dir.name}: no images in this folder, so it is not used", (str(f.dir),))
            for f, paths in images.items() if not paths]
    if not any(paths for f, paths in images.items() if not f.is_reg):
        out.append(Finding("error", "train_data_dir", "no training images in any <repeats>_<name> folder"))
    all_images = [p for paths in images.values() for p in paths]
    odd_case = [str(p) for p in all_images if p.suffix not in (p.suffix.lower(), p.suffix.upper())]
    if odd_case:
        out.append(Finding("note", "", f"{len(odd_case)} image(s) have a mixed-case extension (like .JpG): the "
                           "workbench reads them, sd-scripts on Linux does not", tuple(odd_case)))
    results = inspect_images(all_images, progress)
    out += decode_findings(results) + huge_findings(cfg, results) + upscale_findings(cfg, results)
    out += duplicate_findings(results)
    for folder, paths in images.items():
        out += caption_findings(folder, paths, cfg.caption_extension)
    return out + mask_findings(cfg, [p for f, paths in images.items() if not f.is_reg for p in paths])


def _under(path: Path, root: str) -> bool:
    return bool(root) and Path(root).expanduser().absolute() in path.absolute().parents


def _loose_images(cfg) -> list[Finding]:
    out = []
    for name in ("train_data_dir", "reg_data_dir"):
        root = getattr(cfg, name)
        loose = list_images(Path(root).expanduser()) if root else []
        if loose:
            out.append(Finding("warning", name, f"{len(loose)} image(s) sit directly in {root}, not in a "
                               "<repeats>_<name> folder, so they are not used; move them into one",
                               tuple(map(str, loose))))
    return out


def inspect_images(paths: list[Path], progress: Progress) -> dict[Path, ImageResult]:
    """Read and fully decode each image once: size, content hash, EXIF rotation, or the problem."""
    progress.total, progress.done = len(paths), 0
    results = {}
    for path in paths:
        if progress.cancelled:
            break
        results[path] = inspect_image(path)
        progress.done += 1
    return results


def inspect_image(path: Path) -> ImageResult:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return ImageResult(path, problem=f"cannot be read ({exc.strerror})")
    result = ImageResult(path, digest=hashlib.sha256(data).hexdigest())
    if not data:
        result.problem = "zero-byte file"
        return result
    try:
        with open_image(io.BytesIO(data), path) as im:
            im.load()
            result.size = im.size
            result.rotated = im.getexif().get(EXIF_ORIENTATION, 1) != 1
    except UnreadableImage as exc:
        result.problem = exc.why
    return result


def decode_findings(results: dict[Path, ImageResult]) -> list[Finding]:
    by_problem = defaultdict(list)
    for r in results.values():
        if r.problem:
            by_problem[r.problem.split(" (")[0]].append(str(r.path))
    out = [Finding("error", "", f"{len(files)} image(s): {problem}; training would stop on them — "
                   "re-export or remove them", tuple(files)) for problem, files in by_problem.items()]
    rotated = [str(r.path) for r in results.values() if r.rotated]
    if rotated:
        out.append(Finding("warning", "", f"{len(rotated)} image(s) carry an EXIF rotation, which sd-scripts "
                           "ignores: they train sideways or upside down; save them rotated", tuple(rotated)))
    return out


def huge_findings(cfg, results: dict[Path, ImageResult]) -> list[Finding]:
    """Images over HUGE_PIXELS: they train, but each load decodes every pixel before shrinking it to
    its bucket (3 bytes a pixel of memory, and seconds of CPU)."""
    big = sorted(((r.size[0] * r.size[1], str(r.path), r.size) for r in results.values() if r.size and huge(r.size)),
                 reverse=True)
    if not big:
        return []
    pixels, _, (w, h) = big[0]
    when = ("once, to cache its latents" if cfg.cache_latents else
            "every epoch (cache_latents would do it once)")
    return [Finding("note", "", f"{len(big)} image(s) over {HUGE_PIXELS / 1e6:.0f} megapixels (largest {w}×{h}, "
                    f"{pixels * 3 / 2**20:,.0f} MiB decoded): each is decoded in full {when}; downscaling them "
                    "to about twice the training resolution loses nothing", tuple(p for _, p, _ in big))]


def upscale_findings(cfg, results: dict[Path, ImageResult]) -> list[Finding]:
    """Images whose bucket is larger than they are: they are upscaled (blurry) to fit it."""
    try:
        bucketer = Bucketer(BucketSpec.from_config(cfg))
    except Exception:                 # an invalid resolution is already a config finding
        return []
    upscaled, out = [], []
    for r in results.values():
        if r.size is None:
            continue
        try:
            resized = bucketer.assign(*r.size).resized
        except BucketError as exc:
            out.append(Finding("error", "bucket_no_upscale", str(exc), (str(r.path),)))
            continue
        if resized[0] > r.size[0]:
            upscaled.append((resized[0] / r.size[0], str(r.path)))
    if upscaled:
        worst = max(upscaled)[0]
        out.append(Finding("warning", "", f"{len(upscaled)} image(s) are smaller than their bucket and will be "
                           f"upscaled (up to ×{worst:.2f}), which blurs them; use larger images or "
                           "bucket_no_upscale", tuple(p for _, p in sorted(upscaled, reverse=True))))
    return out


def duplicate_findings(results: dict[Path, ImageResult]) -> list[Finding]:
    groups = defaultdict(list)
    for r in results.values():
        if r.digest and not r.problem:
            groups[r.digest].append(str(r.path))
    return [Finding("warning", "", f"{len(files)} files are the same image, so it trains {len(files)}× as "
                    "often; keep one", tuple(files)) for files in groups.values() if len(files) > 1]


# ---------------------------------------------------------------- captions

@dataclass
class CaptionSurvey:
    missing: list[str] = field(default_factory=list)
    elsewhere: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # ext -> captions
    empty_file: list[str] = field(default_factory=list)
    blank: list[str] = field(default_factory=list)
    not_utf8: list[str] = field(default_factory=list)
    bom: list[str] = field(default_factory=list)    # UTF-8 with a byte-order mark: sd-scripts keeps it


def caption_findings(folder: SubsetFolder, images: list[Path], caption_extension: str) -> list[Finding]:
    survey = survey_captions(folder.dir, images, caption_extension)
    out = [Finding("warning", "caption_extension", f"{len(files)} caption(s) in {folder.dir.name} are {ext} "
                   f"files, but caption_extension is {caption_extension!r}: they are silently ignored; set "
                   f"caption_extension = {ext!r} or rename them", tuple(files))
           for ext, files in survey.elsewhere.items()]
    if survey.empty_file:
        out.append(Finding("error", "", f"{len(survey.empty_file)} empty caption file(s) in {folder.dir.name}: "
                           "sd-scripts stops on them; write a caption or delete the file", tuple(survey.empty_file)))
    if survey.not_utf8:
        out.append(Finding("error", "", f"{len(survey.not_utf8)} caption(s) in {folder.dir.name} are not UTF-8 "
                           "text; re-save them as UTF-8", tuple(survey.not_utf8)))
    if survey.blank:
        out.append(Finding("warning", "", f"{len(survey.blank)} caption(s) in {folder.dir.name} have an empty first "
                           "line: those images train with no text; write a caption", tuple(survey.blank)))
    if survey.bom:
        out.append(Finding("warning", "", f"{len(survey.bom)} caption(s) in {folder.dir.name} start with a "
                           "byte-order mark, which sd-scripts keeps as part of the first tag; save them as UTF-8 "
                           "without BOM", tuple(survey.bom)))
    return out + _missing_caption_findings(folder, images, survey.missing)


def _missing_caption_findings(folder: SubsetFolder, images: list[Path], missing: list[str]) -> list[Finding]:
    if not missing:
        return []
    tokens = folder.class_tokens
    if not tokens:
        return [Finding("warning", "", f"{len(missing)} image(s) in {folder.dir.name} have no caption and the "
                        "folder name gives no class tokens: they train with an empty caption", tuple(missing))]
    if len(missing) == len(images):
        return [Finding("note", "", f"{folder.dir.name}: no caption files; every image is captioned "
                        f"{tokens!r} (the folder's class tokens)", ())]
    return [Finding("warning", "", f"{len(missing)} of {len(images)} image(s) in {folder.dir.name} have no "
                    f"caption: they train as {tokens!r} (the class tokens); caption them", tuple(missing))]


def survey_captions(folder: Path, images: list[Path], caption_extension: str) -> CaptionSurvey:
    siblings = _caption_like_files(folder, caption_extension)
    survey = CaptionSurvey()
    for image in images:
        path = caption_path(image, caption_extension)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            others = siblings.get(os.path.splitext(image.name)[0], ())
            for other in others:
                survey.elsewhere[os.path.splitext(other)[1]].append(str(folder / other))
            if not others:             # a caption under another extension is reported as that
                survey.missing.append(str(image))
            continue
        except OSError:
            survey.not_utf8.append(str(path))
            continue
        _grade_caption(survey, path, data)
    return survey


def _grade_caption(survey: CaptionSurvey, path: Path, data: bytes) -> None:
    if not data:
        survey.empty_file.append(str(path))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        survey.not_utf8.append(str(path))
        return
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        survey.blank.append(str(path))
    elif text.startswith("\ufeff"):
        survey.bom.append(str(path))


def _caption_like_files(folder: Path, caption_extension: str) -> dict[str, list[str]]:
    """stem -> caption-like files beside the images that are not exactly caption_extension
    (.caption when it is .txt; also .TXT, which Linux does not match to .txt)."""
    wanted = CAPTION_EXTENSIONS + (caption_extension.lower(),)
    found = defaultdict(list)
    with os.scandir(folder) as entries:
        for e in entries:
            stem, ext = os.path.splitext(e.name)
            if ext != caption_extension and ext.lower() in wanted and e.is_file():
                found[stem].append(e.name)
    return found
