import numpy as np
import pytest
import torch
from tiny_pipelines import tiny_flux_pipeline

import resdit
from resdit import ResDiTConfig, ResDiTConfigError


@pytest.fixture(scope="module")
def pipe():
    return tiny_flux_pipeline()


def generate(pipe, size, steps=2, **kwargs):
    return pipe("a cat", height=size[0], width=size[1], num_inference_steps=steps, max_sequence_length=48,
                output_type="np", generator=torch.Generator().manual_seed(0), **kwargs).images


def test_every_mode_runs_at_twice_the_base_size_and_every_patched_mode_changes_the_output(pipe):
    direct = generate(pipe, (32, 32))
    for mode, spec in resdit.MODES.items():
        if spec.two_pass:
            continue
        with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), mode=mode, mu="pipeline")):
            image = generate(pipe, (32, 32))
        assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()
        # beyond the base size every mode but direct (and extrapolate: the stock ids) changes what is drawn
        same = np.array_equal(image, direct)
        assert same == (mode in ("direct", "extrapolate")), mode


def test_every_mode_reproduces_the_pipeline_at_base_size(pipe):
    reference = generate(pipe, (16, 16), steps=4)
    for mode in (m for m, s in resdit.MODES.items() if not s.two_pass):
        with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), mode=mode)):
            np.testing.assert_allclose(generate(pipe, (16, 16), steps=4), reference, atol=1e-5)


def _phases(pipe, cfg, **call):
    seen = []
    with resdit.enabled(pipe, cfg) as state:
        handle = pipe.transformer.register_forward_hook(lambda *a: seen.append((state.step, state.phase)))
        try:
            generate(pipe, (32, 32), **call)
        finally:
            handle.remove()
    return seen


def test_schedule_follows_the_pipeline_steps_also_under_cfg_and_recalls(pipe):
    cfg = ResDiTConfig(base_size=(16, 16), mode="resdit_paper")
    seen = _phases(pipe, cfg, steps=7, true_cfg_scale=2.0, negative_prompt="a dog")
    # 7 steps: 2 global, 2 fused, 3 local; every step calls the transformer twice (cond, uncond)
    expected = [(i, p) for i, p in enumerate(["global"] * 2 + ["fused"] * 2 + ["local"] * 3) for _ in range(2)]
    assert seen == expected
    seen = _phases(pipe, cfg, steps=4)
    assert [p for _, p in seen] == ["global", "fused", "local", "local"]


def test_pipeline_ids_are_float32_and_restored(pipe):
    with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), mode="scaled_pe")):
        ids = pipe._prepare_latent_image_ids(1, 300, 2, "cpu", torch.bfloat16)
        assert ids.dtype == torch.float32 and ids[:, 1].max().item() == 299
    assert "_prepare_latent_image_ids" not in vars(pipe) and "check_inputs" not in vars(pipe)


def test_size_not_divisible_by_the_patch_is_rejected_before_work(pipe):
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16))):
            with pytest.raises(ResDiTConfigError, match="height=33 is not divisible by 2"):
                generate(pipe, (33, 32))
    finally:
        handle.remove()
    assert calls == []


def test_phases_longer_than_steps_are_rejected_before_the_first_step(pipe):
    with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), global_steps=3, local_steps=3)):
        with pytest.raises(ResDiTConfigError, match="longer than the 4 denoising steps"):
            generate(pipe, (32, 32), steps=4)


def test_shift_override_reaches_the_scheduler(pipe):
    with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), mode="scaled_pe", mu=0.0)):
        generate(pipe, (32, 32))
        sigmas_mu0 = pipe.scheduler.sigmas.clone()
    generate(pipe, (32, 32))
    assert not torch.allclose(sigmas_mu0, pipe.scheduler.sigmas)
    pipe.scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / 2, 2), mu=0.0)  # as FluxPipeline calls it
    torch.testing.assert_close(sigmas_mu0, pipe.scheduler.sigmas)


def test_base_shift_is_what_the_pipeline_computes_at_the_base_size(pipe):
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    from resdit.apply import base_shift

    c = pipe.scheduler.config
    expected = calculate_shift(64, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift)
    assert base_shift(pipe.scheduler, (8, 8)) == pytest.approx(expected)
    with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), mode="scaled_pe", mu="base")):
        generate(pipe, (32, 32))
        at_base_shift = pipe.scheduler.sigmas.clone()
    pipe.scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / 2, 2), mu=expected)
    torch.testing.assert_close(at_base_shift, pipe.scheduler.sigmas)


@pytest.mark.parametrize("size", [(16, 48), (48, 16), (24, 40)])
def test_non_square_requests_run_in_every_mode(pipe, size):
    for mode in (m for m, s in resdit.MODES.items() if not s.two_pass):
        with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), mode=mode)) as state:
            image = generate(pipe, size)
        assert image.shape == (1, *size, 3) and np.isfinite(image).all()
        if state.plan is not None:
            grid = (size[0] // 2, size[1] // 2)
            assert state.plan.grid == grid
            part = state.plan.partition  # every token in a window, windows of the base grid clipped per axis
            assert set(part.index.unique().tolist()) == set(range(grid[0] * grid[1]))
            assert part.window == (min(8, grid[0]), min(8, grid[1]))
            spec = state.config.spec
            if spec.global_ids == "scaled" and spec.rope == "base" and not spec.tiled:  # PES per axis: i / (H / h)
                ids = state.plan.global_ids.reshape(*grid, 3)
                torch.testing.assert_close(ids[:, 0, 1], torch.arange(grid[0]) * min(8 / grid[0], 1.0))
                torch.testing.assert_close(ids[0, :, 2], torch.arange(grid[1]) * min(8 / grid[1], 1.0))
