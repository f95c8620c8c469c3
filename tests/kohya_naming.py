"""sd-scripts' LoRA naming rule, written once for the tests and apart from trainer/ code, so the
network's names and the trainer's saved keys are checked against an independent statement of it."""
from __future__ import annotations

import torch


def kohya_names(unet, text_encoders, conv: bool = False) -> set[str]:
    """sd-scripts' naming rule, written here a second time, apart from trainer/ code."""
    names = set()
    for path, block in unet.named_modules():
        kind = type(block).__name__
        for sub, m in block.named_modules():
            linear_or_1x1 = isinstance(m, torch.nn.Linear) or (
                isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1))
            if sub and ((kind == "Transformer2DModel" and linear_or_1x1) or (
                    conv and kind in ("ResnetBlock2D", "Downsample2D", "Upsample2D")
                    and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))):
                names.add("lora_unet_" + f"{path}.{sub}".replace(".", "_"))
    prefixes = ["lora_te"] if len(text_encoders) == 1 else ["lora_te1", "lora_te2"]
    for prefix, encoder in zip(prefixes, text_encoders):
        for path, block in encoder.named_modules():
            if type(block).__name__ in ("CLIPAttention", "CLIPMLP"):
                for sub, m in block.named_modules():
                    if isinstance(m, torch.nn.Linear):
                        full = f"{path}.{sub}"
                        full = full if full.startswith("text_model.") else "text_model." + full
                        names.add(f"{prefix}_" + full.replace(".", "_"))
    return names
