"""The global branch at the training token count (``global_tokens="base"``): identity at the base size, at most
the base size's tokens at any scale and aspect, blocks at their mean scaled positions, the phases it runs in, the
upsampler's band, and a recorder that records the blocks that ran."""

import math

import pytest
import torch
from conftest import flux_inputs

import resdit
import resdit.processors as processors
from resdit import ResDiTConfig, ResDiTConfigError
from resdit.record import attention_layers
from resdit.plan import base_token_factors, build_plan, pool_grid, unpool_grid
from resdit.spectral import radial_frequency, radial_mask, spectral_fuse


def _run(model, inputs, step=0, steps=20, base_grid=(8, 8), **cfg):
    with resdit.enabled(model, ResDiTConfig(**cfg), base_grid=base_grid):
        resdit.set_step(model, step, steps)
        with torch.no_grad():
            return model(**inputs).sample


@pytest.fixture
def key_lengths(monkeypatch):
    """Key counts of every attention call the processors make, in call order."""
    seen = []
    original = processors.dispatch_attention_fn

    def spy(q, k, v, **kw):
        seen.append(k.shape[1])
        return original(q, k, v, **kw)

    monkeypatch.setattr(processors, "dispatch_attention_fn", spy)
    return seen


def test_identity_at_the_base_size_bit_for_bit(transformer):
    inputs = flux_inputs((8, 8))
    for step in (0, 10):
        assert torch.equal(_run(transformer, inputs, step, mode="resdit", global_tokens="base"),
                           _run(transformer, inputs, step, mode="resdit"))


@pytest.mark.parametrize("grid", [(16, 16), (20, 20), (24, 24), (32, 32), (64, 64), (16, 32), (21, 13)])
def test_pooled_grid_has_at_most_the_base_token_count(grid, transformer):
    # 2x, 2.5x, 3x, 4x, 8x, 1:2 and an odd size, on a base of 8x8 tokens
    base = (8, 8)
    plan = build_plan(ResDiTConfig(mode="resdit", global_tokens="base"), transformer.pos_embed, grid, base,
                      torch.zeros(3, 3), 16, "cpu")
    hp, wp = plan.pooled.grid
    assert hp <= base[0] and wp <= base[1] and hp * wp <= base[0] * base[1]
    ph, pw = plan.pooled.factors
    assert (ph, pw) == base_token_factors(grid, base)
    assert math.ceil(grid[0] / ph) == hp and math.ceil(grid[1] / pw) == wp
    # the smallest whole block that fits: one less along an axis would exceed the base grid there
    assert ph == 1 or math.ceil(grid[0] / (ph - 1)) > base[0]
    assert pw == 1 or math.ceil(grid[1] / (pw - 1)) > base[1]


def test_the_global_branch_attends_over_the_pooled_tokens_in_every_phase(transformer, key_lengths):
    inputs, T = flux_inputs((32, 32), text_len=5), 5  # 4x a base of 8x8
    _run(transformer, inputs, step=0, mode="resdit", global_tokens="base")  # global-only phase
    assert key_lengths and set(key_lengths) == {T + 64}
    key_lengths.clear()
    _run(transformer, inputs, step=10, mode="resdit", global_tokens="base")  # fused: pooled global + windows
    assert T + 64 in key_lengths and T + 32 * 32 not in key_lengths
    key_lengths.clear()
    _run(transformer, inputs, step=0, mode="resdit", global_tokens="base", pool_phases="fused")
    assert set(key_lengths) == {T + 32 * 32}  # fused only: the global-only phase attends at full size


def test_blocks_sit_at_the_mean_of_their_tokens_scaled_positions(transformer):
    grid, base = (20, 12), (8, 8)  # factors 3 x 2 with a partial last row of blocks
    cfg = ResDiTConfig(mode="resdit", global_tokens="base")
    plan = build_plan(cfg, transformer.pos_embed, grid, base, torch.zeros(2, 3), 16, "cpu")
    ph, pw = plan.pooled.factors
    expected = []
    for bi in range(0, grid[0], ph):
        for bj in range(0, grid[1], pw):
            rows = [r * base[0] / grid[0] for r in range(bi, min(bi + ph, grid[0]))]  # PES: i / (H / h)
            cols = [c * base[1] / grid[1] for c in range(bj, min(bj + pw, grid[1]))]
            expected.append([0.0, sum(rows) / len(rows), sum(cols) / len(cols)])
    ids = torch.cat([torch.zeros(2, 3), torch.tensor(expected)])
    cos, sin = transformer.pos_embed(ids)
    torch.testing.assert_close(plan.pooled.rope[0], cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(plan.pooled.rope[1], sin, atol=1e-6, rtol=0)


def test_key_bias_is_off_by_default_and_counts_the_block_when_asked(transformer):
    grid, base = (20, 20), (8, 8)
    plain = build_plan(ResDiTConfig(mode="resdit", global_tokens="base"), transformer.pos_embed, grid, base,
                       torch.zeros(2, 3), 16, "cpu")
    assert plain.pooled.key_bias is None
    biased = build_plan(ResDiTConfig(mode="resdit", global_tokens="base", key_bias=True), transformer.pos_embed,
                        grid, base, torch.zeros(2, 3), 16, "cpu")
    bias = biased.pooled.key_bias
    assert torch.equal(bias[:2], torch.zeros(2))
    assert bias[2].exp().round() == 9 and bias[-1].exp().round() == 4  # 3x3 block; the corner's 2x2 remainder


def _band_limited(h, w, cutoff, seed=0):
    """A random periodic field with every frequency inside PSF's mask (rho <= cutoff)."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.randn(h, w // 2 + 1, generator=g, dtype=torch.float64) + 1j * torch.randn(
        h, w // 2 + 1, generator=g, dtype=torch.float64)
    spec = spec * radial_mask((h, w), cutoff).double()
    return torch.fft.irfft2(spec, s=(h, w))


@pytest.mark.parametrize("factors, cutoff", [((2, 2), 0.2), ((3, 3), 0.2), ((4, 4), 0.2), ((4, 2), 0.2),
                                             ((5, 5), 0.19)])
def test_fft_upsampler_keeps_a_band_limited_field_below_the_cutoff(factors, cutoff):
    # PSF's band (rho <= 0.2: |f| <= 0.1 cycles per token) lies below the pooled Nyquist limit 1 / (2p) for p < 5;
    # at p = 5 its edge sits on the Nyquist bin, where a sine is lost, so the field there stays just inside it
    h, w = 40 * factors[0], 40 * factors[1]
    field = _band_limited(h, w, cutoff)
    tokens = field.reshape(1, -1, 1)
    back = unpool_grid(pool_grid(tokens, (h, w), factors), (h, w), factors, "fft")
    error = (back - tokens).abs().max() / tokens.abs().max()
    assert error < 1e-9  # exact up to float64 rounding
    if max(factors) >= 4:  # bilinear interpolation of block means loses most of the band near the cutoff
        bilinear = unpool_grid(pool_grid(tokens, (h, w), factors), (h, w), factors, "bilinear")
        assert (bilinear - tokens).abs().max() / tokens.abs().max() > 0.05


def test_nyquist_cutoff_lowers_psf_to_the_blocks_limit_only_where_they_cannot_hold_the_band(transformer):
    base = (8, 8)
    for grid, factor in (((64, 64), 8), ((48, 48), 6), ((32, 32), 4), ((40, 40), 5)):
        plans = {on: build_plan(ResDiTConfig(mode="resdit", global_tokens="base", nyquist_cutoff=on),
                                transformer.pos_embed, grid, base, torch.zeros(2, 3), 16, "cpu") for on in (False, True)}
        assert plans[True].pooled.factors == (factor, factor)
        expected = min(0.2, 1 / factor)  # 8x8 and 6x6 blocks hold rho <= 1/8, 1/6; 4x4 and 5x5 hold 0.2
        assert plans[True].cutoff == pytest.approx(expected) and plans[False].cutoff == 0.2
        assert torch.equal(plans[True].mask, radial_mask(plans[True].partition.window, expected))
    inputs = flux_inputs((32, 32))  # 4x: the cap does not apply, so the output is the same bit for bit
    assert torch.equal(_run(transformer, inputs, 10, mode="resdit", global_tokens="base", nyquist_cutoff=True),
                       _run(transformer, inputs, 10, mode="resdit", global_tokens="base"))


def test_nyquist_cutoff_gives_the_band_above_the_blocks_limit_to_the_local_branch():
    # a global branch on 8x8 blocks (FFT-upsampled) has next to nothing above rho = 1/8; with PSF's 0.2 the fused
    # output keeps that near-empty band, with the cap at 1/8 it keeps the local branch's
    h = w = 64
    g = torch.Generator().manual_seed(0)
    field = torch.randn(1, h * w, 1, generator=g, dtype=torch.float64)
    glob = unpool_grid(pool_grid(field, (h, w), (8, 8)), (h, w), (8, 8), "fft").view(h, w, 1)
    local = torch.randn(h, w, 1, generator=g, dtype=torch.float64)
    rho = radial_frequency((h, w))
    gap = ((rho > 0.125 + 1e-9) & (rho <= 0.2 + 1e-9)).double()

    def band(x):
        return (torch.fft.rfft2(x[..., 0]).abs().pow(2) * gap).sum()

    plain = spectral_fuse(glob, local, radial_mask((h, w), 0.2).double())
    capped = spectral_fuse(glob, local, radial_mask((h, w), ResDiTConfig(
        mode="resdit", global_tokens="base", nyquist_cutoff=True).psf_cutoff((8, 8))).double())
    assert band(plain) < 0.05 * band(local)
    torch.testing.assert_close(band(capped), band(local), rtol=1e-5, atol=0)  # fused in float32


def test_config_refuses_what_it_cannot_run():
    with pytest.raises(ResDiTConfigError, match="phased global branch"):
        ResDiTConfig(mode="scaled_pe", global_tokens="base")
    with pytest.raises(ResDiTConfigError, match="choose one"):
        ResDiTConfig(mode="resdit", global_tokens="base", global_pool=2)
    with pytest.raises(ResDiTConfigError, match="upsampler"):
        ResDiTConfig(mode="resdit", upsampler="nearest")
    with pytest.raises(ResDiTConfigError, match="global_tokens"):
        ResDiTConfig(mode="resdit", global_tokens="half")


def test_recording_under_pooling_records_the_blocks_that_ran(transformer, monkeypatch):
    """Probabilities have one column per block key, and times the pooled values they give the output of the
    attention call that ran (key bias included)."""
    inputs, T = flux_inputs((16, 16), text_len=3), 3
    calls = []
    original = processors.dispatch_attention_fn

    def spy(q, k, v, **kw):
        out = original(q, k, v, **kw)
        calls.append((v, out))
        return out

    monkeypatch.setattr(processors, "dispatch_attention_fn", spy)
    cfg = ResDiTConfig(mode="resdit", global_tokens="base", key_bias=True)
    probes = [(0, 0), (5, 9), (15, 15)]
    with resdit.enabled(transformer, cfg, base_grid=(8, 8)):
        with resdit.record(transformer, points=["probs"], probes=probes) as cache:
            resdit.set_step(transformer, 0, 20)  # global-only phase: one pooled call per layer
            with torch.no_grad():
                transformer(**inputs)
    first = attention_layers(transformer)[0]
    probs = cache.get(f"{first}.probs", branch="global")
    assert probs.shape[-1] == T + 64  # 8x8 blocks, not 16x16 tokens
    value, out = calls[0]
    assert value.shape[1] == T + 64
    blocks = torch.tensor([(r // 2) * 8 + c // 2 for r, c in probes]) + T
    mixed = torch.einsum("bhqk,bkhd->bqhd", probs, value.float())
    torch.testing.assert_close(mixed, out[:, blocks].float(), atol=1e-5, rtol=1e-4)


def test_pooled_probe_maps_spread_each_blocks_mass_over_its_tokens():
    import numpy as np

    from resdit.plots import probe_map

    grid, factors, text = (5, 4), (2, 2), 3  # blocks 3 x 2, the last row of blocks one token high
    row = np.r_[np.full(text, 0.1), np.arange(1, 7, dtype=float)]
    row[text:] *= 0.7 / row[text:].sum()
    amap = probe_map(row, grid, text, factors)
    assert amap.shape == grid and np.isclose(amap.sum(), 0.7)
    assert np.allclose(amap[0:2, 0:2], row[text] / 4) and np.allclose(amap[4, 2:4], row[text + 5] / 2)


def test_window_align_is_the_modes_own_and_checked():
    assert ResDiTConfig(mode="resdit").align == 2 and ResDiTConfig(mode="resdit_fast").align == 2
    assert ResDiTConfig(mode="resdit_paper").align == 1 and ResDiTConfig(mode="tiling").align == 1
    assert ResDiTConfig(mode="resdit", window_align=1).align == 1
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ResDiTConfigError, match="window_align"):
            ResDiTConfig(window_align=bad)


def test_window_overlap_is_the_modes_own_by_default_and_checked():
    assert ResDiTConfig(mode="resdit").overlap == "quarter" and ResDiTConfig(mode="tiling").overlap == 1
    assert ResDiTConfig(mode="resdit", window_overlap=4).overlap == 4
    assert ResDiTConfig(mode="resdit", window_overlap=1).overlap == 1
    assert ResDiTConfig(mode="tiling", window_overlap=4).overlap == 4
    for bad in (0, -2, 1.5, True, "4", "half"):
        with pytest.raises(ResDiTConfigError, match="window_overlap"):
            ResDiTConfig(window_overlap=bad)
    from resdit.fusion import build_partition

    tiles = {o: build_partition(ResDiTConfig(mode="tiling", window_overlap=o), (64, 64), (8, 8)) for o in (None, 4)}
    assert (tiles[None].num_windows, tiles[4].num_windows) == (81, 225)  # tiling's tiles take it too
    for mode in ("direct", "scaled_pe", "ntk", "two_stage", "resdit_no_mop_gws"):  # no overlapping windows to widen
        with pytest.raises(ResDiTConfigError, match="has none"):
            ResDiTConfig(mode=mode, window_overlap=4)


def test_a_least_window_overlap_changes_the_output_only_where_the_windows_overlapped_less(transformer):
    """An 8-token base: at 2x minimum-overlap windows share 4 tokens, so window_overlap=4 is the same run bit for
    bit; at 8x the defaults' windows (even starts) share 2-4 (11 a side), with 4 they are 15 a side at stride 4."""
    base = (8, 8)
    plan = build_plan(ResDiTConfig(mode="resdit", window_overlap=4), transformer.pos_embed, (64, 64), base,
                      torch.zeros(2, 3), 16, "cpu")
    rows = plan.partition.starts[0]
    assert rows == list(range(0, 57, 4))
    for side, same in ((16, True), (64, False)):
        inputs = flux_inputs((side, side))
        out = {o: _run(transformer, inputs, 10, mode="resdit", window_overlap=o) for o in (1, 4)}
        assert torch.equal(out[1], out[4]) == same, side


def test_even_window_starts_change_the_output_only_where_a_stride_was_odd(transformer):
    """The plan's windows start on even tokens with the defaults; at 2x and 4x of an 8-token base the minimum-overlap
    starts are even already and the output is the same bit for bit, at 3x (starts 0, 5, 11, 16) it is not."""
    base = (8, 8)
    plan = build_plan(ResDiTConfig(mode="resdit"), transformer.pos_embed, (24, 24), base, torch.zeros(2, 3), 16, "cpu")
    assert plan.partition.starts == ([0, 6, 10, 16], [0, 6, 10, 16])
    for side, same in ((16, True), (32, True), (24, False)):
        inputs = flux_inputs((side, side))
        out = {a: _run(transformer, inputs, 10, mode="resdit", window_align=a) for a in (1, 2)}
        assert torch.equal(out[1], out[2]) == same, side
