import pytest
import torch
from conftest import flux_inputs, tiny_flux

import resdit
from resdit import ResDiTConfig, ResDiTConfigError
from resdit.plan import build_plan
from resdit.processors import ResDiTFluxAttnProcessor

STEPS = {"global": 0, "fused": 15, "local": 30}  # of 35


def run(model, inputs, mode, step=0, base_grid=(8, 8), **cfg):
    resdit.apply_resdit(model, ResDiTConfig(mode=mode, **cfg), base_grid=base_grid)
    resdit.set_step(model, step, 35)
    try:
        with torch.no_grad():
            return model(**inputs).sample
    finally:
        resdit.remove_resdit(model)


@pytest.mark.parametrize("mode", sorted(m for m, s in resdit.MODES.items() if not s.two_pass))
@pytest.mark.parametrize("phase", sorted(STEPS))
def test_every_mode_reproduces_the_model_at_its_base_grid(transformer, mode, phase):
    inputs = flux_inputs((8, 8), batch=2)
    with torch.no_grad():
        reference = transformer(**inputs).sample
    out = run(transformer, inputs, mode, STEPS[phase])
    assert (out - reference).abs().max().item() < 1e-5


def test_modes_change_the_output_beyond_the_base_grid_each_in_its_own_way(transformer):
    inputs = flux_inputs((16, 12))
    with torch.no_grad():
        reference = transformer(**inputs).sample
    modes = ["scaled_pe", "patch_pe", "patch_pe_local", "resdit", "resdit_paper", "resdit_no_psf", "resdit_no_pipe"]
    outs = {m: run(transformer, inputs, m, STEPS["fused"]) for m in modes}
    for m in modes:
        assert (outs[m] - reference).abs().max().item() > 1e-3, m
    for i, a in enumerate(modes):  # a mode wired to another's branches would repeat its output
        for b in modes[i + 1:]:
            if {a, b} != {"resdit", "resdit_paper"}:  # the same fused step (they differ in schedule and scale)
                assert (outs[a] - outs[b]).abs().max().item() > 1e-4, (a, b)


def test_remove_restores_processors_and_output_bit_for_bit(transformer):
    inputs = flux_inputs((16, 16))
    before = dict(transformer.attn_processors)
    with torch.no_grad():
        reference = transformer(**inputs).sample
    run(transformer, inputs, "resdit", STEPS["fused"])
    after = transformer.attn_processors
    assert all(after[k] is before[k] for k in before)
    assert not transformer._forward_pre_hooks
    with torch.no_grad():
        assert torch.equal(transformer(**inputs).sample, reference)


def test_enabled_removes_even_when_generation_raises(transformer):
    before = dict(transformer.attn_processors)
    with pytest.raises(KeyError):
        with resdit.enabled(transformer, ResDiTConfig(mode="resdit"), base_grid=(8, 8)):
            raise KeyError("interrupted")
    assert all(transformer.attn_processors[k] is v for k, v in before.items())
    assert resdit.get_state(transformer) is None


def test_applying_twice_is_an_error(transformer):
    resdit.apply_resdit(transformer, ResDiTConfig(), base_grid=(8, 8))
    with pytest.raises(RuntimeError, match="already applied"):
        resdit.apply_resdit(transformer, ResDiTConfig(), base_grid=(8, 8))
    resdit.remove_resdit(transformer)


def test_unsupported_transformer_is_an_error():
    with pytest.raises(TypeError, match="does not support Linear"):
        resdit.apply_resdit(torch.nn.Linear(2, 2), ResDiTConfig(), base_grid=(8, 8))


def test_bare_transformer_needs_a_token_base_grid(transformer):
    with pytest.raises(ResDiTConfigError, match="base_grid"):
        resdit.apply_resdit(transformer, ResDiTConfig(base_size=(16, 16)))


@pytest.mark.parametrize("cutoff", [-0.1, 1.5])
def test_cutoff_outside_range_is_an_error(cutoff):
    with pytest.raises(ResDiTConfigError, match="sqrt"):
        ResDiTConfig(cutoff=cutoff)


def test_unknown_mode_is_an_error():
    with pytest.raises(ResDiTConfigError, match="Unknown mode"):
        ResDiTConfig(mode="magic")


def test_phased_mode_without_step_information_is_an_error(transformer):
    with resdit.enabled(transformer, ResDiTConfig(mode="resdit"), base_grid=(8, 8)):
        with pytest.raises(ResDiTConfigError, match="scheduler"):
            transformer(**flux_inputs((16, 16)))


def test_bf16_ids_beyond_256_are_rejected_with_advice(transformer):
    inputs = flux_inputs((2, 300))
    inputs["img_ids"] = inputs["img_ids"].to(torch.bfloat16)
    with resdit.enabled(transformer, ResDiTConfig(mode="scaled_pe"), base_grid=(8, 8)):
        with pytest.raises(ResDiTConfigError, match="float32"):
            transformer(**inputs)


def _qkv(grid, text_len=3, heads=2, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = text_len + grid[0] * grid[1]
    return [torch.randn(2, n, heads, d, generator=g) for _ in range(3)]


def _processor(cfg, grid, base, text_len=3):
    from resdit.apply import ResDiTState

    model = tiny_flux()
    state = ResDiTState(cfg, base, model)
    state.plan = build_plan(cfg, model.pos_embed, grid, base, torch.zeros(text_len, 3), 16, "cpu")
    return ResDiTFluxAttnProcessor(state, "test"), state.plan


def test_a_window_as_large_as_the_image_makes_local_attention_global():
    cfg = ResDiTConfig(mode="patch_pe_local")
    proc, plan = _processor(cfg, (6, 10), (6, 10))
    q, k, v = _qkv((6, 10))
    local = proc.attend(q, k, v, plan, "local")
    glob = proc.global_branch(q, k, v, plan)
    torch.testing.assert_close(local, glob, atol=1e-6, rtol=0)


def test_chunked_windows_equal_one_batch():
    q, k, v = _qkv((20, 14))
    full, plan = _processor(ResDiTConfig(mode="resdit"), (20, 14), (8, 8))
    chunked, _ = _processor(ResDiTConfig(mode="resdit", window_chunk=2), (20, 14), (8, 8))
    torch.testing.assert_close(chunked.attend(q, k, v, plan, "fused"), full.attend(q, k, v, plan, "fused"),
                               atol=1e-6, rtol=0)


def test_cutoff_sqrt2_makes_the_fused_phase_equal_the_global_phase():
    q, k, v = _qkv((16, 16))
    proc, plan = _processor(ResDiTConfig(mode="resdit", cutoff=2 ** 0.5), (16, 16), (8, 8))
    fused = proc.attend(q, k, v, plan, "fused")
    torch.testing.assert_close(fused, proc.attend(q, k, v, plan, "global"), atol=1e-5, rtol=0)


def test_local_text_output_is_the_mean_over_windows():
    q, k, v = _qkv((16, 8))
    proc, plan = _processor(ResDiTConfig(mode="patch_pe_local"), (16, 8), (8, 8))
    text, windows = proc.local_branch(q, k, v, plan)
    # the windows of a 16x8 grid with 8x8 windows start at rows 0, 4, 8
    assert plan.partition.starts == ([0, 4, 8], [0])
    per_window = []
    for start in (0, 4, 8):
        rows = torch.arange(start * 8, (start + 8) * 8) + 3
        sel = torch.cat([torch.arange(3), rows])
        cos, sin = plan.local_rope
        from resdit.processors import apply_rope

        qs, ks = apply_rope(q[:, sel], cos, sin), apply_rope(k[:, sel], cos, sin)
        out = torch.nn.functional.scaled_dot_product_attention(qs.transpose(1, 2), ks.transpose(1, 2),
                                                               v[:, sel].transpose(1, 2)).transpose(1, 2)
        per_window.append(out.flatten(2)[:, :3])
    torch.testing.assert_close(text, torch.stack(per_window).mean(0), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["patch_pe_local", "resdit_no_pipe"])
def test_local_branch_equals_per_window_tables_applied_to_each_window(mode):
    """Rotating image tokens once and moving each window's text to its start equals the per-window
    tables of SPEC 1 (indices 0..h-1, text at its own ids), also for text ids that are not zero."""
    from resdit.apply import ResDiTState
    from resdit.processors import apply_rope

    cfg, grid, base = ResDiTConfig(mode=mode), (12, 10), (8, 8)
    model = tiny_flux()
    state = ResDiTState(cfg, base, model)
    txt_ids = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 0.5]])
    state.plan = plan = build_plan(cfg, model.pos_embed, grid, base, txt_ids, 16, "cpu")
    q, k, v = _qkv(grid)
    text, windows = ResDiTFluxAttnProcessor(state, "test").local_branch(q, k, v, plan)
    cos, sin = plan.local_rope
    for w, idx in enumerate(plan.partition.index):
        sel = torch.cat([torch.arange(3), idx + 3])
        tc, ts = (cos[w], sin[w]) if cos.ndim == 3 else (cos, sin)
        qs, ks = apply_rope(q[:, sel], tc, ts), apply_rope(k[:, sel], tc, ts)
        out = torch.nn.functional.scaled_dot_product_attention(qs.transpose(1, 2), ks.transpose(1, 2),
                                                               v[:, sel].transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(windows[:, w], out.flatten(2)[:, 3:], atol=2e-5, rtol=0)


def test_proportional_attention_scales_global_logits():
    from resdit.plan import proportional_scale

    assert proportional_scale(256, 256, 16) is None
    assert proportional_scale(1024, 256, 16) == pytest.approx((5 / 4) ** 0.5 / 4)


def test_time_aware_rope_switches_from_interpolation_to_ntk_at_the_watershed(transformer):
    from resdit.plan import rope_variant

    cfg = ResDiTConfig(mode="time_aware", watershed=0.3)
    assert rope_variant(cfg, 0.29, None)[:2] == ("scaled", "base")
    assert rope_variant(cfg, 0.30, None)[:2] == ("extrapolate", "ntk")
    inputs = flux_inputs((16, 16))
    # time_aware keeps Lumina-Next's proportional attention on by default; scaled_pe is plain interpolation
    early = run(transformer, inputs, "time_aware", 0)
    pi = run(transformer, inputs, "scaled_pe", 0, proportional_attention=True)
    assert torch.equal(early, pi)
    assert not torch.allclose(run(transformer, inputs, "time_aware", 30), pi)


def test_dype_scale_decays_with_the_noise_level(transformer):
    from resdit.plan import rope_variant

    cfg = ResDiTConfig(mode="dype")
    assert rope_variant(cfg, None, 1.0)[2] == 1.0 and rope_variant(cfg, None, 0.5)[2] == 0.25
    inputs = flux_inputs((16, 16))
    clean = dict(inputs, timestep=torch.zeros(1))  # t = 0: base RoPE, i.e. plain extrapolation
    assert torch.equal(run(transformer, clean, "dype"), run(transformer, clean, "extrapolate"))
    assert not torch.allclose(run(transformer, inputs, "dype"), run(transformer, inputs, "extrapolate"))


def test_two_pass_modes_are_refused_by_apply(transformer):
    with pytest.raises(ResDiTConfigError, match="resdit.generate"):
        resdit.apply_resdit(transformer, ResDiTConfig(mode="two_stage"), base_grid=(8, 8))


def test_tiling_runs_the_model_on_base_tiles_and_averages(transformer):
    inputs = flux_inputs((8, 12))  # tiles: cols 0..7 and 4..11, overlap on cols 4..7
    out = run(transformer, inputs, "tiling")
    with torch.no_grad():
        tiles = []
        for c0 in (0, 4):
            grid = inputs["hidden_states"].view(1, 8, 12, -1)[:, :, c0:c0 + 8].reshape(1, 64, -1)
            tiles.append(transformer(**dict(inputs, hidden_states=grid, img_ids=flux_inputs((8, 8))["img_ids"])).sample
                         .view(1, 8, 8, -1))
    expected = torch.zeros(1, 8, 12, 4)
    expected[:, :, :4], expected[:, :, 8:] = tiles[0][:, :, :4], tiles[1][:, :, 4:]
    expected[:, :, 4:8] = 0.5 * (tiles[0][:, :, 4:] + tiles[1][:, :, :4])
    torch.testing.assert_close(out, expected.view(1, 96, 4), atol=1e-6, rtol=0)
    with torch.no_grad():
        assert torch.equal(transformer(**inputs).sample, transformer(**inputs).sample)  # forward restored
    assert "forward" not in vars(transformer)


def test_every_attention_of_a_flux1_block_layout_gets_the_processor_and_runs():
    """FLUX.1's layout (19 joint, 38 single-stream blocks) at a tiny width: all 57 attentions are ResDiT's
    and each one runs in a generation beyond the base size."""
    from resdit.processors import ResDiTFluxAttnProcessor

    model = tiny_flux(num_layers=19, num_single_layers=38, attention_head_dim=8, num_attention_heads=1,
                      axes_dims_rope=[2, 2, 4])
    calls = []
    with resdit.enabled(model, ResDiTConfig(mode="resdit"), base_grid=(4, 4)):
        procs = model.attn_processors
        assert len(procs) == 57 and all(isinstance(p, ResDiTFluxAttnProcessor) for p in procs.values())
        assert sum(k.startswith("transformer_blocks.") for k in procs) == 19
        for p in procs.values():  # count each processor's attention calls
            p.attend = (lambda f, name: lambda *a, **k: (calls.append(name), f(*a, **k))[1])(p.attend, p.name)
        resdit.set_step(model, 15, 35)
        with torch.no_grad():
            model(**flux_inputs((8, 8)))
    assert sorted(set(calls)) == sorted(k.rsplit(".processor", 1)[0] for k in procs) and len(calls) == 57
