"""Regional compilation of the UNet for training (PyTorch's regional compilation recipe, diffusers'
`compile_repeated_blocks`): torch.compile each repeated block, not the whole UNet.

Why: a whole-UNet graph is one static graph per batch shape (minutes each with inductor; a
10-bucket dataset compiled for half an hour), and inductor's dynamic-shape path fails on the whole
UNet (torch 2.13: "cannot determine truth value of Relational"). The repeated blocks share their
code, so dynamo keeps one cache per block class: a run compiles one graph per block *kind*
(its widths, a shortcut or not) and, with the sizes that vary across buckets marked dynamic
(batch, height, width, token count), not again for another bucket. A block kind whose dynamic
compile fails falls back to static graphs (one per shape), with a log line saying so.

The LoRA stays hooked into the base layers (patched forwards, traced through), the blocks keep
their names (no `_orig_mod` in any key), and only forwards with gradients on use the compiled
code: sampling (no_grad) runs the same modules eagerly and never waits for a compile.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch._dynamo.exc

# diffusers' UNet2DConditionModel lists BasicTransformerBlock as its repeated block; the resnets
# repeat as much (22 of them in SD1.5) and hold half the UNet's kernels
REPEATED_BLOCKS = ("BasicTransformerBlock", "ResnetBlock2D")
RECOMPILE_LIMIT = 64     # graphs per block class: its kinds (SD1.5: ~12 resnet kinds), more with static fallback


@dataclass
class RegionalCompile:
    """What was compiled, and which block classes fell back to static shapes (filled as they run)."""
    backend: str
    blocks: Counter = field(default_factory=Counter)        # class name -> instances compiled
    static: dict[str, str] = field(default_factory=dict)     # class name -> why dynamic failed
    log: object = print

    def describe(self) -> str:
        counts = ", ".join(f"{n} {name}" for name, n in sorted(self.blocks.items()))
        return (f"torch.compile ({self.backend}), regional: {counts} compiled once per block kind, batch/height/"
                "width/tokens dynamic (no recompile per bucket)")


def compile_repeated_blocks(unet: torch.nn.Module, backend: str, log=print,
                            classes: tuple[str, ...] = REPEATED_BLOCKS) -> RegionalCompile:
    """Compile each repeated block of `unet` in place (its forward is swapped, its parameters and
    names are untouched). Returns the record the recipe logs."""
    import torch._dynamo.config as dynamo
    dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, RECOMPILE_LIMIT * len(classes) * 4)
    record = RegionalCompile(backend, log=log)
    _checkpoints_recompute_whole_blocks(unet)
    for module in unet.modules():
        name = type(module).__name__
        if name in classes and not hasattr(module, "_eager_forward"):
            _compile_block(module, record)
            record.blocks[name] += 1
    return record


def _checkpoints_recompute_whole_blocks(unet: torch.nn.Module) -> None:
    """gradient_checkpointing: torch's checkpoint ends a recomputation early by raising inside it; raised
    through a compiled block that breaks dynamo (torch 2.13: "target_frame.early_stop is set"). Checkpoints
    started inside the UNet's forward therefore recompute their whole block (the same numbers)."""
    from torch.utils.checkpoint import set_checkpoint_early_stop
    open_contexts = []

    def enter(module, args):
        open_contexts.append(set_checkpoint_early_stop(False))
        open_contexts[-1].__enter__()

    def leave(module, args, output):
        if open_contexts:
            open_contexts.pop().__exit__(None, None, None)
    unet.register_forward_pre_hook(enter)
    unet.register_forward_hook(leave, always_call=True)


def _compile_block(block: torch.nn.Module, record: RegionalCompile) -> None:
    eager = block.forward
    dynamic = torch.compile(eager, backend=record.backend, dynamic=None)
    static = torch.compile(eager, backend=record.backend, dynamic=False)
    kind = type(block).__name__

    def forward(*args, **kwargs):
        if not torch.is_grad_enabled():          # sampling, validation: eager, no compile of their shapes
            return eager(*args, **kwargs)
        if kind in record.static:
            return static(*args, **kwargs)
        try:
            return dynamic(*map(marked, args), **{key: marked(value) for key, value in kwargs.items()})
        # a dynamo/inductor failure happens before the block ran: retry static. sympy's "cannot determine
        # truth value of Relational" is a TypeError; an out-of-memory or a real bug is none of these
        except (torch._dynamo.exc.TorchDynamoException, TypeError) as exc:
            record.static[kind] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc) else ''}"
            record.log(f"torch.compile: {kind} failed with dynamic shapes ({record.static[kind]}); "
                       "it compiles static graphs instead, one per batch shape")
            return static(*args, **kwargs)

    block._eager_forward = eager
    block.forward = forward


def marked(value):
    """`value` with the sizes that change from bucket to bucket marked dynamic: every dim but the channels
    (dim 1 of an image-shaped tensor, the last of a token or embedding tensor); a size of 1 stays
    specialised. The mark goes on an alias (a view: no copy, no kernel), so the caller's tensor stays
    unmarked for a static retry."""
    if not isinstance(value, torch.Tensor) or value.dim() < 2:
        return value
    alias = value.view(value.shape)
    channels = 1 if value.dim() == 4 else value.dim() - 1
    for dim in range(value.dim()):
        if dim != channels:
            torch._dynamo.maybe_mark_dynamic(alias, dim)
    return alias


@contextmanager
def eager_blocks(unet: torch.nn.Module):
    """Inside: every compiled block runs its eager forward (a FLOP count, a comparison on one model)."""
    swapped = [(module, module.forward) for module in unet.modules() if hasattr(module, "_eager_forward")]
    for module, _ in swapped:
        module.forward = module._eager_forward
    try:
        yield
    finally:
        for module, compiled in swapped:
            module.forward = compiled
