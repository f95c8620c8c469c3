"""A step's loss without stopping the GPU to read it.

`float(loss)` inside the step makes the host wait for the GPU to finish every queued kernel before
it may queue the next step's: the launch overhead of the next step is then never hidden behind the
current one. The loss is instead copied to the host without blocking (pinned memory, a CUDA event)
and read when someone needs the number: the recipe's log, or the next step, which checks the
previous loss before its optimizer step (by then the GPU is busy with the new forward/backward, so
waiting for the old copy costs nothing). The NaN stop keeps its message and its step number; a
diverged step's update is at most one step late to be refused, and nothing is saved after it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from workbench.errors import UserError


class DivergedError(UserError):
    pass


def diverged_message(value: float, where: str, learning_rate: float) -> str:
    return (f"loss became {value} at {where}: training diverged; lower learning_rate "
            f"(now {learning_rate:g}) or use max_grad_norm")


@dataclass
class StepLoss:
    """The mean loss of one optimizer step, on its way to the host."""
    host: torch.Tensor                  # 0-dim, filled by a non-blocking copy
    ready: object                       # torch.cuda.Event recorded after the copy, or None on the CPU
    where: str                          # "step 3 (epoch 1)", for the error
    learning_rate: float
    checked: bool = False

    @classmethod
    def start(cls, loss: torch.Tensor, where: str, learning_rate: float) -> StepLoss:
        loss = loss.detach().float().reshape(())
        if loss.device.type != "cuda":
            return cls(loss.clone(), None, where, learning_rate)
        host = torch.empty((), dtype=torch.float32, pin_memory=True)
        host.copy_(loss, non_blocking=True)
        ready = torch.cuda.Event()
        ready.record()
        return cls(host, ready, where, learning_rate)

    def value(self) -> float:
        """The loss as a number (waits for its copy only); raises the NaN stop when it is not finite."""
        if self.ready is not None:
            self.ready.synchronize()
        value = float(self.host)
        if not math.isfinite(value):
            raise DivergedError(diverged_message(value, self.where, self.learning_rate))
        self.checked = True
        return value
