"""The method's parts against independent computations beyond the base size: each test here fails if the
part it names is wired wrongly (modes that do more than their names, splice weights, proportional attention,
per-window indices)."""

import math

import pytest
import torch
from conftest import flux_inputs

import resdit
from resdit import ResDiTConfig
from resdit.geometry import WindowPartition


def _forward(model, inputs):
    with torch.no_grad():
        return model(**inputs).sample


def _run(model, inputs, step=0, base_grid=(8, 8), **cfg):
    with resdit.enabled(model, ResDiTConfig(**cfg), base_grid=base_grid):
        resdit.set_step(model, step, 35)
        return _forward(model, inputs)


def _grid_ids(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """FLUX image ids ``[len, 3]`` from row and column coordinates, built here (not with resdit.positions)."""
    return torch.stack([torch.zeros_like(rows), rows, cols], -1).float()


def _mesh(h, w, step_h=1.0, step_w=1.0):
    r = torch.arange(h, dtype=torch.float32).repeat_interleave(w) * step_h
    c = torch.arange(w, dtype=torch.float32).repeat(h) * step_w
    return r, c


# ------------------------------------------------------------------------------------- modes mean their names
def test_extrapolate_with_defaults_is_the_stock_model_beyond_the_base_size_bit_for_bit(transformer):
    inputs = flux_inputs((16, 12))
    assert torch.equal(_run(transformer, inputs, mode="extrapolate"), _forward(transformer, inputs))


def test_scaled_pe_with_defaults_is_position_interpolation(transformer):
    inputs = flux_inputs((16, 12))
    interpolated = dict(inputs, img_ids=_grid_ids(*_mesh(16, 12, 8 / 16, 8 / 12)))  # i / (H / h)
    torch.testing.assert_close(_run(transformer, inputs, mode="scaled_pe"), _forward(transformer, interpolated),
                               atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------------------------- Gaussian splice
def test_gaussian_splice_weights_in_an_overlap_follow_the_formula():
    # 12 tokens, windows of 8: minimum overlap gives starts 0 and 4; tokens 4-7 lie in both along each axis
    part = WindowPartition.build((12, 12), (8, 8), weighting="gaussian", sigma=0.5)
    uniform = WindowPartition.build((12, 12), (8, 8), weighting="uniform")
    assert part.starts == ([0, 4], [0, 4])
    token = (4, 7)  # near the ends of the overlap, where the weights are far from uniform
    raw, found = {}, {}
    for w, (y0, x0) in enumerate([(y, x) for y in (0, 4) for x in (0, 4)]):
        dy = (token[0] - (y0 + 3.5)) / (0.5 * 8)
        dx = (token[1] - (x0 + 3.5)) / (0.5 * 8)
        raw[w] = math.exp(-(dy ** 2 + dx ** 2) / 2)  # exp(-d^2 / 2 sigma^2), d in window units
        local = (token[0] - y0) * 8 + (token[1] - x0)
        assert part.index[w, local] == token[0] * 12 + token[1]
        found[w] = (float(part.weights[w, local]), float(uniform.weights[w, local]))
    total = sum(raw.values())
    for w in raw:
        assert found[w][0] == pytest.approx(raw[w] / total, rel=1e-6)
        assert found[w][1] == pytest.approx(0.25)
    assert max(abs(g - u) for g, u in found.values()) > 0.02  # the two weightings differ in an overlap


# ------------------------------------------------------------------------------------- proportional attention
def _scale_queries(model, factor):
    """Multiply every attention's queries by ``factor`` after QK-norm: logits times ``factor``, computed by the
    stock processors (RoPE is linear, so scaling before it equals scaling after)."""
    undo = []
    for module in model.modules():
        for name in ("norm_q", "norm_added_q"):
            norm = getattr(module, name, None)
            if isinstance(norm, torch.nn.Module):
                handle = norm.register_forward_hook(lambda m, a, out: out * factor)
                undo.append(handle.remove)
    return undo


def test_flux_global_branch_multiplies_logits_by_sqrt_log_ratio_beyond_the_base(transformer):
    inputs = flux_inputs((16, 16))
    factor = math.sqrt(math.log(16 * 16) / math.log(8 * 8))
    ours = _run(transformer, inputs, mode="scaled_pe", proportional_attention=True)
    interpolated = dict(inputs, img_ids=_grid_ids(*_mesh(16, 16, 0.5, 0.5)))
    undo = _scale_queries(transformer, factor)
    try:
        reference = _forward(transformer, interpolated)
    finally:
        for u in undo:
            u()
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours, _forward(transformer, interpolated), atol=1e-4)  # the scale matters here


def test_sd3_global_branch_multiplies_logits_by_sqrt_log_ratio_beyond_the_base():
    from tiny_pipelines import tiny_sd3

    model = tiny_sd3()
    g = torch.Generator().manual_seed(3)
    args = (torch.randn(1, 4, 48, 48, generator=g), torch.randn(1, 7, 32, generator=g),
            torch.randn(1, 64, generator=g), torch.full((1,), 500.0))
    factor = math.sqrt(math.log(48 * 48) / math.log(32 * 32))

    def run(pa: bool):
        with resdit.enabled(model, ResDiTConfig(mode="scaled_pe", proportional_attention=pa), base_grid=(32, 32)):
            with torch.no_grad():
                return model(*args, return_dict=False)[0]

    ours = run(True)
    handles = []  # SD3 has no QK-norm here: scale the query projections of image and text
    for module in model.modules():
        for name in ("to_q", "add_q_proj"):
            proj = getattr(module, name, None)
            if isinstance(proj, torch.nn.Linear):
                handles.append(proj.register_forward_hook(lambda m, a, out: out * factor))
    try:
        reference = run(False)
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours, run(False), atol=1e-4)


# ------------------------------------------------------------------------------------- PIPE beyond the base
def test_local_rope_tables_are_per_window_zero_based_beyond_the_base(transformer):
    inputs = flux_inputs((20, 12))
    with resdit.enabled(transformer, ResDiTConfig(mode="resdit"), base_grid=(8, 8)) as state:
        resdit.set_step(transformer, 34, 35)
        _forward(transformer, inputs)
        plan = state.plan
    assert plan.grid == (20, 12) and plan.partition.num_windows > 2
    ids = torch.cat([torch.zeros(5, 3), _grid_ids(*_mesh(8, 8))])  # text at 0, then 0..7 x 0..7
    cos, sin = transformer.pos_embed(ids)
    torch.testing.assert_close(plan.local_rope[0], cos, atol=0, rtol=0)
    torch.testing.assert_close(plan.local_rope[1], sin, atol=0, rtol=0)


def test_local_branch_is_stock_attention_on_each_window_with_its_own_indices(transformer):
    """One dual-stream attention beyond the base, local phase, hard grid of 2 windows: image outputs equal the
    stock processor run on each window's tokens with indices 0..7; text outputs are the windows' mean."""
    inputs = flux_inputs((16, 8))
    attn = transformer.transformer_blocks[0].attn
    captured = {}

    def keep(module, args, kwargs, output):
        captured.update(hidden=kwargs["hidden_states"], text=kwargs["encoder_hidden_states"], out=output)

    handle = attn.register_forward_hook(keep, with_kwargs=True)
    try:
        _run(transformer, inputs, step=34, mode="resdit_no_mop_gws")  # grid windows, local-only phase
    finally:
        handle.remove()
    image_out, text_out = captured["out"]
    cos, sin = transformer.pos_embed(torch.cat([torch.zeros(5, 3), _grid_ids(*_mesh(8, 8))]))
    windows = [captured["hidden"][:, :64], captured["hidden"][:, 64:]]  # rows 0-7 and 8-15 of an 8-wide grid
    with torch.no_grad():
        stock = [attn(hidden_states=w, encoder_hidden_states=captured["text"], image_rotary_emb=(cos, sin))
                 for w in windows]
    torch.testing.assert_close(image_out, torch.cat([s[0] for s in stock], 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text_out, (stock[0][1] + stock[1][1]) / 2, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------- fast ResDiT
def test_pooling_factor_one_is_full_resdit_bit_for_bit(transformer):
    inputs = flux_inputs((16, 12))
    for step in (0, 15, 30):
        full = _run(transformer, inputs, step=step, mode="resdit", global_tokens="full")
        assert torch.equal(_run(transformer, inputs, step=step, mode="resdit_fast", global_pool=1), full)
        assert torch.equal(_run(transformer, inputs, step=step, mode="resdit", global_pool=1, global_tokens="full"),
                           full)
    fused = _run(transformer, inputs, step=15, mode="resdit", global_tokens="full")
    assert not torch.equal(_run(transformer, inputs, step=15, mode="resdit_fast"), fused)  # pooling does something
    assert torch.equal(_run(transformer, inputs, step=0, mode="resdit_fast"), _run(
        transformer, inputs, step=0, mode="resdit", global_tokens="full"))  # fused phase only


def test_pooled_blocks_sit_at_their_tokens_centres_and_upsampling_is_exact_on_smooth_grids():
    from resdit.plan import pool_grid, unpool_grid

    grid = (8, 10)
    r, c = _mesh(*grid)
    ramp = (r + 2 * c)[None, :, None]  # [1, 80, 1], linear in the position
    pooled = pool_grid(ramp, grid, 2)
    block_r, block_c = _mesh(4, 5, 2.0, 2.0)
    torch.testing.assert_close(pooled[0, :, 0], (block_r + 0.5) + 2 * (block_c + 0.5))  # the blocks' mean positions
    back = unpool_grid(pooled, grid, 2)[0, :, 0].reshape(grid)
    torch.testing.assert_close(back[1:-1, 1:-1], ramp[0, :, 0].reshape(grid)[1:-1, 1:-1])  # bilinear: exact inside
    odd = pool_grid(torch.ones(1, 7 * 5, 3), (7, 5), 2)  # partial edge blocks average what they hold
    assert odd.shape == (1, 4 * 3, 3) and torch.equal(odd, torch.ones_like(odd))


def test_block_keys_get_a_logit_bias_of_log_tokens_per_block(transformer):
    """The pooled plan's key bias: 0 for text, log(tokens in the block) for each block (partial edge blocks
    count what they hold), so a block key stands for the attention mass of its tokens."""
    from resdit.plan import build_plan

    plan = build_plan(ResDiTConfig(mode="resdit_fast"), transformer.pos_embed, (5, 6), (4, 4), torch.zeros(3, 3),
                      16, "cpu")
    bias = plan.pooled.key_bias
    assert plan.pooled.grid == (3, 3) and torch.equal(bias[:3], torch.zeros(3))
    expected = torch.tensor([[2 * 2, 2 * 2, 2 * 2], [2 * 2, 2 * 2, 2 * 2], [1 * 2, 1 * 2, 1 * 2]], dtype=torch.float32)
    torch.testing.assert_close(bias[3:], expected.reshape(-1).log())
