"""SD3, ControlNet, aspect ratios, VAE tiling and memory: tiny random pipelines built offline."""

import math

import numpy as np
import pytest
import torch
from tiny_pipelines import tiny_flux_controlnet_pipeline, tiny_sd3, tiny_sd3_pipeline

import resdit
from resdit import ResDiTConfig, ResDiTConfigError
from resdit.sd3 import (
    SD3_MODES,
    SinCosGrid,
    pos_embed_table,
    sincos_table,
    table_indices,
)

SD3_BASE = (32, 32)  # px; the tiny SD3 has VAE scale 1 and patch 1: 32x32 tokens, a table of 96x96
RUNNABLE_SD3 = [m for m in SD3_MODES if not resdit.MODES[m].two_pass]


@pytest.fixture(scope="module")
def sd3_pipe():
    return tiny_sd3_pipeline()


@pytest.fixture(scope="module")
def sd3_control_pipe():
    return tiny_sd3_pipeline(controlnet=True)


@pytest.fixture(scope="module")
def flux_control_pipe():
    return tiny_flux_controlnet_pipeline()


def run(pipe, size, steps=3, **kwargs):
    return pipe("a cat", height=size[0], width=size[1], num_inference_steps=steps, output_type="np",
                generator=torch.Generator().manual_seed(0), **kwargs).images


# --- the SD3 position table --------------------------------------------------------------------------------------


def test_resampled_table_at_scale_one_is_the_stock_crop_exactly():
    pe = tiny_sd3().pos_embed
    for grid in [(32, 32), (20, 44)]:
        stock = pe.cropped_pos_embed(*grid)
        assert torch.equal(pos_embed_table(pe, grid, grid, "scaled"), stock)
        assert torch.equal(pos_embed_table(pe, grid, (32, 32), "extrapolate"), stock)


def test_grid_is_recovered_from_the_buffer_whatever_its_spacing():
    idx = torch.arange(40, dtype=torch.float64)
    table = sincos_table(32, 0.7 * idx - 3.0, 0.25 * idx + 11.0).float()  # x and y spaced differently
    grid = SinCosGrid.recover(table, 40)
    assert (grid.ax, grid.bx, grid.ay, grid.by) == pytest.approx((0.7, -3.0, 0.25, 11.0), abs=1e-5)
    stock = SinCosGrid.recover(tiny_sd3().pos_embed.pos_embed[0], 96)  # diffusers: index / 3
    assert (stock.ax, stock.bx, stock.ay, stock.by) == pytest.approx((1 / 3, 0.0, 1 / 3, 0.0), abs=1e-5)


def test_a_buffer_that_is_not_a_sincos_table_is_refused():
    with pytest.raises(ResDiTConfigError, match="not a 2-D sin-cos table"):
        SinCosGrid.recover(torch.randn(16 * 16, 32), 16)


def test_scaled_positions_spread_the_target_over_the_base_crop():
    pe = tiny_sd3().pos_embed
    got = pos_embed_table(pe, (64, 96), (32, 32), "scaled")[0].double()
    # by hand: base crop starts at (96 - 32) // 2 = 32; token j of n sits at 32 + j * 32 / n (FLUX's j / s)
    rows = 32 + torch.arange(64) * 32 / 64
    cols = 32 + torch.arange(96) * 32 / 96
    want = sincos_table(32, cols / 3, rows / 3)  # diffusers' table: coordinate = index / 3
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
    assert rows.min() == 32 and rows.max() < 64  # inside the base crop's index span


def test_extrapolated_positions_continue_past_the_table():
    pe = tiny_sd3().pos_embed
    got = pos_embed_table(pe, (32, 128), (32, 32), "extrapolate")[0].double()  # 128 > 96 stored columns
    cols = (96 - 128) // 2 + torch.arange(128, dtype=torch.float64)
    rows = 32 + torch.arange(32, dtype=torch.float64)
    torch.testing.assert_close(got, sincos_table(32, cols / 3, rows / 3), atol=2e-5, rtol=0)
    assert table_indices("extrapolate", 128, 32, 96)[0] == -16


# --- SD3 pipelines -----------------------------------------------------------------------------------------------


def test_every_sd3_mode_reproduces_the_pipeline_at_base_size(sd3_pipe):
    reference = run(sd3_pipe, SD3_BASE)
    for mode in RUNNABLE_SD3:
        with resdit.enabled(sd3_pipe, ResDiTConfig(base_size=SD3_BASE, mode=mode)):
            image = run(sd3_pipe, SD3_BASE)
        assert np.array_equal(image, reference), mode


def test_every_sd3_mode_runs_non_square_beyond_the_table(sd3_pipe):
    with pytest.raises(ValueError, match="pos_embed_max_size"):  # stock SD3 stops at its table
        run(sd3_pipe, (32, 128), steps=1)
    images = {}
    for mode in RUNNABLE_SD3:
        if mode == "direct":
            continue
        with resdit.enabled(sd3_pipe, ResDiTConfig(base_size=SD3_BASE, mode=mode)) as state:
            images[mode] = run(sd3_pipe, (32, 128))
        assert images[mode].shape == (1, 32, 128, 3) and np.isfinite(images[mode]).all(), mode
        assert state.plan.grid == (32, 128)
    assert not np.array_equal(images["resdit"], images["scaled_pe"])
    assert not np.array_equal(images["scaled_pe"], images["extrapolate"])


def test_sd3_resdit_local_phase_is_the_model_on_each_window(sd3_pipe):
    """Local-only SD3 ResDiT on a hard grid of two windows equals two base-size calls, side by side."""
    t = sd3_pipe.transformer
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 32, 64, generator=g)
    text, pooled = torch.randn(1, 7, 32, generator=g), torch.randn(1, 64, generator=g)
    ts = torch.full((1,), 500.0)
    halves = [t(x[..., i:i + 32], text, pooled, ts, return_dict=False)[0] for i in (0, 32)]
    cfg = ResDiTConfig(mode="resdit_no_mop_gws", global_steps=0, local_steps=4)  # grid windows, local phase only
    with resdit.enabled(t, cfg, base_grid=(32, 32)):
        resdit.set_step(t, 0, 4)
        out = t(x, text, pooled, ts, return_dict=False)[0]
    torch.testing.assert_close(out, torch.cat(halves, dim=-1), atol=1e-5, rtol=1e-5)


def test_sd3_fused_phase_takes_low_frequencies_from_the_global_branch(sd3_pipe):
    t = sd3_pipe.transformer
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(1, 4, 48, 48, generator=g), torch.randn(1, 7, 32, generator=g),
            torch.randn(1, 64, generator=g), torch.full((1,), 500.0))
    outs = {}
    fused = dict(mode="resdit", global_steps=0, local_steps=0, proportional_attention=False)  # global = scaled_pe
    for name, cfg in {"global": ResDiTConfig(mode="scaled_pe"),
                      "all_global": ResDiTConfig(cutoff=math.sqrt(2), **fused),
                      "none_global": ResDiTConfig(cutoff=0.0, **fused),
                      "local": ResDiTConfig(mode="patch_pe_local")}.items():
        with resdit.enabled(t, cfg, base_grid=(32, 32)):
            resdit.set_step(t, 0, 4)
            outs[name] = t(*args, return_dict=False)[0]
    torch.testing.assert_close(outs["all_global"], outs["global"], atol=1e-5, rtol=1e-5)  # cutoff sqrt 2: global
    assert not torch.allclose(outs["none_global"], outs["global"], atol=1e-3)
    # cutoff 0 keeps only each window's mean from the global branch: the rest is the local branch
    diff = (outs["none_global"] - outs["local"]).abs().max()
    assert diff < (outs["global"] - outs["local"]).abs().max()


def test_sd3_modes_without_meaning_for_an_absolute_pe_are_refused(sd3_pipe):
    for mode in ("ntk", "time_aware", "dype", "patch_pe"):
        with pytest.raises(ResDiTConfigError, match="does not apply to SD3"):
            resdit.apply_resdit(sd3_pipe, ResDiTConfig(base_size=SD3_BASE, mode=mode))
    assert resdit.get_state(sd3_pipe) is None


def test_sd3_remove_restores_the_model(sd3_pipe):
    t = sd3_pipe.transformer
    forward, crop = t.forward, t.pos_embed.cropped_pos_embed
    with resdit.enabled(sd3_pipe, ResDiTConfig(base_size=SD3_BASE, mode="resdit")):
        assert t.forward is not forward
    assert t.forward == forward and t.pos_embed.cropped_pos_embed == crop
    assert "forward" not in vars(t) and "cropped_pos_embed" not in vars(t.pos_embed)


def test_sd3_pixels_per_token_and_size_check(sd3_pipe):
    assert resdit.apply.pixels_per_token(sd3_pipe) == 1
    from resdit.loading import base_size_of

    assert base_size_of(sd3_pipe) == (32, 32)  # sample_size x VAE factor


def test_sd3_two_pass_modes_run(sd3_pipe):
    images = {}
    for mode in ("upscale", "two_stage"):
        images[mode] = resdit.generate(sd3_pipe, "a cat", ResDiTConfig(base_size=SD3_BASE, mode=mode), 32, 64,
                                       num_inference_steps=3, seed=0)
        assert images[mode].shape == (1, 3, 32, 64) and torch.isfinite(images[mode]).all()
    first = sd3_pipe("a cat", height=32, width=32, num_inference_steps=3, output_type="pt",
                     generator=torch.Generator().manual_seed(0)).images
    upsampled = torch.nn.functional.interpolate(first.float(), size=(32, 64), mode="bicubic").clamp(0, 1)
    torch.testing.assert_close(images["upscale"], upsampled)  # the base-size image, resized
    assert (images["two_stage"] - upsampled).abs().max() > 1e-3  # SD3's img2img pass changed it


# --- ControlNet --------------------------------------------------------------------------------------------------


def _control(size):
    g = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, *size, generator=g)


@pytest.mark.parametrize("which", ["flux", "sd3"])
def test_controlnet_pipelines_reproduce_at_base_and_run_non_square(which, flux_control_pipe, sd3_control_pipe):
    pipe, base, modes = {
        "flux": (flux_control_pipe, (16, 16), [m for m, s in resdit.MODES.items() if not s.two_pass and not s.tiled]),
        "sd3": (sd3_control_pipe, SD3_BASE, [m for m in RUNNABLE_SD3 if not resdit.MODES[m].tiled]),
    }[which]
    reference = run(pipe, base, control_image=_control(base))
    for mode in modes:
        with resdit.enabled(pipe, ResDiTConfig(base_size=base, mode=mode)):
            assert np.array_equal(run(pipe, base, control_image=_control(base)), reference), mode
    wide = (base[0], base[1] * 3)
    for mode in modes:
        with resdit.enabled(pipe, ResDiTConfig(base_size=base, mode=mode)):
            image = run(pipe, wide, control_image=_control(wide))
            states = [resdit.get_state(n) for n in getattr(pipe.controlnet, "nets", [pipe.controlnet])]
            assert all(s is not None for s in states)  # the control branch is part of it
        assert image.shape == (1, *wide, 3) and np.isfinite(image).all(), mode
    assert resdit.get_state(pipe.controlnet) is None  # and removed with it
    with pytest.raises(ResDiTConfigError, match="ControlNet"):
        resdit.apply_resdit(pipe, ResDiTConfig(base_size=base, mode="tiling"))


def test_flux_controlnet_gets_the_same_positions_as_the_transformer(flux_control_pipe):
    pipe = flux_control_pipe
    with resdit.enabled(pipe, ResDiTConfig(base_size=(16, 16), mode="scaled_pe")) as state:
        run(pipe, (32, 48), steps=1, control_image=_control((32, 48)))
        control = resdit.get_state(pipe.controlnet)
        assert control.plan.grid == state.plan.grid == (16, 24)
        assert torch.equal(control.plan.global_ids, state.plan.global_ids)


# --- aspect ratios -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(2048, 4096), (4096, 2048), (3840, 2160)])
def test_flux1_plans_for_non_square_4k_requests(size):
    """FLUX.1's geometry (16 px per token, base 64x64 tokens): per-axis scaled indices and windows."""
    from diffusers.models.transformers.transformer_flux import FluxPosEmbed

    from resdit.plan import build_plan

    grid = (size[0] // 16, size[1] // 16)
    plan = build_plan(ResDiTConfig(mode="resdit"), FluxPosEmbed(10000, [16, 56, 56]), grid, (64, 64),
                      torch.zeros(4, 3), 128, "cpu")
    rows, cols = plan.global_ids[:, 1].reshape(grid), plan.global_ids[:, 2].reshape(grid)
    for ids, n in ((rows[:, 0], grid[0]), (cols[0], grid[1])):
        assert ids.min() == 0 and ids.max() < 64  # every axis spans the base range on its own
        assert torch.allclose(ids[1:] - ids[:-1], torch.full_like(ids[1:], 64 / n), atol=1e-4)
    assert plan.partition.window == (64, 64)
    ones = torch.ones(1, plan.partition.num_windows, 64 * 64, 1)
    torch.testing.assert_close(plan.partition.splice(ones), torch.ones(1, grid[0] * grid[1], 1))


def test_sd3_non_square_4k_table_per_axis():
    """SD3's geometry (table of 192, base 64x64 tokens) at 2160 x 3840 px: each axis scaled on its own."""
    from diffusers.models.embeddings import PatchEmbed

    pe = PatchEmbed(height=128, width=128, patch_size=2, in_channels=4, embed_dim=64, pos_embed_max_size=192)
    table = pos_embed_table(pe, (135, 240), (64, 64), "scaled")[0].double()
    rows = 64 + torch.arange(135) * 64 / 135  # base crop starts at (192 - 64) // 2
    cols = 64 + torch.arange(240) * 64 / 240
    torch.testing.assert_close(table, sincos_table(64, cols / 3, rows / 3), atol=2e-5, rtol=0)


# --- VAE tiling and memory ---------------------------------------------------------------------------------------


def test_vae_tiling_turns_on_above_the_threshold_and_is_restored(flux_control_pipe):
    from tiny_pipelines import tiny_flux_pipeline

    pipe = tiny_flux_pipeline()
    seen = []
    decode = pipe.vae.decode
    pipe.vae.decode = lambda *a, **k: (seen.append(pipe.vae.use_tiling), decode(*a, **k))[1]
    cfg = ResDiTConfig(base_size=(16, 16), mode="scaled_pe", vae_tiling_above=40 * 40)
    with resdit.enabled(pipe, cfg):
        run(pipe, (32, 32), steps=1)
        run(pipe, (48, 48), steps=1)
    assert seen == [False, True] and pipe.vae.use_tiling is False


def test_tiled_vae_decode_has_no_visible_seams():
    """diffusers' tiled decode blends tile overlaps: no step where tiles meet, unlike pasting tiles decoded apart."""
    from tiny_pipelines import _vae

    torch.manual_seed(4)
    vae = _vae(4).eval()
    g = torch.Generator().manual_seed(0)
    latent = torch.nn.functional.interpolate(torch.randn(1, 4, 12, 12, generator=g), size=(96, 96), mode="bicubic")

    def border_ratio(image, columns):  # horizontal gradient energy on the given columns vs everywhere
        grad = (image[..., 1:] - image[..., :-1]).pow(2).mean(dim=(0, 1, 2))
        return float(grad[[c - 1 for c in columns]].mean() / grad.mean())

    with torch.no_grad():
        pasted = torch.cat([vae.decode(latent[..., i:i + 32]).sample for i in (0, 32, 64)], dim=-1)
        vae.enable_tiling()  # 32 px tiles, 25 % overlap: tile starts every 24 px
        tiled = vae.decode(latent).sample
    assert border_ratio(pasted, [32, 64]) > 4.0  # what a seam looks like to this measure (measured 9.6)
    assert border_ratio(tiled, [24, 48, 72]) < 2.0  # measured 0.70


def test_chunked_local_branch_bounds_peak_memory_with_equal_output(monkeypatch):
    """Bound: the chunked local branch needs no more memory than the global branch at the same size."""
    from conftest import flux_inputs, tiny_flux

    from resdit import memory
    from resdit.bench import _peak_bytes

    model = tiny_flux(attention_head_dim=32, num_attention_heads=2, axes_dims_rope=[8, 12, 12])
    inputs = flux_inputs((48, 48), text_len=4)
    outs, peaks = {}, {}
    per_window = memory.attention_window_bytes(1, 4 + 64, 2, 32)
    for mode, chunk in (("scaled_pe", None), ("patch_pe_local", None), ("patch_pe_local", 1),
                        ("patch_pe_local", "auto")):
        with resdit.enabled(model, ResDiTConfig(mode=mode, window_chunk=chunk), base_grid=(8, 8)):
            with torch.no_grad():
                if chunk == "auto":  # pretend there is room for 4 windows' attention
                    monkeypatch.setattr(memory, "free_bytes", lambda device: 8 * per_window)
                    assert memory.window_chunk(ResDiTConfig(window_chunk="auto"), 49, per_window, "cpu") == 4
                outs[mode, chunk] = model(**inputs).sample
                peaks[mode, chunk] = _peak_bytes(lambda: model(**inputs))
    unchunked = outs["patch_pe_local", None]
    for chunk in (1, "auto"):  # batch size changes the kernels' rounding, nothing else
        torch.testing.assert_close(outs["patch_pe_local", chunk], unchunked, atol=1e-6, rtol=1e-6)
        assert peaks["patch_pe_local", chunk] <= 1.02 * peaks["scaled_pe", None]
    assert peaks["patch_pe_local", None] > 1.15 * peaks["scaled_pe", None]  # 49 windows at once (measured 1.21)


def test_window_chunk_validation():
    with pytest.raises(ResDiTConfigError, match="window_chunk"):
        ResDiTConfig(window_chunk="lots")
    with pytest.raises(ResDiTConfigError, match="window_chunk"):
        ResDiTConfig(window_chunk=0)


def test_resdit_works_under_model_cpu_offload():
    """accelerate's offload hooks wrap the models' forward; ResDiT applied after them gives the same image."""
    from tiny_pipelines import tiny_flux_pipeline

    for pipe, base, size in ((tiny_flux_pipeline(), (16, 16), (32, 48)), (tiny_sd3_pipeline(), SD3_BASE, (32, 64))):
        cfg = ResDiTConfig(base_size=base, mode="resdit")
        with resdit.enabled(pipe, cfg):
            reference = run(pipe, size)
        pipe.enable_model_cpu_offload(device="cpu")
        with resdit.enabled(pipe, cfg):
            assert np.array_equal(run(pipe, size), reference)


def test_flux_controlnet_runs_the_global_branch_at_the_base_token_count(flux_control_pipe):
    pipe = flux_control_pipe
    cfg = ResDiTConfig(base_size=(16, 16), mode="resdit", global_tokens="base")
    with resdit.enabled(pipe, cfg) as state:
        image = run(pipe, (32, 48), steps=2, control_image=_control((32, 48)))
        control = resdit.get_state(pipe.controlnet)
        assert control.plan.pooled.grid == state.plan.pooled.grid == (8, 8)  # 16x24 tokens on 2x3 blocks
        assert torch.equal(control.plan.pooled.rope[0], state.plan.pooled.rope[0])
    assert image.shape == (1, 32, 48, 3) and np.isfinite(image).all()


def test_sd3_refuses_the_base_token_global_branch_by_name(sd3_pipe):
    with pytest.raises(ResDiTConfigError, match="not available for SD3"):
        resdit.apply_resdit(sd3_pipe, ResDiTConfig(base_size=SD3_BASE, mode="resdit", global_tokens="base"))


# --- recording SD3 --------------------------------------------------------------------------------------------


def test_recording_sd3_gives_each_pass_the_attention_it_ran(sd3_pipe):
    """Fused phase at 1.5x: the global pass over every token and the window passes (each window a whole-model pass
    with its own activations). For a probe, recorded probabilities x that pass's values = the attention output of
    that pass at the probe (global: its token; local: its home window's row); the text comes first in the row."""
    t = sd3_pipe.transformer
    attn = t.transformer_blocks[0].attn
    seen = {"v": [], "v_txt": [], "out": []}
    hooks = [attn.to_v.register_forward_hook(lambda m, a, out: seen["v"].append(out)),
             attn.add_v_proj.register_forward_hook(lambda m, a, out: seen["v_txt"].append(out)),
             attn.to_out[0].register_forward_pre_hook(lambda m, a: seen["out"].append(a[0]))]
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(1, 4, 48, 48, generator=g), torch.randn(1, 7, 32, generator=g),
            torch.randn(1, 64, generator=g), torch.full((1,), 500.0))
    probe, T, N = (5, 30), 7, 48 * 48
    try:
        with resdit.enabled(t, ResDiTConfig(mode="resdit", global_steps=0, local_steps=0), base_grid=(32, 32)):
            resdit.set_step(t, 0, 4)
            stock = t(*args, return_dict=False)[0]
            seen = {k: [] for k in seen}
            with resdit.record(t, layers=[0], probes=[probe]) as cache:
                recorded = t(*args, return_dict=False)[0]
            plan = resdit.get_state(t).plan
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(recorded, stock)  # recording changes nothing
    heads = 4
    p = probe[0] * 48 + probe[1]
    row = cache.get("probs", 0, branch="global")[0, :, 0]  # [heads, T + N]
    assert row.shape == (heads, T + N)
    torch.testing.assert_close(row.sum(-1), torch.ones(heads))
    v = torch.cat([seen["v_txt"][0][0], seen["v"][0][0]]).unflatten(-1, (heads, -1))  # text first
    out = seen["out"][0][0, p].unflatten(-1, (heads, -1))
    torch.testing.assert_close(torch.einsum("hk,khd->hd", row, v), out, atol=1e-5, rtol=1e-4)
    local = cache.get("probs", 0, branch="local")[0, :, 0]
    from resdit.record import Recorder

    w = int(Recorder._home_windows(plan)[p])
    idx = plan.partition.index[w]
    pos = int((idx == p).nonzero()[0, 0])
    assert local[:, T:][:, ~torch.isin(torch.arange(N), idx)].abs().max() == 0  # nothing outside its window
    v_w = torch.cat([seen["v_txt"][1][w], seen["v"][1][w]]).unflatten(-1, (heads, -1))
    row_w = torch.cat([local[:, :T], local[:, T + idx]], -1)
    out_w = seen["out"][1][w, pos].unflatten(-1, (heads, -1))
    torch.testing.assert_close(torch.einsum("hk,khd->hd", row_w, v_w), out_w, atol=1e-5, rtol=1e-4)
    assert cache.meta["text_len"] == T


def test_recording_an_untouched_sd3_model_observes_it_and_says_what_it_cannot_report(sd3_pipe):
    t = sd3_pipe.transformer
    g = torch.Generator().manual_seed(3)
    args = (torch.randn(1, 4, 32, 32, generator=g), torch.randn(1, 7, 32, generator=g),
            torch.randn(1, 64, generator=g), torch.full((1,), 500.0))
    stock = t(*args, return_dict=False)[0]
    with pytest.raises(ValueError, match="rope_ids"):
        with resdit.record(t, points=["probs", "rope_ids"], probes=[(1, 1)]):
            pass
    with resdit.record(t, points=["entropy"]) as cache:
        out = t(*args, return_dict=False)[0]
    assert torch.equal(out, stock) and resdit.get_state(t) is None
    entropy = cache.get("entropy", 0, branch="global")
    assert entropy.shape == (1, 4) and (entropy > 0).all() and (entropy <= math.log(32 * 32 + 7) + 1e-4).all()
