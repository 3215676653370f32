"""Behaviour observed where it happens: the phase that runs at each step, the fusions and splices that run, the
statistics' coverage and bias on known distributions, what a failed write leaves, and checks that must come
before any work."""

import os

import numpy as np
import pytest
import torch

import resdit
from resdit import ResDiTConfig, ResDiTConfigError
from resdit.fusion import build_partition, merge
from resdit.geometry import WindowPartition
from resdit.io import atomic_write
from resdit.schedule import phase_lengths


@pytest.fixture(scope="module")
def toy():
    from resdit.toy import load_pipeline

    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _phases_that_ran(pipe, cfg, steps, size=(64, 64)):
    seen = []
    with resdit.enabled(pipe, cfg) as state:
        unsubscribe = state.subscribe("call", lambda s: seen.append((s.step, s.phase)))
        try:
            pipe("a red striped circle at top left on waves", height=size[0], width=size[1], num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(0), output_type="pt")
        finally:
            unsubscribe()
    return [phase for _, phase in sorted(seen)]


@pytest.mark.parametrize("steps", [20, 35])
def test_the_default_mode_runs_global_then_fused_to_the_last_step(toy, steps):
    ran = _phases_that_ran(toy, ResDiTConfig(base_size=(32, 32), mode="resdit"), steps)
    g = round(steps * 10 / 35)
    assert ran == ["global"] * g + ["fused"] * (steps - g)


def test_the_papers_mode_runs_its_local_only_phase(toy):
    ran = _phases_that_ran(toy, ResDiTConfig(base_size=(32, 32), mode="resdit_paper"), 35)
    assert ran == ["global"] * 10 + ["fused"] * 10 + ["local"] * 15
    assert phase_lengths(35) == (10, 10, 15)


def test_no_psf_fuses_by_the_spatial_mean_of_both_branches():
    cfg = ResDiTConfig(mode="resdit_no_psf")
    part = build_partition(cfg, (12, 12), (8, 8))
    g = torch.randn(1, 144, 3, generator=torch.Generator().manual_seed(0))
    local = torch.randn(1, part.num_windows, 64, 3, generator=torch.Generator().manual_seed(1))
    fused, _ = merge("fused", cfg.spec.fusion, part, None, g, local)
    expected = 0.5 * (g + part.splice(local))
    torch.testing.assert_close(fused, expected)
    assert (fused - g).abs().max() > 0.1 and (fused - part.splice(local)).abs().max() > 0.1


def test_tiling_gaussian_splices_with_gaussian_weights_and_tiling_with_uniform_ones():
    grid, base = (12, 12), (8, 8)  # windows at 0 and 4 on each axis; token (4, 7) lies in all four
    gaussian = build_partition(ResDiTConfig(mode="tiling_gaussian"), grid, base)
    uniform = build_partition(ResDiTConfig(mode="tiling"), grid, base)
    token = 4 * 12 + 7
    w_gauss = gaussian.weights[gaussian.index == token]
    w_unif = uniform.weights[uniform.index == token]
    assert len(w_unif) == 4 and torch.allclose(w_unif, torch.full((4,), 0.25))
    assert w_gauss.max() - w_gauss.min() > 0.1  # the nearer window's centre weighs more


def test_gaussian_weights_in_an_overlap_prefer_the_nearer_centre():
    part = WindowPartition.build((12, 2), (8, 2), sigma=0.25)  # rows: windows at 0 (centre 3.5) and 4 (7.5)
    for row in (4, 5):  # both rows lie in both windows; row 4 is nearer window 0, row 5 nearer window 0 too
        w0 = part.weights[0][part.index[0] == row * 2].item()
        w1 = part.weights[1][part.index[1] == row * 2].item()
        assert w0 + w1 == pytest.approx(1.0) and w0 > w1 > 0
    w0 = part.weights[0][part.index[0] == 6 * 2].item()  # row 6: nearer window 1
    assert w0 < 0.5


def test_every_splice_width_above_the_floor_is_finite_and_the_floor_is_a_hard_cut():
    for sigma in (0.01, 0.02, 0.05, 0.5, 10.0):
        part = WindowPartition.build((40, 40), (16, 16), sigma=sigma)
        assert torch.isfinite(part.weights).all()
        total = torch.zeros(1600).index_add_(0, part.index.reshape(-1), part.weights.reshape(-1))
        torch.testing.assert_close(total, torch.ones(1600))
    hard = WindowPartition.build((40, 40), (16, 16), sigma=0.01)
    assert set(torch.unique(hard.weights.round(decimals=6)).tolist()) <= {0.0, 0.5, 1.0}  # ties at midpoints
    with pytest.raises(ResDiTConfigError, match="hard cut"):
        ResDiTConfig(splice_width=0.001)


def test_bootstrap_interval_covers_a_known_mean_at_its_nominal_rate():
    from analysis.stats import bootstrap_ci

    rng = np.random.default_rng(1)
    hits = 0
    trials = 300
    for t in range(trials):
        x = rng.exponential(1.0, size=40)  # skewed, true mean 1
        lo, hi = bootstrap_ci(x, n_boot=500, seed=t)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / trials <= 0.99  # a 50 % interval would cover about half


def test_kid_is_unbiased_on_equal_distributions():
    from analysis.metrics import kid

    rng = np.random.default_rng(0)
    values = [kid(rng.normal(size=(10, 8)), rng.normal(size=(10, 8))) for _ in range(400)]
    mean, se = np.mean(values), np.std(values) / np.sqrt(len(values))
    assert abs(mean) < 3 * se + 1e-12
    # with the diagonal kept the estimate of 10 samples sits far above 0 (the positive term k(x, x))
    x = rng.normal(size=(10, 8))
    kxx = (x @ x.T / 8 + 1) ** 3
    biased_excess = (np.trace(kxx) / 10 - (kxx.sum() - np.trace(kxx)) / 90) / 10
    assert biased_excess > 10 * se


def test_atomic_write_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert not target.exists() and os.listdir(tmp_path) == []
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


def test_a_one_token_axis_is_refused_before_the_transformer_runs(toy):
    calls = []
    handle = toy.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ResDiTConfigError, match="at least 2 per axis"):
            resdit.generate(toy, "a red striped circle at top left", ResDiTConfig(base_size=(32, 32), mode="resdit"),
                            2, 64, 4, seed=0)
    finally:
        handle.remove()
    assert calls == []


def test_the_toy_pipeline_refuses_zero_and_fractional_sizes(toy):
    for h, w in ((0, 0), (64.0, 64), (True, 64)):
        with pytest.raises((ValueError, ResDiTConfigError)):
            toy("a red striped circle at top left", height=h, width=w, num_inference_steps=1)
    with pytest.raises(ResDiTConfigError, match="whole number"):
        resdit.generate(toy, "a red striped circle at top left", ResDiTConfig(base_size=(32, 32)), 64.0, 64, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(base_size="64"), "base_size"), (dict(base_size=64), "base_size"), (dict(base_size=(32,)), "base_size"),
    (dict(base_size=(32, 0)), "base_size"), (dict(cutoff="0.2"), "cutoff"), (dict(splice_width=None), "splice_width"),
    (dict(proportional_attention="no"), "proportional_attention"), (dict(key_bias=1), "key_bias"),
])
def test_config_refuses_wrong_types_with_its_own_error(kwargs, match):
    with pytest.raises(ResDiTConfigError, match=match):
        ResDiTConfig(**kwargs)


def test_record_with_a_bad_point_leaves_the_model_as_it_was(toy):
    before = dict(toy.transformer.attn_processors)
    with pytest.raises(ValueError, match="Unknown record points"):
        with resdit.record(toy, points=["prob"]):
            pass
    assert resdit.get_state(toy) is None
    assert all(toy.transformer.attn_processors[k] is v for k, v in before.items())
    cfg = ResDiTConfig(base_size=(32, 32), mode="resdit")
    resdit.generate(toy, "a red striped circle at top left", cfg, 64, 64, 2, seed=0)  # works afterwards


def test_sigma_is_a_deprecated_alias_of_the_splice_width():
    """``sigma`` means the noise level everywhere; the splice width's old name still works for one release, with a
    FutureWarning, and sets the same field (the windows' weights follow it)."""
    with pytest.warns(FutureWarning, match="splice_width"):
        old = ResDiTConfig(sigma=0.25)
    assert old.splice_width == 0.25 and old == ResDiTConfig(splice_width=0.25)
    with pytest.warns(FutureWarning):
        assert old.sigma == 0.25
    narrow = build_partition(ResDiTConfig(splice_width=0.05), (24, 24), (16, 16)).weights
    assert not torch.allclose(build_partition(old, (24, 24), (16, 16)).weights, narrow)
