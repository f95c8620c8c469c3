"""A transformers image-to-text captioner (BLIP, GIT, Florence-2, and other models whose config
names a generating architecture and whose folder holds a processor).

The model class is the one config.json names (`architectures`), the processor AutoProcessor's.
Generation: `max_length` new tokens at most, `num_beams` beams, and the prompt, when given, passed
as the text the model continues (BLIP, GIT) or its task token (Florence-2's <CAPTION>). The
confidence shown in a preview is the geometric mean of the chosen tokens' probabilities.
"""
from __future__ import annotations

from workbench.captioning.models import ModelSource
from workbench.captioning.tags import Prediction, ScoredTag
from workbench.errors import UserError


class SentenceCaptioner:
    def __init__(self, source: ModelSource, max_length: int, num_beams: int, prompt: str = ""):
        import torch
        self.torch = torch
        self.model, self.processor = _load(source)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.max_length, self.num_beams, self.prompt = max_length, num_beams, prompt

    def predict(self, images) -> list[Prediction]:
        images = [im.convert("RGB") for im in images]
        text = {"text": [self.prompt] * len(images)} if self.prompt else {}
        inputs = self._accepted(self.processor(images=images, return_tensors="pt", **text)).to(self.device)
        with self.torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_length, num_beams=self.num_beams,
                                      output_scores=True, return_dict_in_generate=True)
        texts = self.processor.batch_decode(out.sequences, skip_special_tokens=True)
        confidences = self._confidences(out)
        return [Prediction([t.strip()] if t.strip() else [], [ScoredTag(t.strip(), c, "caption")])
                for t, c in zip(texts, confidences)]

    @staticmethod
    def _accepted(inputs):
        """The processor's outputs generate() takes: GIT's processor adds token_type_ids, which no
        image-to-text model's generate uses and GIT's refuses."""
        inputs.pop("token_type_ids", None)
        return inputs

    def _confidences(self, out) -> list[float]:
        beams = getattr(out, "beam_indices", None)
        steps = self.model.compute_transition_scores(out.sequences, out.scores, beams, normalize_logits=beams is None)
        chosen = steps.isfinite() & (steps != 0) if beams is not None else steps.isfinite()
        logp = (steps.where(chosen, 0.0).sum(dim=1) / chosen.sum(dim=1).clamp(min=1))
        return [float(x) for x in logp.exp()]


def _load(source: ModelSource):
    import transformers
    from transformers.utils import logging
    logging.set_verbosity_error()          # not the user's problem: processor backends, weight-loading bars
    logging.disable_progress_bar()
    config = transformers.AutoConfig.from_pretrained(source.folder)
    names = list(getattr(config, "architectures", None) or [])
    model_class = next((getattr(transformers, n) for n in names if hasattr(transformers, n)), None)
    if model_class is None or not hasattr(model_class, "generate"):
        raise UserError(f"--model {source.name}: {', '.join(names) or 'its architecture'} is not an image-to-text "
                        f"model this transformers ({transformers.__version__}) can generate captions with")
    try:
        processor = transformers.AutoProcessor.from_pretrained(source.folder)
    except (OSError, ValueError) as exc:
        raise UserError(f"--model {source.name}: no image processor and tokenizer in it ({exc})") from None
    return model_class.from_pretrained(source.folder).eval(), processor
