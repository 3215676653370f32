import pytest
import torch
from safetensors.torch import load_file

from resdit.toy.train import TrainConfig, sample_canvas, make_batch, train


def _cfg(tmp_path, name, steps):
    return TrainConfig(out=str(tmp_path / name), steps=steps, batch=2, warmup=1, checkpoint_every=2, threads=1)


def test_training_never_sees_a_canvas_above_the_base_size():
    import numpy as np

    rng = np.random.default_rng(0)
    sizes = [sample_canvas(rng, 0.5) for _ in range(2000)]
    assert max(max(s) for s in sizes) == 32 and min(min(s) for s in sizes) == 16
    assert any(h != w for h, w in sizes)  # several aspect ratios
    assert all(h % 2 == 0 and w % 2 == 0 for h, w in sizes)


def test_batches_are_a_pure_function_of_seed_and_step(tmp_path):
    a, pa = make_batch(_cfg(tmp_path, "a", 4), 3)
    b, pb = make_batch(_cfg(tmp_path, "b", 4), 3)
    assert torch.equal(a, b) and pa == pb


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    straight = train(_cfg(tmp_path, "straight", 4))
    interrupted = _cfg(tmp_path, "resumed", 4)
    interrupted.max_minutes = 0.0  # stops (and checkpoints) after the first step
    with pytest.raises(TimeoutError, match="at step 1"):
        train(interrupted)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["step"] == 1
    interrupted.max_minutes = 60.0
    resumed = train(interrupted)
    for name in ("transformer", "text_encoder"):
        x, y = load_file(straight / f"{name}.safetensors"), load_file(resumed / f"{name}.safetensors")
        assert all(torch.equal(x[k], y[k]) for k in x)
