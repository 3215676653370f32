import pytest

from resdit import ResDiTConfigError, phase_at, phase_lengths


@pytest.mark.parametrize("steps,expected", [(35, (10, 10, 15)), (20, (6, 5, 9)), (4, (1, 1, 2))])
def test_phases_keep_the_paper_fractions(steps, expected):
    assert phase_lengths(steps) == expected


def test_phase_sequence_for_35_steps():
    phases = [phase_at(i, 35) for i in range(35)]
    assert phases == ["global"] * 10 + ["fused"] * 10 + ["local"] * 15


def test_explicit_phase_lengths_override_fractions():
    assert phase_lengths(35, global_steps=5, local_steps=0) == (5, 30, 0)


def test_schedule_longer_than_steps_is_an_error():
    with pytest.raises(ResDiTConfigError, match="longer than the 10 denoising steps"):
        phase_lengths(10, global_steps=6, local_steps=5)


# ------------------------------------------------------------------------------------- phases in noise level
def _pipeline_phases(pipe, cfg, size, steps):
    import torch

    import resdit

    seen = []
    with resdit.enabled(pipe, cfg) as state:
        handle = pipe.transformer.register_forward_hook(lambda *a: seen.append(state.phase))
        try:
            pipe("a cat", height=size[0], width=size[1], num_inference_steps=steps, max_sequence_length=48,
                 output_type="np", generator=torch.Generator().manual_seed(0))
        finally:
            handle.remove()
    return seen


def _flux_sigmas(steps, mu):
    """FLUX's schedule computed here: linspace(1, 1/T, T), time-shifted by e^mu."""
    import math

    import numpy as np

    t = np.linspace(1.0, 1 / steps, steps)
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1))


@pytest.fixture(scope="module")
def dev_pipe():
    from diffusers import FlowMatchEulerDiscreteScheduler
    from tiny_pipelines import tiny_flux_pipeline

    pipe = tiny_flux_pipeline()  # FLUX.1-dev's shift rule, scaled down: an 8x8-token base plays 1024^2
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=16, base_shift=0.5, max_image_seq_len=64,
                                                     max_shift=1.15, shift=3.0, use_dynamic_shifting=True)
    return pipe


def test_sigma_phases_equal_step_phases_on_the_papers_35_step_base_schedule(dev_pipe):
    from resdit import ResDiTConfig

    paper = dict(base_size=(16, 16), mode="resdit_paper")
    by_sigma = _pipeline_phases(dev_pipe, ResDiTConfig(**paper, phase_by="sigma"), (16, 16), 35)
    assert by_sigma == _pipeline_phases(dev_pipe, ResDiTConfig(base_size=(16, 16), mode="resdit_paper"), (16, 16), 35)
    assert by_sigma == ["global"] * 10 + ["fused"] * 10 + ["local"] * 15


@pytest.mark.parametrize("steps,mu", [(20, "base"), (12, "base"), (20, "pipeline")])
def test_sigma_phases_switch_at_the_base_schedules_noise_levels(dev_pipe, steps, mu):
    from resdit import ResDiTConfig

    base_mu = 1.15  # the scaled-down scheduler at the 64-token base, as FLUX.1 at 1024^2
    reference = _flux_sigmas(35, base_mu)
    fused_from, local_from = reference[10], reference[20]
    run_mu = base_mu if mu == "base" else 0.5 + (1.15 - 0.5) / (64 - 16) * (24 * 24 - 16)  # 3x: 24x24 tokens
    expected = ["global" if s > fused_from + 1e-5 else "local" if s <= local_from + 1e-5 else "fused"
                for s in _flux_sigmas(steps, run_mu)]
    cfg = ResDiTConfig(base_size=(16, 16), mode="resdit_paper", phase_by="sigma", mu=mu)
    assert _pipeline_phases(dev_pipe, cfg, (48, 48), steps) == expected
    if mu == "pipeline":  # the stock shift keeps sigma near 1 longer: more steps stay global than by count
        assert expected.count("global") > phase_lengths(steps)[0]


def test_resdit_uses_proportional_attention_and_resdit_paper_does_not():
    from resdit import ResDiTConfig

    assert ResDiTConfig(mode="resdit").uses_proportional_attention
    assert not ResDiTConfig(mode="resdit_paper").uses_proportional_attention


def test_sigma_phases_count_the_papers_35_steps_so_they_fit_runs_with_fewer(dev_pipe):
    """global_steps=21 of the paper's 35 is a noise level, valid for a 6-step run; as a step count it is not."""
    import torch

    import resdit
    from resdit import ResDiTConfig
    from resdit.schedule import check_steps

    by_sigma = ResDiTConfig(base_size=(16, 16), mode="resdit", phase_by="sigma", global_steps=21)
    check_steps(by_sigma, 6)
    with pytest.raises(ResDiTConfigError, match="longer than the 6 denoising steps"):
        check_steps(ResDiTConfig(base_size=(16, 16), mode="resdit", global_steps=21), 6)
    seen = []
    handle = dev_pipe.transformer.register_forward_hook(
        lambda module, *a: seen.append(resdit.apply.get_state(module).phase))
    try:
        image = resdit.generate(dev_pipe, "a cat", by_sigma, 32, 32, 6, max_sequence_length=48)
    finally:
        handle.remove()
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()
    assert seen[0] == "global" and "fused" in seen and "local" not in seen
