"""Optimizers and the LR schedule: a registry of small builder functions, one per optimizer_type.

optimizer_args are "key=value" strings whose values are Python literals (ast.literal_eval, as
sd-scripts). A builder may add the arguments sd-scripts adds (SGD's momentum, Adafactor's
relative_step) to the dict it is given; ss_optimizer records them, as sd-scripts does.

The schedule is a torch LambdaLR with one workbench.planning.schedules.lr_lambda per param group, the very
function the app draws, so the preview is the curve run. Adafactor with its relative step uses
transformers' AdafactorSchedule instead (its LR lives inside the optimizer).
"""
from __future__ import annotations

import ast

import torch

from workbench.config.schema import parse_key_values
from workbench.errors import UserError
from workbench.planning.schedules import lr_lambda, warmup_steps_for


def parse_optimizer_args(items: list[str]) -> dict:
    """["weight_decay=0.01", "betas=(0.9,0.99)"] -> {"weight_decay": 0.01, "betas": (0.9, 0.99)}."""
    out = {}
    for key, text in parse_key_values(items, "optimizer_args").items():
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError(f'optimizer_args: {key}="{text}" is not a Python value (a number, True/False, '
                            'a tuple like (0.9,0.99) or a quoted string)') from None
    return out


def _bnb(name: str):
    try:
        import bitsandbytes
    except ImportError:
        raise UserError("optimizer_type: the 8-bit optimizers need bitsandbytes (pip install bitsandbytes)") from None
    return getattr(bitsandbytes.optim, name)


def _module(name: str, package: str):
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UserError(f"optimizer_type: needs the {package} package (pip install {package})") from None


def _sgd_nesterov(cls):
    def build(groups, lr, kwargs):
        kwargs.setdefault("momentum", 0.9)     # Nesterov needs momentum; sd-scripts' default
        return cls(groups, lr=lr, nesterov=True, **kwargs)
    return build


def adafactor_relative_step(kwargs: dict) -> bool:
    """sd-scripts' rule: relative_step unless turned off, and always with warmup_init."""
    return bool(kwargs.get("relative_step", True) or kwargs.get("warmup_init", False))


def _adafactor(groups, lr, kwargs):
    from transformers.optimization import Adafactor
    kwargs["relative_step"] = adafactor_relative_step(kwargs)
    if kwargs["relative_step"]:
        # the step size comes from the optimizer itself; the configured LR only seeds the schedule's report
        return Adafactor(groups, lr=None, **kwargs)
    return Adafactor(groups, lr=lr, **kwargs)


def _dadapt(name: str):
    def build(groups, lr, kwargs):
        # sd-scripts' "DAdaptation" is the preprint's Adam, kept in dadaptation.experimental
        module = _module("dadaptation.experimental" if name == "DAdaptAdamPreprint" else "dadaptation", "dadaptation")
        return getattr(module, name)(groups, lr=lr, **kwargs)
    return build


OPTIMIZERS = {
    "AdamW": lambda groups, lr, kw: torch.optim.AdamW(groups, lr=lr, **kw),
    "AdamW8bit": lambda groups, lr, kw: _bnb("AdamW8bit")(groups, lr=lr, **kw),
    "PagedAdamW8bit": lambda groups, lr, kw: _bnb("PagedAdamW8bit")(groups, lr=lr, **kw),
    "Lion8bit": lambda groups, lr, kw: _bnb("Lion8bit")(groups, lr=lr, **kw),
    "SGDNesterov8bit": lambda groups, lr, kw: _sgd_nesterov(_bnb("SGD8bit"))(groups, lr, kw),
    "Lion": lambda groups, lr, kw: _module("lion_pytorch", "lion-pytorch").Lion(groups, lr=lr, **kw),
    "SGDNesterov": _sgd_nesterov(torch.optim.SGD),
    "Adafactor": _adafactor,
    "DAdaptation": _dadapt("DAdaptAdamPreprint"),
    "DAdaptAdam": _dadapt("DAdaptAdam"),
    "DAdaptAdaGrad": _dadapt("DAdaptAdaGrad"),
    "DAdaptAdan": _dadapt("DAdaptAdan"),
    "DAdaptLion": _dadapt("DAdaptLion"),
    "DAdaptSGD": _dadapt("DAdaptSGD"),
    "Prodigy": lambda groups, lr, kw: _module("prodigyopt", "prodigyopt").Prodigy(groups, lr=lr, **kw),
}


def build_optimizer(cfg, groups: list[dict]) -> tuple[torch.optim.Optimizer, str]:
    """The optimizer over the network's param groups, and its description for ss_optimizer
    ("torch.optim.adamw.AdamW(weight_decay=0.01)", sd-scripts' form)."""
    if cfg.optimizer_type not in OPTIMIZERS:
        raise UserError(f"optimizer_type: unknown {cfg.optimizer_type!r}; valid: {', '.join(OPTIMIZERS)}")
    kwargs = parse_optimizer_args(cfg.optimizer_args)
    try:
        optimizer = OPTIMIZERS[cfg.optimizer_type](groups, cfg.learning_rate, kwargs)   # may add defaults
    except TypeError as exc:
        raise UserError(f"optimizer_args: {cfg.optimizer_type} does not take them ({exc})") from None
    cls = type(optimizer)
    args = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return optimizer, f"{cls.__module__}.{cls.__name__}" + (f"({args})" if args else "")


def uses_adafactor_schedule(cfg) -> bool:
    """Adafactor's relative step makes its own LR: the scheduler must be its AdafactorSchedule."""
    if cfg.optimizer_type != "Adafactor":
        return False
    return adafactor_relative_step(parse_optimizer_args(cfg.optimizer_args))


def scheduler_name(cfg) -> str:
    """The schedule that runs, as ss_lr_scheduler records it."""
    return f"adafactor:{cfg.learning_rate}" if uses_adafactor_schedule(cfg) else cfg.lr_scheduler


def build_scheduler(cfg, optimizer, total_steps: int):
    if uses_adafactor_schedule(cfg):
        from transformers.optimization import AdafactorSchedule
        return AdafactorSchedule(optimizer, initial_lr=cfg.learning_rate)
    if cfg.lr_scheduler == "adafactor":
        raise UserError("lr_scheduler: adafactor only works with optimizer_type Adafactor (relative_step); "
                        "choose another schedule")
    warmup = warmup_steps_for(cfg.lr_warmup_steps, total_steps)
    lambdas = [lr_lambda(cfg.lr_scheduler, warmup, total_steps, cfg.lr_scheduler_num_cycles,
                         cfg.lr_scheduler_power, lr_init=group["lr"] or 1.0) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def group_ds(optimizer) -> dict[str, float | None]:
    """{group name: D-Adaptation's / Prodigy's d} (None for the other optimizers, which have none)."""
    return {group.get("name", str(i)): group.get("d") for i, group in enumerate(optimizer.param_groups)}


def group_lrs(optimizer, scheduler) -> dict[str, float]:
    """{group name: the schedule's current LR}; Adafactor's relative step reports its own."""
    lrs = scheduler.get_last_lr()
    groups = optimizer.param_groups
    return {group.get("name", str(i)): float(lr or 0.0) for i, (group, lr) in enumerate(zip(groups, lrs))}
