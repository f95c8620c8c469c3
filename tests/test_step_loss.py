"""The NaN stop without a host wait inside the step (trainer/step_loss.py): a step hands back its
loss on its way to the host; reading it, or the next step, stops a diverged run with the message
the run has always given."""
from __future__ import annotations

import math
import re

import pytest
import torch

from tests.test_compile import demo, demo_stepper, micro_batch  # noqa: F401  (demo: the shared fixture)
from trainer.step_loss import DivergedError, StepLoss


def test_a_finite_loss_reads_back_its_value_and_a_nan_stops_with_the_runs_message():
    assert StepLoss.start(torch.tensor(0.25), "step 1 (epoch 1)", 1e-4).value() == 0.25
    with pytest.raises(DivergedError) as stop:
        StepLoss.start(torch.tensor([math.nan]), "step 3 (epoch 2)", 1e30).value()
    assert str(stop.value) == ("loss became nan at step 3 (epoch 2): training diverged; lower learning_rate "
                               "(now 1e+30) or use max_grad_norm")


@pytest.mark.slow
def test_the_next_step_stops_on_a_nan_loss_nobody_read(demo):  # noqa: F811
    """As the benchmark steps (nobody reads the loss): the step after the diverged one stops, naming it."""
    stepper = demo_stepper(demo, learning_rate=1e30, max_grad_norm=0.0)
    raised_in = None
    with pytest.raises(DivergedError) as stop:
        for raised_in in range(1, 8):
            assert isinstance(stepper.step([micro_batch(2, 16, 16)], 1, f"step {raised_in} (epoch 1)"), StepLoss)
    named = re.search(r"^loss became (?:nan|inf|-inf) at step (\d+) \(epoch 1\): training diverged", str(stop.value))
    assert named and int(named.group(1)) == raised_in - 1
