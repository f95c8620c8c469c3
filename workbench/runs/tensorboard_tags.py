"""The TensorBoard scalars of a run under sd-scripts' tags, so runs of both tools line up in one
TensorBoard: train_network.py's generate_step_logs (every step) and its end-of-epoch log. Pure: the
trainer hands in the numbers, this decides the names."""
from __future__ import annotations

from workbench.lora.write_metadata import sd_scripts_args

TEXT_ENCODER = "textencoder"


def lr_description(group_name: str) -> str:
    """The trainer's optimizer group name → sd-scripts' LR description ("text_encoder" → "textencoder";
    "unet", "unet plus", "unet_block3" … are already sd-scripts' words)."""
    return group_name.replace("text_encoder", TEXT_ENCODER)


def sd_scripts_order(groups: list[tuple[str, float, float | None]]) -> list[tuple[str, float, float | None]]:
    """sd-scripts builds the text encoder's groups first, then the UNet's; its group<i> tags count in
    that order."""
    return sorted(groups, key=lambda g: not g[0].startswith(TEXT_ENCODER))


def lr_scalars(groups: list[tuple[str, float, float | None]], unet_only: bool) -> dict[str, float]:
    """groups: (description, LR, D-Adaptation/Prodigy's d or None) in sd-scripts' order. Each group
    is logged under its description (lr/unet, lr/textencoder, lr/unet plus …) and d × LR under
    lr/d*lr/<description>. sd-scripts' loop over the groups has an `else:` that always runs after it:
    the first group once more as lr/textencoder (unless network_train_unet_only) and every later
    group as lr/group<i> — so those tags are there too, with the same values."""
    logs: dict[str, float] = {}
    for desc, lr, d in groups:
        logs[f"lr/{desc}"] = lr
        if d is not None:
            logs[f"lr/d*lr/{desc}"] = d * lr
    first = 0 if unet_only else 1
    if not unet_only and groups:
        logs[f"lr/{TEXT_ENCODER}"] = groups[0][1]
    for i in range(first, len(groups)):
        logs[f"lr/group{i}"] = groups[i][1]
        if groups[i][2] is not None:
            logs[f"lr/d*lr/group{i}"] = groups[i][2] * groups[i][1]
    return logs


def step_scalars(loss: float, loss_avg: float, groups: list[tuple[str, float, float | None]], unet_only: bool,
                 max_norm: tuple[int, float, float] | None = None) -> dict[str, float]:
    """One step's scalars: loss/current, loss/average (the mean over the last epoch's worth of
    steps), the LRs, and with scale_weight_norms (modules scaled, mean norm, max norm) as
    max_norm/keys_scaled, max_norm/max_key_norm and norm/avg_key_norm."""
    logs = {"loss/current": loss, "loss/average": loss_avg}
    if max_norm is not None:
        scaled, mean_norm, max_key_norm = max_norm
        logs.update({"max_norm/keys_scaled": scaled, "max_norm/max_key_norm": max_key_norm,
                     "norm/avg_key_norm": mean_norm})
    return {**logs, **lr_scalars(groups, unet_only)}


def epoch_scalars(epoch_average: float | None) -> dict[str, float]:
    """Logged at TensorBoard step = the epoch number (1, 2 …), as sd-scripts' epoch_logging does.
    None (no step taken since the run started: a run resumed right at an epoch's end) logs nothing."""
    return {} if epoch_average is None else {"loss/epoch_average": epoch_average}


def validation_scalars(per: str, loss: float, divergence: float | None) -> dict[str, float]:
    """A validation's scalars, `per` "step" or "epoch": loss/validation/step_average and
    step_divergence (logged at the step), or epoch_average and epoch_divergence (at the epoch)."""
    logs = {f"loss/validation/{per}_average": loss}
    if divergence is not None:
        logs[f"loss/validation/{per}_divergence"] = divergence
    return logs


def unet_only(cfg) -> bool:
    """network_train_unet_only as sd-scripts runs the exported job (text_encoder_lr 0 turns it on)."""
    return bool(sd_scripts_args(cfg).get("network_train_unet_only", False))
