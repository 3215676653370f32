import json

import pytest

from analysis.stats import bootstrap_ci
from analysis.study import StudyConfig, run_study, summarize


def test_study_writes_results_and_a_summary_and_resumes(tiny_toy, tmp_path):
    cfg = StudyConfig(out=str(tmp_path), scales=(2.0,), prompts=2, seeds=1, steps=2,
                      conditions=("base", "scaled_pe", "resdit", "two_stage"), model=str(tiny_toy))
    path = run_study(cfg, progress=False)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2 + 3 * 2  # base once at 1x; three conditions at 2x
    assert {r["size"][0] for r in rows if r["condition"] == "resdit"} == {64}
    before = path.stat().st_mtime_ns
    run_study(cfg, progress=False)  # nothing left to do: the file is not rewritten
    assert path.stat().st_mtime_ns == before
    summary = summarize(tmp_path)
    groups = {(g["condition"], g["scale"]): g for g in summary["groups"]}
    assert set(groups) == {("base", 1.0), ("scaled_pe", 2.0), ("resdit", 2.0), ("two_stage", 2.0)}
    g = groups["resdit", 2.0]
    assert g["n"] == 2 and "kid" in g and g["correct"]["ci95"][0] <= g["correct"]["mean"] <= g["correct"]["ci95"][1]


def test_shards_split_the_groups_and_merge(tiny_toy, tmp_path):
    common = dict(out=str(tmp_path), scales=(2.0,), prompts=1, seeds=1, steps=2, conditions=("scaled_pe", "resdit"),
                  model=str(tiny_toy))
    for rank in (0, 1):
        run_study(StudyConfig(**common, shard=(rank, 2)), progress=False)
    assert (tmp_path / "results.0.jsonl").exists() and (tmp_path / "results.1.jsonl").exists()
    summarize(tmp_path)
    rows = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(rows) == 2 and not list(tmp_path.glob("results.*.jsonl"))
    # a rerun's shard replaces the merged row of the same case (results.jsonl sorts after results.1.jsonl)
    rerun = json.loads(rows[0])
    rerun["seconds"] = -1.0
    (tmp_path / "results.1.jsonl").write_text(json.dumps(rerun) + "\n")
    summarize(tmp_path)
    merged = {json.loads(line)["key"]: json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()}
    assert len(merged) == 2 and merged[rerun["key"]]["seconds"] == -1.0


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_n():
    import numpy as np

    rng = np.random.default_rng(0)
    small, large = rng.normal(size=10), rng.normal(size=1000)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3


def test_one_pair_and_floor_cases_never_read_reproduced():
    from analysis.stats import paired_difference, verdict

    one = [dict(condition=c, scale=4.0, prompt_index=0, seed=0, detail=v) for c, v in (("a", 0.3), ("b", 0.2))]
    d = paired_difference(one, "a", "b", "detail", 4.0)
    assert d["ci95"] == [d["mean"], d["mean"]] and verdict(d, +1, "detail").startswith("too few pairs")
    floor = [dict(condition=c, scale=4.0, prompt_index=p, seed=s, correct=0) for c in "ab" for p in range(16)
             for s in range(2)]
    assert verdict(paired_difference(floor, "a", "b", "correct", 4.0), +1, "correct") == "floor (both 0)"
    same = [dict(condition=c, scale=2.0, prompt_index=p, seed=s, detail=0.5 + 0.001 * ((p + s) % 3))
            for c in "ab" for p in range(16) for s in range(2)]
    assert verdict(paired_difference(same, "a", "b", "detail", 2.0), +1, "detail").startswith("equivalent")


def test_cluster_bootstrap_covers_a_clustered_mean_and_the_independent_one_does_not():
    """16 prompts x 2 seeds whose seeds share most of their prompt's value: resampling prompts keeps the nominal
    coverage; treating the 32 samples as independent is overconfident."""
    import numpy as np

    from analysis.stats import bootstrap_ci, cluster_ci

    rng = np.random.default_rng(0)
    prompts = np.repeat(np.arange(16), 2)
    hit_cluster = hit_independent = 0
    trials = 200
    for t in range(trials):
        values = rng.normal(size=16)[prompts] + 0.1 * rng.normal(size=32)  # true mean 0
        _, lo, hi = cluster_ci(values, prompts, n_boot=400, seed=t)
        hit_cluster += lo <= 0 <= hi
        lo_i, hi_i = bootstrap_ci(values, n_boot=400, seed=t)
        hit_independent += lo_i <= 0 <= hi_i
    assert hit_cluster / trials >= 0.88
    assert hit_independent / trials < hit_cluster / trials - 0.05  # the independent interval is too narrow


def test_paired_difference_matches_cases_by_prompt_and_seed():
    from analysis.stats import paired_difference

    rows = [dict(condition=c, scale=2.0, prompt_index=p, seed=0, correct=v)
            for c, vals in (("a", [1, 1, 0, 1]), ("b", [0, 1, 0, 0])) for p, v in enumerate(vals)]
    d = paired_difference(rows, "a", "b", "correct", 2.0)
    assert d["n"] == 4 and d["mean"] == 0.5 and d["ci95"][0] >= 0
    assert paired_difference(rows, "a", "missing", "correct", 2.0) is None


def test_claims_verdicts_follow_the_expected_direction(tmp_path):
    from analysis.tables import claims_table

    rows = []
    for p in range(12):  # resdit has fewer objects (good for a "-1" claim) and more correct (good for "+1")
        rows += [dict(key=f"resdit|{p}", condition="resdit", scale=2.0, prompt_index=p, seed=0, count=1, correct=1),
                 dict(key=f"psf|{p}", condition="resdit_no_psf", scale=2.0, prompt_index=p, seed=0, count=3,
                      correct=1),
                 dict(key=f"pes|{p}", condition="resdit_no_pes", scale=2.0, prompt_index=p, seed=0, count=1,
                      correct=0)]
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    table = claims_table(tmp_path, scales=(2.0,))
    assert "| PSF avoids repetition (full vs w/o PSF: spatial average) | count | -2.00 [-2.00, -2.00], 12/12: " \
           "reproduced" in table
    assert "| PES fixes layout inside ResDiT (full vs w/o PES) | correct | +1.00 [+1.00, +1.00], 12/12: reproduced" \
           in table
    assert "comparisons at 95 % each" in table


def test_baselines_table_pairs_cases_and_reports_seconds(tmp_path):
    from analysis.tables import baselines_table

    rows = []
    for p in range(4):
        rows.append(dict(condition="resdit", scale=2.0, prompt_index=p, seed=0, correct=1.0, detail=0.5, seconds=2.0))
        rows.append(dict(condition="ntk", scale=2.0, prompt_index=p, seed=0, correct=float(p % 2), detail=0.5,
                         seconds=1.0))
        rows.append(dict(condition="dype", scale=2.0, prompt_index=p, seed=0, correct=0.0, detail=None, seconds=1.0))
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    table = baselines_table(tmp_path, scales=(2.0, 4.0), baselines=("ntk", "tiling", "dype"))
    ntk = next(line for line in table.splitlines() if line.startswith("| ntk"))
    assert "+0.50 [" in ntk and "+0.00 [+0.00, +0.00]" in ntk and "2.0 vs 1.0" in ntk
    assert "not run" in next(line for line in table.splitlines() if line.startswith("| tiling"))
    dype = next(line for line in table.splitlines() if line.startswith("| dype")).split(" | ")
    assert dype[2] == "no pair defined" and dype[3] == "not run"  # ran at 2x but drew nothing; not run at 4x


def test_a_tagged_baselines_table_quotes_the_file_it_was_written_to(tmp_path):
    from analysis.quotes import check, tagged
    from analysis.tables import baselines_table, write_baselines

    rows = [dict(condition=c, scale=2.0, prompt_index=p, seed=s, correct=float((p + s) % 2 if c == "ntk" else 1),
                 detail=0.1 * p + (0.05 if c == "resdit_paper" else 0.0),
                 seconds=2.0 if c == "resdit_paper" else 1.0)
            for c in ("resdit_paper", "ntk") for p in range(6) for s in range(2)]
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    written = write_baselines(tmp_path, tmp_path / "baselines.json", "resdit_paper", scales=(2.0,), baselines=("ntk",))
    table = baselines_table(None, "resdit_paper", (2.0,), rows=written, source="baselines.json")
    (tmp_path / "doc.md").write_text(table)
    assert tagged(tmp_path / "doc.md") == 2 * 3 + 2 and check(tmp_path / "doc.md", tmp_path) == []
    (tmp_path / "doc.md").write_text(table.replace("+0.05<!--", "+0.06<!--", 1))  # detail's mean, edited
    assert len(check(tmp_path / "doc.md", tmp_path)) == 1


def test_rescoring_a_stored_study_reproduces_its_results_and_summary(tiny_toy, tmp_path):
    from analysis.study import load_images, rescore

    cfg = StudyConfig(out=str(tmp_path), scales=(2.0,), prompts=2, seeds=1, steps=2,
                      conditions=("scaled_pe", "resdit_no_mop_gws"), model=str(tiny_toy))
    path = run_study(cfg, progress=False)
    first = summarize(tmp_path)
    before = {json.loads(line)["key"]: json.loads(line) for line in path.read_text().splitlines()}
    images = load_images(tmp_path, "scaled_pe", 2.0)
    assert len(images) == 2 and all(im.shape == (3, 64, 64) for im in images.values())
    # scores come from uint8 images on rescoring: equal to those of the float samples up to quantisation
    again = rescore(tmp_path, progress=False)
    after = {json.loads(line)["key"]: json.loads(line) for line in path.read_text().splitlines()}
    assert set(after) == set(before)
    for key, row in after.items():
        assert row["correct"] == before[key]["correct"] and row["count"] == before[key]["count"]
    # a second rescore (same uint8 images) gives the same summary exactly
    assert rescore(tmp_path, progress=False)["groups"] == again["groups"]
    assert [g["condition"] for g in again["groups"]] == [g["condition"] for g in first["groups"]]


def test_seams_are_measured_on_the_conditions_own_window_borders():
    import numpy as np

    from analysis.scoring import score_case, window_borders

    # 4x the 32 px base: a hard grid cuts at 32/64/96 px; minimum-overlap windows elsewhere
    assert window_borders("grid", 128, 32, 2) == [32, 64, 96]
    assert 64 not in window_borders("mop", 128, 32, 2)
    image = np.full((3, 128, 128), 0.3, dtype=np.float32)
    image[:, :, 64:] += 0.2  # a seam on the hard grid's central border only
    image += np.random.default_rng(0).normal(0, 0.01, image.shape).astype(np.float32)
    grid = score_case(image, "a red striped circle at top left", (32, 32), layout="grid")
    mop = score_case(image, "a red striped circle at top left", (32, 32), layout="mop")
    assert grid["seam"] > 10 and mop["seam"] < 2  # measured where the condition's windows meet
    assert grid["seam_mop"] == mop["seam_mop"] == mop["seam"]


def test_paired_differences_leave_out_undefined_values_read_back_as_null():
    from analysis.stats import paired_difference

    rows = [{"condition": c, "scale": 2.0, "prompt_index": p, "seed": 0, "detail": v}
            for c, p, v in (("a", 0, 0.5), ("b", 0, 0.25), ("a", 1, None), ("b", 1, 0.1), ("a", 2, 0.3), ("b", 2, 0.1))]
    d = paired_difference(rows, "a", "b", "detail", 2.0)
    assert d["n"] == 2 and d["mean"] == pytest.approx((0.25 + 0.2) / 2)


def test_every_condition_name_begins_with_the_mode_it_runs():
    from analysis.conditions import CONDITIONS, condition_config

    for name in CONDITIONS:
        mode = condition_config(name, (16, 16)).mode
        head = name.split("@")[0].split("+")[0].split("-")[0]
        assert head == mode or (name == "base" and mode == "direct"), (name, mode)


def test_old_condition_names_are_renamed_by_what_the_rows_ran(tmp_path):
    import numpy as np

    from analysis.conditions import current_name
    from analysis.study import _load, migrate_names

    paper = dict(key="resdit|2|0|0", condition="resdit", scale=2.0, provenance={"config": {"mode": "resdit_paper"}})
    today = dict(key="resdit|2|1|0", condition="resdit", scale=2.0, provenance={"config": {"mode": "resdit"}})
    old_defaults = dict(key="resdit@defaults|4|0|0", condition="resdit@defaults", scale=4.0)
    assert current_name(paper)["condition"] == "resdit_paper" and current_name(paper)["key"] == "resdit_paper|2|0|0"
    assert current_name(today) is today
    assert current_name(old_defaults)["key"] == "resdit+full_tokens|4|0|0"
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in (paper, old_defaults)) + "\n")
    (tmp_path / "features").mkdir()
    np.savez(tmp_path / "features" / "resdit@defaults@4.npz", **{"resdit@defaults|4|0|0|full": np.ones(3)})
    assert migrate_names(tmp_path) == 2 and migrate_names(tmp_path) == 0  # once
    assert set(_load(tmp_path / "results.jsonl")) == {"resdit_paper|2|0|0", "resdit+full_tokens|4|0|0"}
    assert not (tmp_path / "features" / "resdit@defaults@4.npz").exists()
    moved = np.load(tmp_path / "features" / "resdit+full_tokens@4.npz")
    assert list(moved) == ["resdit+full_tokens|4|0|0|full"]


def test_heldout_detail_reads_the_exact_render_as_one_a_flattened_texture_lower_and_nothing_drawn_as_none():
    """eval-toy's detail reader on constructed images: the exact render scores 1, the same object with its texture
    at half contrast about 1/4 (energy), an image without the prompted colour None, left out of the mean."""
    import numpy as np

    from analysis.metrics import truth
    from analysis.scoring import heldout_detail
    from resdit.toy.world import parse_prompt

    prompt = "a red striped circle at center on tiles"
    gt, masks = truth(parse_prompt(prompt, "v2"), 96, 96)
    flat = gt.copy()
    inside = masks[0]
    mean = gt[:, inside].mean(1, keepdims=True)
    flat[:, inside] = mean + 0.5 * (gt[:, inside] - mean)  # the texture's contrast halved
    empty = np.full_like(gt, 0.3)
    out = heldout_detail(np.stack([gt, flat, empty]), [prompt] * 3, (32, 32), "v2")
    exact, halved, nothing = out["detail_per_image"]
    assert exact == pytest.approx(1.0, abs=0.02) and 0.15 < halved < 0.35 and nothing is None  # drawn mask ~ true
    assert out["detail_n"] == 2 and out["detail"] == pytest.approx((exact + halved) / 2)


def test_heldout_reader_counts_a_made_speck_as_a_piece_and_reads_a_flattened_ground_lower():
    """eval-toy's reader beside detail, on constructed images: the exact render is one piece with the ground's
    detail at 1; a blob of the prompted colour added far from the object is a second piece; the ground's waves at
    half contrast read about 1/4 (energy) while the object's pieces stay one."""
    import numpy as np

    from analysis.metrics import truth
    from analysis.scoring import heldout_detail
    from resdit.toy.world import parse_prompt

    prompt = "a red striped circle at top left on waves"
    scene = parse_prompt(prompt, "v2")
    gt, masks = truth(scene, 96, 96)
    speck = gt.copy()
    red = gt[:, masks[0]].mean(1)
    speck[:, 80:86, 80:86] = red[:, None, None]  # a 6 px blob of the object's colour in the far corner
    flat = gt.copy()
    ground = ~masks.any(0)
    level = gt[:, ground].mean(1, keepdims=True)
    flat[:, ground] = level + 0.5 * (gt[:, ground] - level)
    out = heldout_detail(np.stack([gt, speck, flat]), [prompt] * 3, (32, 32), "v2")
    assert out["fragments_per_image"] == [1, 2, 1]
    exact, _, halved = out["ground_detail_per_image"]
    assert exact == pytest.approx(1.0, abs=0.02) and 0.15 < halved < 0.35
    assert out["fragments"] == pytest.approx(4 / 3) and out["ground_detail_n"] == 3


def test_rescoring_reads_the_window_alignment_a_row_ran_with_from_its_provenance():
    """A row made before window_align existed ran the minimum-overlap starts, whatever its mode's default is now;
    a row that records the option ran what it records (resolved by its mode)."""
    from analysis.study import ran_windows

    before = {"condition": "resdit_fast", "provenance": {"config": {"mode": "resdit_fast", "cutoff": 0.2}}}
    after = {"condition": "resdit_fast", "provenance": {"config": {"mode": "resdit_fast", "window_align": None}}}
    pinned = {"condition": "resdit_fast", "provenance": {"config": {"mode": "resdit_fast", "window_align": 1}}}
    wide = {"condition": "resdit", "provenance": {"config": {"mode": "resdit", "window_align": None,
                                                             "window_overlap": 4}}}
    assert (ran_windows(before), ran_windows(after), ran_windows(pinned)) == ((1, 1), (2, 1), (1, 1))
    assert ran_windows(wide) == (2, 4)
    # window_overlap unset: the mode's default of the day. A condition made before mode resdit took a quarter-window
    # overlap spells the minimum overlap it ran; the library's defaults (condition resdit) run the quarter now.
    unset = {"mode": "resdit", "window_align": None, "window_overlap": None}
    old_rows = {"condition": "resdit+window_prompt", "provenance": {"config": unset}}
    defaults = {"condition": "resdit", "provenance": {"config": unset}}
    assert ran_windows(old_rows) == (2, 1) and ran_windows(defaults) == (2, "quarter")
