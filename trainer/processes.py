"""Training in several processes (`accelerate launch --num_processes N` or `torchrun --nproc_per_node N`).

The LoRA is hooked into the UNet rather than wrapped in DistributedDataParallel, so what DDP would
do is done here by hand: every process starts from the same weights (the same seed), trains on its
share of each epoch's batches (data.process_share), and averages the gradients with the others
before each optimizer step, so the weights stay identical; agree() checks that they are. Only
process 0 writes files. Every collective goes through this module: a collective that fails means
another process died, and the error says so instead of a backend traceback.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager

import torch

from workbench.errors import UserError

# the environment variables the launchers set (torchrun: RANK/WORLD_SIZE; mpirun: PMI_*, OMPI_*, MV2_*)
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class PeerFailed(UserError):
    """A collective broke off: another process of the run failed (its own error is in the log)."""


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def launched_rank() -> int:
    """This process's index as its launcher set it (0 when started alone), known before torch loads."""
    return _first_int(RANK_VARS, 0)


def launched_world_size() -> int:
    return _first_int(WORLD_SIZE_VARS, 1)


def make_accelerator(mixed_precision: str):
    """The Accelerator of this process. Without a GPU, accelerate only joins the processes of a
    torchrun launch when told to use the CPU (else each would silently train alone and all would
    write the same files), so the CPU is asked for there: the processes then talk over gloo."""
    from accelerate import Accelerator
    world = launched_world_size()
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=world > 1 and not torch.cuda.is_available())
    if accelerator.num_processes != world:
        raise UserError(f"launched as {world} processes but accelerate set up {accelerator.num_processes}; "
                        "start several processes with `accelerate launch --num_processes N -m trainer RUN_DIR` "
                        "or `torchrun --nproc_per_node N -m trainer RUN_DIR`")
    return accelerator


def process_seed(seed: int, index: int, step: int = 0) -> int:
    """Process 0 keeps the run's seed (it draws what a one-process run draws); every other process
    gets its own, so no two add the same noise to different images. `step` moves a resumed run on."""
    if index == 0:
        return seed
    return random.Random(f"{seed}/{index}/{step}").randrange(2**32)


@contextmanager
def collective(accelerator):
    """Turn a broken collective into one line that says where to look."""
    try:
        yield
    except RuntimeError as exc:     # gloo: "Connection closed by peer"; nccl: a watchdog error
        if accelerator.num_processes == 1 or isinstance(exc, torch.OutOfMemoryError):
            raise
        first_line = str(exc).strip().splitlines()[0][:160]
        raise PeerFailed(f"another training process stopped answering ({first_line}); its own error is in "
                         "trainer.log") from None


def average_gradients(accelerator, params: list[torch.Tensor], loss: torch.Tensor) -> torch.Tensor:
    """Average the gradients of `params` and the step's loss over the processes, in one all-reduce.
    A parameter with no gradient on some process (module_dropout skipped its module there) counts
    zero there, as DDP counts an unused parameter; one with no gradient anywhere keeps none, so the
    optimizer leaves it alone as it would in one process. Returns the mean loss of all processes, a
    0-dim tensor on the device (the host does not wait for it here)."""
    if accelerator.num_processes == 1:
        return loss
    trainable = [p for p in params if p.requires_grad]
    has_grad = [float(p.grad is not None) for p in trainable]
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in trainable]
    flat = torch.cat([loss.detach().float().reshape(1), torch.tensor(has_grad, device=accelerator.device)]
                     + grads)
    with collective(accelerator):
        flat = accelerator.reduce(flat, reduction="mean")
    offset = 1 + len(trainable)
    for p, share in zip(trainable, flat[1:offset].tolist()):
        mean = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        if share == 0:
            continue
        if p.grad is None:
            p.grad = mean.to(p.dtype).clone()
        else:
            p.grad.copy_(mean)
    return flat[0]


def any_process(accelerator, flag: bool) -> bool:
    """True on every process when it is true on one (a stop that reached only some processes)."""
    if accelerator.num_processes == 1:
        return flag
    with collective(accelerator):
        total = accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), reduction="sum")
    return bool(total > 0)


def from_process_zero(accelerator, value):
    """Process 0's value on every process (a seed drawn at random must be one seed)."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list
    with collective(accelerator):
        return broadcast_object_list([value], from_process=0)[0]


def agree(accelerator, value: str, what: str) -> None:
    """Refuse to go on when the processes hold different `what` (a digest): they would have stopped
    training one network. Every process raises, so none is left waiting in a collective."""
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import gather_object
    with collective(accelerator):
        values = gather_object([value])
    if len(set(values)) > 1:
        raise UserError(f"the {len(values)} training processes hold different {what} "
                        f"({', '.join(v[:12] for v in values)}): a bug in the trainer; trainer.log has the run")


@contextmanager
def main_process_first(accelerator, wanted: bool = True):
    """Process 0 runs the block before the others start it (it writes files the others then read).
    Only the barriers count as collectives: an error inside the block is that block's own."""
    several = wanted and accelerator.num_processes > 1
    if several and not accelerator.is_main_process:
        with collective(accelerator):
            accelerator.wait_for_everyone()
    yield
    if several and accelerator.is_main_process:
        with collective(accelerator):
            accelerator.wait_for_everyone()
