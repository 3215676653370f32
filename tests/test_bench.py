"""The benchmark's pieces that can be checked without timing anything."""

import torch

from resdit.bench import FLUX_DEV_CONFIG, _inputs, build_model


def test_flux_dev_config_is_the_12b_transformer():
    model, base, text = build_model("flux-dev", "meta")  # no memory: parameters on the meta device
    assert sum(p.numel() for p in model.parameters()) == 11_901_408_320
    assert base == (64, 64) and text == 512  # 1024^2 px and T5's 512 tokens


def test_inputs_carry_guidance_only_for_guidance_distilled_models():
    toy = dict(in_channels=12, joint_attention_dim=64, pooled_projection_dim=64)
    assert _inputs(toy, (4, 4), "cpu")["guidance"] is None
    dev = _inputs(FLUX_DEV_CONFIG, (2, 3), "cpu", text_tokens=7, dtype=torch.bfloat16)
    assert dev["guidance"].dtype == torch.bfloat16 and dev["hidden_states"].shape == (1, 6, 64)
    assert dev["txt_ids"].shape == (7, 3) and dev["img_ids"].dtype == torch.float32


def test_bench_reports_fast_resdit_per_phase_and_as_a_generation_with_predictions():
    from conftest import tiny_flux

    from resdit.bench import bench

    rows = bench(tiny_flux(), (4, 4), scales=(2,), steps=7, repeats=1, memory=False, progress=False, text_tokens=3)
    kinds = {(r["mode"], r["phase"]) for r in rows}
    assert {("resdit_fast", "fused"), ("resdit_fast", "generation"), ("resdit", "generation")} <= kinds
    fast = next(r for r in rows if r["mode"] == "resdit_fast" and r["phase"] == "fused")
    full = next(r for r in rows if r["mode"] == "resdit" and r["phase"] == "fused")
    assert fast["predicted_ratio"] < full["predicted_ratio"]  # the FLOP model sees the pooled global branch
    assert all(r["predicted_ratio_time"] > 0 and r["seconds"] > 0 for r in rows)


def test_compose_builds_generations_along_the_schedule():
    from resdit.bench import compose

    step = {("direct", "all"): 1.0, ("resdit", "global"): 1.0, ("resdit", "fused"): 2.0, ("resdit", "local"): 0.5,
            ("resdit_fast", "fused"): 0.25, ("scaled_pe", "all"): 1.0}
    whole = compose(step, base_step=0.1, steps=35, strength=0.6)
    # resdit's default schedule: 10 global steps of 35, the other 25 fused (no local-only phase)
    assert whole["direct"] == 35 and whole["resdit"] == 10 * 1.0 + 25 * 2.0
    assert whole["resdit_fast"] == 10 * 1.0 + 25 * 0.25
    assert whole["two_stage"] == 35 * 0.1 + 21 * 1.0


def test_whole_generations_are_timed_end_to_end_with_ratios_and_predictions():
    from resdit.bench import bench_generations
    from resdit.toy import load_pipeline

    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    cases = {"direct": dict(mode="direct"), "resdit+base_tokens": dict(mode="resdit", global_tokens="base"),
             "two_stage": dict(mode="two_stage")}
    rows = bench_generations(pipe, scales=(2,), steps=2, cases=cases, progress=False)
    by = {r["mode"]: r for r in rows}
    assert set(by) == set(cases) and by["direct"]["ratio_to_direct"] == 1.0
    assert by["two_stage"]["ratio_to_two_stage"] == 1.0 and all(r["seconds"] > 0 for r in rows)
    assert all(r["seconds_each"] == [r["seconds"]] for r in rows)  # one repeat: its time is the median
    assert by["resdit+base_tokens"]["predicted_ratio"] != by["direct"]["predicted_ratio"]


def test_bench_cases_times_only_the_chosen_cases(tmp_path, monkeypatch):
    import argparse
    import json

    from resdit import bench

    timed = []
    monkeypatch.setattr(bench, "bench_generations",
                        lambda pipe, scales, steps, repeats, cases=None, progress=True: timed.append(cases) or [])
    monkeypatch.setattr("resdit.toy.load_pipeline", lambda *a, **k: type("P", (), {
        "set_progress_bar_config": lambda self, **k: None})())
    args = argparse.Namespace(scales=[2.0], steps=1, repeats=1, threads=1, json=False, out=str(tmp_path / "g.json"),
                              config="toy", generations=True, cases=["two_stage", "direct"])
    assert bench.main(args) == 0
    assert list(timed[0]) == ["direct", "two_stage"]  # in the bench's own order, interleaved as always
    assert json.loads((tmp_path / "g.json").read_text())["provenance"]["config"]["cases"] == ["two_stage", "direct"]
