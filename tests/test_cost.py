import pytest
import torch

from resdit.cost import TimeModel, attention_flops, generation_flops, linear_flops, step_flops, step_parts, step_rows
from resdit.schedule import phase_lengths

# A tiny config counted by hand: d = 2 x 4 = 8, one dual and one single block.
CFG = dict(num_layers=1, num_single_layers=1, attention_head_dim=4, num_attention_heads=2, in_channels=4,
           joint_attention_dim=6)


def test_linear_flops_match_a_hand_count():
    # blocks: 2 blocks x (N + T) tokens x 24 d^2; io: 2 (N c_in d + T t_dim d + N d c_out)
    n, t, d = 16, 3, 8
    expected = 2 * (n + t) * 24 * d * d + 2 * (n * 4 * d + t * 6 * d + n * d * 4)
    assert linear_flops(CFG, n, t) == expected


def test_attention_flops_match_a_hand_count():
    # 2 layers x 4 S^2 d, for each of 3 windows of 7 tokens
    assert attention_flops(CFG, 7, 3) == 2 * 3 * 4 * 49 * 8


def test_phases_compose_from_branches():
    grid, base, t = (8, 8), (4, 4), 3
    glob, loc, fused = (step_flops(CFG, grid, base, t, p) for p in ("global", "local", "fused"))
    lin = linear_flops(CFG, 64, t)
    # 8 tokens with 4-token windows -> starts 0, 2, 4 per axis: 9 windows of 16 tokens
    assert loc - lin == attention_flops(CFG, t + 16, 9)
    assert fused == lin + (glob - lin) + (loc - lin)


def test_resdit_generation_is_the_schedule_weighted_sum():
    grid, base, t = (32, 32), (8, 8), 3

    from resdit import ResDiTConfig

    def weighted(g, f, loc, pool=1, pool_all=False):
        return sum(k * step_flops(CFG, grid, base, t, p, pool=pool, pool_all=pool_all)
                   for k, p in ((g, "global"), (f, "fused"), (loc, "local")))

    assert generation_flops(CFG, grid, base, t, "resdit_paper", 35) == pytest.approx(weighted(10, 10, 15))
    full = ResDiTConfig(mode="resdit", global_tokens="full")
    assert generation_flops(CFG, grid, base, t, full, 35) == pytest.approx(weighted(10, 25, 0))  # fuses to the end
    # the default: the global branch on 4x4 blocks (8x8 of them, the base count) in every phase
    assert generation_flops(CFG, grid, base, t, "resdit", 35) == pytest.approx(weighted(10, 25, 0, (4, 4), True))
    assert step_flops(CFG, grid, base, t, "global", pool=(4, 4), pool_all=True) < step_flops(CFG, grid, base, t,
                                                                                               "global")
    assert generation_flops(CFG, grid, base, t, "resdit_fast", 35) == pytest.approx(weighted(10, 25, 0, pool=2))
    assert generation_flops(CFG, grid, base, t, "resdit_paper", 35) < generation_flops(CFG, grid, base, t, "direct", 35)


def test_a_least_window_overlap_counts_the_windows_it_adds():
    """The toy at 8x: 9 x 9 minimum-overlap windows, 11 x 11 with an overlap of 4 tokens; the local branch's
    attention grows by exactly that count, in the local-only phase and in a generation that has one."""
    from resdit import ResDiTConfig

    grid, base, t = (128, 128), (16, 16), 3
    lin = linear_flops(CFG, 128 * 128, t)
    for overlap, windows in ((1, 81), (4, 121)):
        assert step_flops(CFG, grid, base, t, "local", align=2, overlap=overlap) - lin == attention_flops(
            CFG, t + 256, windows)
    one, four, quarter = (generation_flops(CFG, grid, base, t,
                                           ResDiTConfig(mode="resdit", local_steps=3, window_overlap=o), 20)
                          for o in (1, 4, None))
    assert quarter == four  # mode resdit's default: a quarter of the 16-token window
    local = attention_flops(CFG, t + 256, 121) - attention_flops(CFG, t + 256, 81)
    g, fused, loc = phase_lengths(20, None, 3)  # the global-only phase has no windows
    assert (g, fused, loc) == (6, 11, 3) and four - one == pytest.approx((fused + loc) * local)


def test_rows_count_own_and_folded_tokens_per_block():
    grid, base, t = (8, 8), (4, 4), 3  # 9 windows of 16 tokens (see above)
    assert step_rows(CFG, grid, base, t, "global") == 2 * (64 + 3)
    assert step_rows(CFG, grid, base, t, "local") == 2 * (64 + 3 + 9 * (3 + 16))
    assert step_rows(CFG, grid, base, t, "tiling") == 2 * 9 * (3 + 16)


def test_time_model_adds_linear_attention_and_row_terms():
    from resdit.cost import step_parts

    grid, base, t = (8, 8), (4, 4), 3
    model = TimeModel(per_linear_flop=2e-11, per_attention_flop=1e-11, per_row=3e-6)
    lin, att, rows = step_parts(CFG, grid, base, t, "local")
    assert lin == linear_flops(CFG, 64, t) and att == attention_flops(CFG, t + 16, 9)
    assert model.step(CFG, grid, base, t, "local") == pytest.approx(2e-11 * lin + 1e-11 * att + 3e-6 * rows)
    tl, ta, _ = step_parts(CFG, grid, base, t, "tiling")
    assert tl + ta == step_flops(CFG, grid, base, t, "tiling")


def test_step_flops_match_torchs_flop_counter_on_a_real_forward():
    """Counted independently: torch's FlopCounterMode on a tiny FLUX forward (math SDPA, so attention is counted
    as matmuls). The model leaves out only per-batch terms (AdaLN, time embedding), the same at every size."""
    from conftest import flux_inputs, tiny_flux
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    import resdit
    from resdit import ResDiTConfig

    model = tiny_flux()
    cfg = {k: model.config[k] for k in ("num_layers", "num_single_layers", "attention_head_dim",
                                        "num_attention_heads", "in_channels", "joint_attention_dim")}
    left_out = set()
    for grid in ((32, 32), (40, 24)):
        for mode, phase, step in (("direct", "global", 0), ("patch_pe_local", "local", 0), ("resdit", "fused", 15)):
            with resdit.enabled(model, ResDiTConfig(mode=mode, global_tokens="full" if mode == "resdit" else None),
                                base_grid=(16, 16)):
                resdit.set_step(model, step, 35)
                with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
                    model(**flux_inputs(grid))
            left_out.add(counter.get_total_flops() - step_flops(cfg, grid, (16, 16), 5, phase))
    assert len(left_out) == 1 and 0 < left_out.pop() < 1e5  # one constant, tiny against ~1e8-1e9 FLOPs


def test_pooling_divides_the_fused_global_attention_by_the_blocks():
    grid, base, t = (16, 16), (4, 4), 3
    full = step_parts(CFG, grid, base, t, "fused")
    pooled = step_parts(CFG, grid, base, t, "fused", pool=2)
    local = step_parts(CFG, grid, base, t, "local")
    assert pooled[0] == full[0]  # projections still run on every token
    assert pooled[1] == attention_flops(CFG, t + 8 * 8) + local[1]  # 64 blocks + the local windows
    assert step_parts(CFG, base, base, t, "fused", pool=2) == step_parts(CFG, base, base, t, "fused")  # at base
