"""A WD14-style ONNX tagger, prepared the way kohya-ss/sd-scripts' tag_images_by_wd14_tagger.py
prepares its input: transparent pixels onto white, the image centred on a white square (pad
before resizing, so nothing is cropped or stretched), resized to the model's input side (area
averaging when shrinking, Lanczos when enlarging, as cv2's INTER_AREA / LANCZOS4 there), RGB→BGR,
float32 in 0–255 (no normalisation), NHWC. The model's output is one sigmoid score per tag.

onnxruntime runs it on CUDA when its GPU provider is installed and works, else on the CPU.
"""
from __future__ import annotations

from workbench.captioning.models import ModelSource
from workbench.captioning.tags import Prediction, TagRule, read_tag_table, select_tags, top_scores
from workbench.captioning.threads import parallel_map
from workbench.errors import UserError

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
WHITE = (255, 255, 255)
SHOWN_SCORES = 24            # scores per image a preview lists, kept or not


def to_square_rgb(image):
    """The image on a white square of its longer side, centred (odd padding: the extra pixel
    goes right / bottom), transparency flattened onto white."""
    from PIL import Image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, WHITE)
        image.paste(rgba, mask=rgba.getchannel("A"))
    image = image.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), WHITE)
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def tagger_input(images, side: int):
    """A float32 NHWC batch, BGR, 0–255, each image padded to a square and resized to `side` px."""
    import numpy as np
    return np.ascontiguousarray(np.stack(parallel_map(lambda image: _tagger_pixels(image, side), list(images))))


def _tagger_pixels(image, side: int):
    import numpy as np
    from PIL import Image
    square = to_square_rgb(image)
    method = Image.Resampling.BOX if square.width > side else Image.Resampling.LANCZOS
    resized = square.resize((side, side), method) if square.width != side else square
    return np.asarray(resized, dtype=np.float32)[:, :, ::-1]      # RGB -> BGR


class Tagger:
    def __init__(self, source: ModelSource, rule: TagRule):
        self.table = read_tag_table(source.folder / "selected_tags.csv")
        self.rule = rule
        self.session = _session(source.folder / "model.onnx")
        spec = self.session.get_inputs()[0]
        self.input_name = spec.name
        self.side = _input_side(spec.shape, source)
        # a model exported with a fixed batch dimension takes exactly that many images per call
        self.fixed_batch = spec.shape[0] if isinstance(spec.shape[0], int) else None
        self.device = self.session.get_providers()[0]

    def predict(self, images) -> list[Prediction]:
        step = self.fixed_batch or max(1, len(images))
        scores = []
        for start in range(0, len(images), step):
            batch = tagger_input(images[start:start + step], self.side)
            scores.extend(self.session.run(None, {self.input_name: batch})[0])
        return [Prediction([t.tag for t in select_tags(s, self.table, self.rule)],
                           top_scores(s, self.table, SHOWN_SCORES)) for s in scores]


def _session(path):
    import onnxruntime as ort
    available = ort.get_available_providers()
    providers = [p for p in PREFERRED_PROVIDERS if p in available]
    options = ort.SessionOptions()
    options.log_severity_level = 3            # errors only: a missing CUDA library is not the user's problem
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:                  # onnxruntime raises its own types for a damaged file
        raise UserError(f"{path}: onnxruntime cannot load it ({exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0][:200]})") from None


def _input_side(shape, source: ModelSource) -> int:
    if len(shape) != 4 or shape[3] != 3 or not isinstance(shape[1], int) or shape[1] != shape[2]:
        raise UserError(f"{source.folder / 'model.onnx'}: input shape {shape} is not a WD14 tagger's "
                        "(batch, side, side, 3)")
    return shape[1]
