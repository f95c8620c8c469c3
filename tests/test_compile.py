"""Regional compilation (trainer/compile.py) on the demo's tiny real UNet, LoRA hooked in: the same
losses as eager, one compile per block kind whatever the bucket shapes (counted with dynamo's
counters), the same module and LoRA key names, samples eager, and the static fallback of a block
whose dynamic compile fails."""
from __future__ import annotations

import pytest
import torch

from workbench.config.schema import load_toml
from workbench.models.demo import build_demo

pytestmark = pytest.mark.slow
# (images, latent height, latent width): four buckets of a 128-px run at batch 2
BUCKET_SHAPES = [(2, 16, 16), (2, 8, 24), (2, 24, 8), (2, 12, 20)]


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return build_demo(tmp_path_factory.getbasetemp() / "demo")


def demo_stepper(demo, compile_backend: str | None = None, log=print, **changes):
    """A Stepper on freshly loaded demo SD1 models (UNet-only LoRA), optionally compiled regionally."""
    from accelerate import Accelerator

    from trainer import models as model_loading
    from trainer.stepper import WEIGHT_DTYPES, Stepper
    cfg, _ = load_toml(demo.config)
    cfg = cfg.replace(network_train_unet_only=True, dynamo_backend=compile_backend or "inductor", **changes)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
    models = model_loading.load_models(cfg)
    models.prepare(accelerator.device, WEIGHT_DTYPES[cfg.mixed_precision], cfg.gradient_checkpointing, False)
    torch.manual_seed(0)                       # the same initial LoRA weights in every stepper
    return Stepper(cfg, models, accelerator, total_steps=100, compile_unet=compile_backend is not None, log=log)


def micro_batch(images: int, height: int, width: int):
    from trainer.stepper import MicroBatch
    latents = torch.randn(images, 4, height, width, generator=torch.Generator().manual_seed(height * width + images))
    return MicroBatch(latents, ["wbdemo, circle"] * images, None, torch.ones(images))


def losses_over(stepper, shapes) -> tuple[list[float], list[int]]:
    """Each shape's step loss (same noise seed per step) and dynamo's graph count after it."""
    from torch._dynamo.utils import counters
    losses, graphs = [], []
    for shape in shapes:
        torch.manual_seed(1)
        losses.append(stepper.step([micro_batch(*shape)], 1).value())
        graphs.append(counters["stats"]["unique_graphs"])
    return losses, graphs


@pytest.fixture
def fresh_dynamo():
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def test_compiled_blocks_train_the_eager_losses_and_compile_once_for_all_buckets(demo, fresh_dynamo):
    eager, _ = losses_over(demo_stepper(demo), BUCKET_SHAPES)
    stepper = demo_stepper(demo, "aot_eager")
    compiled, graphs = losses_over(stepper, BUCKET_SHAPES)
    assert compiled == pytest.approx(eager, rel=1e-5)
    kinds = {(type(m).__name__, tuple(p.shape for p in m.parameters())) for m in stepper.unet.modules()
             if hasattr(m, "_eager_forward")}
    # one graph per block kind (class × parameter shapes), at the first bucket; none for the other three
    assert 0 < graphs[0] <= len(kinds) and graphs == [graphs[0]] * len(BUCKET_SHAPES)
    assert stepper.compiled.static == {}
    assert sum(stepper.compiled.blocks.values()) == 15       # demo UNet: 7 transformer + 8 resnet blocks


def test_a_batch_of_one_adds_one_specialised_set_and_then_nothing(demo, fresh_dynamo):
    """A size of 1 stays specialised in dynamo: a bucket's single last image compiles the kinds once
    more (and a block may guard once on a size-1 tensor's strides); after that nothing compiles."""
    stepper = demo_stepper(demo, "eager")
    _, graphs = losses_over(stepper, [(2, 16, 16), (1, 16, 16), (1, 8, 24), (3, 12, 20), (1, 24, 8), (4, 8, 16)])
    assert graphs[0] < graphs[1] <= graphs[2] <= 2 * graphs[0] + 1
    assert graphs[3:] == [graphs[2]] * 3


def test_compiling_keeps_module_and_lora_key_names_and_samples_run_eager(demo, fresh_dynamo):
    from torch._dynamo.utils import counters
    plain = demo_stepper(demo)
    stepper = demo_stepper(demo, "eager")
    assert list(stepper.unet.state_dict()) == list(plain.unet.state_dict())
    assert list(stepper.network.kohya_state_dict()) == list(plain.network.kohya_state_dict())
    with torch.no_grad():              # how the sample pipeline calls the UNet
        stepper.unet(torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 77, 32))
    assert counters["stats"]["unique_graphs"] == 0


def test_gradient_checkpointing_compiles_the_same_losses(demo, fresh_dynamo):
    eager, _ = losses_over(demo_stepper(demo, gradient_checkpointing=True), BUCKET_SHAPES[:2])
    compiled, graphs = losses_over(demo_stepper(demo, "aot_eager", gradient_checkpointing=True), BUCKET_SHAPES[:2])
    assert compiled == pytest.approx(eager, rel=1e-5) and graphs[0] > 0


def refuses_symbolic_shapes(graph, example_inputs):
    """A dynamo backend that fails as inductor's dynamic path failed on the whole UNet (torch 2.13)."""
    examples = [node.meta.get("example_value") for node in graph.graph.nodes if node.op == "placeholder"]
    if any(isinstance(value, torch.SymInt) or (isinstance(value, torch.Tensor) and any(
            isinstance(size, torch.SymInt) for size in value.shape)) for value in examples):
        raise RuntimeError("cannot determine truth value of Relational")
    return graph.forward


def test_a_block_whose_dynamic_compile_fails_falls_back_to_static_and_says_so(demo, fresh_dynamo):
    from trainer.compile import compile_repeated_blocks
    eager, _ = losses_over(demo_stepper(demo), BUCKET_SHAPES[:2])
    stepper, lines = demo_stepper(demo), []
    stepper.compiled = compile_repeated_blocks(stepper.unet, refuses_symbolic_shapes, lines.append)
    compiled, graphs = losses_over(stepper, BUCKET_SHAPES[:2])
    assert compiled == pytest.approx(eager, rel=1e-5)
    assert set(stepper.compiled.static) == {"BasicTransformerBlock", "ResnetBlock2D"}
    assert any(line.startswith("torch.compile: BasicTransformerBlock failed with dynamic shapes (BackendCompilerFailed")
               and line.endswith("static graphs instead, one per batch shape") for line in lines)
    assert graphs[1] > graphs[0] > 0              # static graphs: the second bucket compiles again


def test_the_compile_record_says_what_was_compiled(demo):
    stepper = demo_stepper(demo, "eager")
    assert stepper.compiled.describe() == ("torch.compile (eager), regional: 7 BasicTransformerBlock, 8 ResnetBlock2D "
                                           "compiled once per block kind, batch/height/width/tokens dynamic (no "
                                           "recompile per bucket)")
