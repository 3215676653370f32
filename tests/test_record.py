import math

import pytest
import torch
from conftest import flux_inputs, tiny_flux

import resdit
from resdit import ResDiTConfig
from resdit.record import POINTS, AttentionCache, Recorder


def forward(model, inputs):
    with torch.no_grad():
        return model(**inputs).sample


def test_recording_does_not_change_the_output_of_an_untouched_model(transformer):
    inputs = flux_inputs((12, 10))
    reference = forward(transformer, inputs)
    before = dict(transformer.attn_processors)
    with resdit.record(transformer, points=["probs", "entropy", "distance", "rope_ids", "spectrum", "bands"],
                       probes=[(3, 4), 17]) as cache:
        out = forward(transformer, inputs)
    assert torch.equal(out, reference)
    assert len(cache) > 0
    assert all(transformer.attn_processors[k] is v for k, v in before.items())
    assert not transformer._forward_pre_hooks and resdit.get_state(transformer) is None


def test_recording_does_not_change_resdit_output_and_nests_with_apply(transformer):
    inputs = flux_inputs((16, 16))
    with resdit.enabled(transformer, ResDiTConfig(mode="resdit"), base_grid=(8, 8)):
        resdit.set_step(transformer, 15, 35)  # fused phase: both branches
        reference = forward(transformer, inputs)
        with resdit.record(transformer, points=list(POINTS), probes=[(5, 5)]) as cache:
            out = forward(transformer, inputs)
        assert not resdit.get_state(transformer).listening("attention")
    assert torch.equal(out, reference)
    branches = {k[3] for k in cache.entries if k[0].endswith(".spectrum")}
    assert branches == {"global", "local", "fused"}


def test_recorder_detaches_when_generation_raises(transformer):
    before = dict(transformer.attn_processors)
    with pytest.raises(RuntimeError, match="boom"):
        with resdit.record(transformer, probes=[0]):
            raise RuntimeError("boom")
    assert all(transformer.attn_processors[k] is v for k, v in before.items())
    assert resdit.get_state(transformer) is None


def test_attaching_twice_is_an_error(transformer):
    with resdit.enabled(transformer, ResDiTConfig(mode="scaled_pe"), base_grid=(8, 8)):
        with resdit.record(transformer):
            with pytest.raises(RuntimeError, match="already attached"):
                with resdit.record(transformer):
                    pass


def test_probability_rows_sum_to_one_for_both_branches(transformer):
    with resdit.enabled(transformer, ResDiTConfig(mode="resdit"), base_grid=(8, 8)):
        resdit.set_step(transformer, 15, 35)
        with resdit.record(transformer, points=["probs"], layers=[0, -1], probes=[(0, 0), (15, 15), (0.5, 0.5)]) as c:
            forward(transformer, flux_inputs((16, 16), text_len=5))
    for branch, keys in (("global", 5 + 64), ("local", 5 + 256)):  # the global branch ran on 8x8 blocks
        p = c.get("probs", -1, branch=branch)
        assert p.shape == (1, 2, 3, keys)
        torch.testing.assert_close(p.sum(-1), torch.ones(1, 2, 3))
    local = c.get("probs", 0, branch="local")
    # the probe at (0, 0) only sees text and its own window (the top-left 8x8)
    img = local[0, :, 0, 5:].reshape(2, 16, 16)
    assert img[:, 8:, :].abs().max() == 0 and img[:, :, 8:].abs().max() == 0


def test_layer_shorthand_matches_full_names(transformer):
    with resdit.record(transformer, points=["entropy"], layers=[-1]) as cache:
        forward(transformer, flux_inputs((8, 8)))
    assert cache["entropy", -1] == cache["single_transformer_blocks.0.attn.entropy"]
    with pytest.raises(KeyError, match="Nothing recorded"):
        cache["entropy", 0]


def test_entropy_of_uniform_attention_is_log_keys():
    cache = AttentionCache(["layer"])
    rec = Recorder(cache, ["entropy", "distance"], None, None, [], budget=1000)
    from resdit.plan import build_plan

    model = tiny_flux()
    plan = build_plan(ResDiTConfig(mode="scaled_pe"), model.pos_embed, (6, 6), (6, 6), torch.zeros(2, 3), 16, "cpu")
    q = torch.zeros(1, 38, 2, 16)  # zero queries -> uniform attention over all 38 keys
    k = torch.randn(1, 38, 2, 16)
    e, d = rec._entropy_distance(q[:, 2:], k, 0.25, plan, torch.arange(36), torch.arange(36))
    torch.testing.assert_close(e, torch.full((1, 2), math.log(38)))
    # mean distance between two uniformly chosen cells of a 6x6 grid
    pts = torch.stack(torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij"), -1).reshape(-1, 2)
    expected = torch.cdist(pts, pts).mean()
    torch.testing.assert_close(d, torch.full((1, 2), expected.item()))


def test_recorded_rope_grid_for_scaled_pe_is_the_analytic_grid(transformer):
    with resdit.enabled(transformer, ResDiTConfig(mode="scaled_pe"), base_grid=(8, 8)):
        with resdit.record(transformer, points=["rope_ids"]) as cache:
            forward(transformer, flux_inputs((16, 24)))
    ids = cache.get("rope_ids", branch="global")
    rows, cols = torch.meshgrid(torch.arange(16.0) / 2, torch.arange(24.0) / 3, indexing="ij")
    torch.testing.assert_close(ids[:, 1], rows.reshape(-1))
    torch.testing.assert_close(ids[:, 2], cols.reshape(-1))


def test_fused_band_energies_with_cutoff_sqrt2_equal_the_global_branch(transformer):
    with resdit.enabled(transformer, ResDiTConfig(mode="resdit", cutoff=2 ** 0.5), base_grid=(8, 8)):
        resdit.set_step(transformer, 15, 35)
        with resdit.record(transformer, points=["bands"]) as cache:
            forward(transformer, flux_inputs((16, 16)))
    for layer in (0, 1):
        fused, glob = cache.get("bands", layer, branch="fused"), cache.get("bands", layer, branch="global")
        torch.testing.assert_close(fused, glob, rtol=1e-4, atol=1e-6)
        assert glob[..., 0].min() > 0 and glob[..., 1].abs().max() == 0  # cutoff sqrt(2): every frequency is "low"


def test_cache_round_trips_through_disk(transformer, tmp_path):
    with resdit.record(transformer, points=["probs", "entropy", "rope_ids"], probes=[3]) as cache:
        forward(transformer, flux_inputs((8, 8)))
    cache.save(tmp_path / "cache")
    loaded = AttentionCache.load(tmp_path / "cache")
    assert loaded.layers == cache.layers and loaded.meta == cache.meta
    assert loaded.entries.keys() == cache.entries.keys()
    assert all(torch.equal(loaded.entries[k], v) for k, v in cache.entries.items())


def test_list_points_names_every_layer(transformer):
    names = resdit.list_points(transformer)
    assert "transformer_blocks.0.attn.probs" in names and "single_transformer_blocks.0.attn.spectrum" in names
    assert "pos_embed.rope_ids" in names


def _ran(plan, q, k) -> dict:
    """What the full global branch reports it ran (its roped q and k at the plan's table)."""
    from resdit.processors import apply_rope

    cos, sin = plan.global_rope
    return {"global": dict(query=apply_rope(q, cos, sin), key=apply_rope(k, cos, sin), value=None,
                           scale=plan.global_scale, bias=None, grid=plan.grid, factors=(1, 1))}


def test_probe_recording_memory_is_bounded_at_128x128_tokens():
    """Largest single allocation while recording 16 probes on 16,384 tokens stays near the probes' rows."""
    from torch.profiler import ProfilerActivity, profile

    from resdit.plan import build_plan

    model = tiny_flux()
    grid, T, heads, d = (128, 128), 4, 2, 16
    plan = build_plan(ResDiTConfig(mode="scaled_pe"), model.pos_embed, grid, (64, 64), torch.zeros(T, 3), d, "cpu")
    q, k = torch.randn(1, T + 128 * 128, heads, d), torch.randn(1, T + 128 * 128, heads, d)
    cache = AttentionCache(["layer"])
    probes = [(i * 8, i * 8) for i in range(16)]
    rec = Recorder(cache, ["probs"], None, None, probes, budget=1 << 22)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        rec.on_attention("layer", q, k, plan, "global", _ran(plan, q, k))
    probe_rows = 16 * heads * (T + 128 * 128) * 4  # bytes of the recorded rows
    qk_bytes = q.numel() * 4  # roped copies of q and k are allowed
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest <= 4 * max(probe_rows, qk_bytes)  # the full matrix would be 2 heads x 16,384^2 x 4 B = 2 GiB
    assert cache.get("layer.probs", branch="global").shape == (1, heads, 16, T + 128 * 128)


def test_home_window_holds_the_token_with_its_largest_splice_weight():
    from resdit.plan import build_plan

    plan = build_plan(ResDiTConfig(mode="resdit"), tiny_flux().pos_embed, (21, 13), (8, 8), torch.zeros(2, 3), 16,
                      "cpu")
    home = Recorder._home_windows(plan)
    part = plan.partition
    for token in range(21 * 13):
        holders = (part.index == token).nonzero()
        weights = part.weights[holders[:, 0], holders[:, 1]]
        assert home[token] == holders[weights.argmax(), 0]


@pytest.mark.parametrize("mode,step,branch", [("scaled_pe", 0, "global"), ("resdit_no_mop_gws", 34, "local")])
def test_recorded_probabilities_are_the_attention_the_processor_used(transformer, mode, step, branch):
    """For a probe, recorded probabilities x values = the attention output the layer went on with (per head),
    read at the output projection's input; local branch on a hard grid, where each token has one window."""
    attn = transformer.transformer_blocks[0].attn
    seen = {}
    hooks = [attn.to_v.register_forward_hook(lambda m, a, out: seen.__setitem__("v_img", out)),
             attn.add_v_proj.register_forward_hook(lambda m, a, out: seen.__setitem__("v_txt", out)),
             attn.to_out[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("out", a[0]))]
    probe = (3, 12)
    try:
        with resdit.enabled(transformer, ResDiTConfig(mode=mode), base_grid=(8, 8)):
            resdit.set_step(transformer, step, 35)
            with resdit.record(transformer, points=["probs"], layers=[0], probes=[probe]) as cache:
                forward(transformer, flux_inputs((16, 16), text_len=5))
    finally:
        for h in hooks:
            h.remove()
    probs = cache.get("probs", 0, branch=branch)[0, :, 0]  # [heads, keys]
    heads = probs.shape[0]
    v = torch.cat([seen["v_txt"], seen["v_img"]], 1)[0].unflatten(-1, (heads, -1))  # [keys, heads, d]
    expected = torch.einsum("hk,khd->hd", probs, v).reshape(-1)
    torch.testing.assert_close(seen["out"][0, probe[0] * 16 + probe[1]], expected, atol=1e-5, rtol=1e-4)


def test_entropy_and_distance_recording_memory_is_bounded_at_128x128_tokens():
    """Entropy and mean distance need every query's full row: computed in query chunks of at most ``budget``
    scores, so the largest allocation is a chunk, not the 2 GiB matrix."""
    from torch.profiler import ProfilerActivity, profile

    from resdit.plan import build_plan

    model = tiny_flux()
    grid, T, heads, d = (128, 128), 4, 2, 16
    plan = build_plan(ResDiTConfig(mode="scaled_pe"), model.pos_embed, grid, (64, 64), torch.zeros(T, 3), d, "cpu")
    q, k = torch.randn(1, T + 128 * 128, heads, d), torch.randn(1, T + 128 * 128, heads, d)
    cache = AttentionCache(["layer"])
    budget = 1 << 22  # scores per chunk: 16 MiB in float32
    rec = Recorder(cache, ["entropy", "distance"], None, None, [], budget=budget)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        rec.on_attention("layer", q, k, plan, "global", _ran(plan, q, k))
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest <= 4 * max(budget * 4, q.numel() * 4)  # the full matrix: 2 heads x 16,384^2 x 4 B = 2 GiB
    assert cache.get("layer.entropy", branch="global").shape == (1, heads)
    assert cache.get("layer.distance", branch="global").shape == (1, heads)


def test_the_recorder_reads_only_what_ran_and_refuses_a_silent_emitter():
    """No copy of the branches in the recorder: an attention event without what the branch ran is an error."""
    from resdit.plan import build_plan

    plan = build_plan(ResDiTConfig(mode="scaled_pe"), tiny_flux().pos_embed, (8, 8), (8, 8), torch.zeros(2, 3), 16,
                      "cpu")
    q = torch.randn(1, 2 + 64, 2, 16)
    rec = Recorder(AttentionCache(["layer"]), ["probs"], None, None, [(1, 1)], budget=1 << 20)
    with pytest.raises(RuntimeError, match="did not say what its global branch ran"):
        rec.on_attention("layer", q, q, plan, "global")
