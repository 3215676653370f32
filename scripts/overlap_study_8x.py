"""The windows' least overlap in the study at 8x: ``window_overlap=4`` (11 windows a side instead of 9, overlaps of
4 to 6 tokens instead of 2) with the feathered window prompt and with the defaults, read by both seam readers.

    python -m analysis study --out RUN_A --conditions "resdit+window_prompt+feather@overlap4" --scales 8 --prompts 16 \\
        --seeds 1 --threads 1
    python -m analysis study --out RUN_B --conditions "resdit@overlap4" --scales 8 --prompts 16 --seeds 1 --threads 1
    python scripts/overlap_study_8x.py RUN_A RUN_B      # results/study-v3/overlap4-8x.json (seconds)

For each condition's kept samples (``images/``): the border and overlap readers (``scripts/splice_seams.py``) on the
condition's own lines, paired case by case (cluster bootstrap over prompts) with the stored readings of the 9-window
conditions on theirs (``results/study-v3/splice-seams-by-scale.json``: the defaults at 8x, ``resdit+base_tokens+fft``,
and the feathered window prompt), and the feathered window prompt paired with the defaults on the same 11 windows
(same lines). The feathered window prompt's samples are also checked against the probe that ran
the same layout by patching :func:`resdit.geometry.window_starts` (``results/study-v3/wide-overlap-8x.json``): the
option must give the probe's images, so the probe's like-for-like readings (the defaults' samples on the wide lines, a
seam made there) stand for the option. Layout and detail pair in the study's claims (``analysis/tables.py``).

    python -m analysis study --out RUN_C --conditions resdit+base_tokens+fft --scales 8 --prompts 16 --seeds 1 \
        --threads 1
    python scripts/overlap_study_8x.py RUN_A RUN_B RUN_C

adds ``both_lines``: with the 9-window defaults' samples kept too, every condition and the exact renders read on the
9-window lines and on the 11-window lines, each generated condition paired with the samples not spliced on those lines
(on the 9-window lines the 11-window defaults, on the 11-window lines the 9-window defaults).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SCALE = 8.0
CONDITIONS = ("resdit+window_prompt+feather@overlap4", "resdit@overlap4")
REFERENCES = ("resdit+base_tokens+fft", "resdit+window_prompt+feather")  # the defaults at 8x; 9 windows, feathered
STORED = ROOT / "results/study-v3/splice-seams-by-scale.json"
PROBE = ROOT / "results/study-v3/wide-overlap-8x.json"
KEYS = ("correct", "fragments", "detail", "ground_detail")


def both_lines(nine: dict, kept: dict, base: tuple) -> dict:
    """Like for like: the 9-window defaults' samples, each 11-window condition's and the exact renders, every one read
    on the 9-window lines (overlap 1) and on the 11-window lines (overlap 4); per line set, each group's mean and, for
    the conditions spliced on those lines, the paired difference from the samples that were not (the other layout's
    defaults)."""
    from splice_seams import readers

    from analysis.stats import cluster_ci
    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import evaluation_prompts
    from resdit.toy.world import parse_prompt, render

    world = load_pipeline().world
    size = int(base[0] * SCALE)
    prompts = evaluation_prompts(1 + max(int(c.split("|")[0]) for c in nine), seed=0, world=world)
    groups = {REFERENCES[0]: nine, **kept,
              "exact": {c: render(parse_prompt(prompts[int(c.split("|")[0])], world), size, size).image for c in nine}}
    spliced = {REFERENCES[0]: 1, **{c: 4 for c in kept}, "exact": None}  # each group's windows' least overlap
    out = {}
    for overlap, unspliced in ((1, CONDITIONS[1]), (4, REFERENCES[0])):
        lines = {name: {c: readers(im, base[0], 2, overlap) for c, im in ims.items()} for name, ims in groups.items()}
        entry = {"unspliced_reference": unspliced}
        for name, got in lines.items():
            entry[name] = {}
            for k in ("border", "overlap"):
                entry[name][k] = {"mean": float(np.mean([r[k] for r in got.values()])), "n": len(got)}
                ref = lines[unspliced]
                both = [c for c in got if c in ref]
                if spliced[name] == overlap and name != unspliced and both:  # spliced on these lines
                    d, lo, hi = cluster_ci([got[c][k] - ref[c][k] for c in both], [int(c.split("|")[0]) for c in both])
                    entry[name][k]["minus_unspliced"] = {"mean": d, "ci95": [lo, hi], "n": len(both)}
        out[f"overlap{overlap}_lines"] = entry
        print(f"on the lines of windows overlapping by >= {overlap}: " + ", ".join(
            f"{n} {e['border']['mean']:.2f}/{e['overlap']['mean']:.2f}" for n, e in entry.items() if n != "unspliced_reference"))
    return out


def rerun_difference(runs: list[Path]) -> float:
    """The largest difference of any per-image metric between the 9-window defaults' rows of ``runs`` (rerun for their
    samples) and the same cases' rows in ``results/study-v3`` (a rerun must reproduce them)."""
    def rows(path: Path) -> dict:
        found = {}
        for line in (path.read_text().splitlines() if path.exists() else []):
            r = json.loads(line)
            if r["condition"] == REFERENCES[0] and r["scale"] == SCALE:
                found[r["key"]] = r
        return found

    study = rows(ROOT / "results/study-v3/results.jsonl")
    diffs = [abs(r[k] - study[key][k]) for run in runs for key, r in rows(run / "results.jsonl").items() if key in study
             for k in ("correct", "count", "fragments", "coverage", "detail", "ground_detail", "noise", "seam")
             if np.isfinite(r[k]) and np.isfinite(study[key][k])]
    if not diffs:
        raise SystemExit(f"no rows of {REFERENCES[0]} at 8x in both the runs and results/study-v3")
    return float(max(diffs))


def main(runs: list[Path]) -> int:
    import splice_seams

    from analysis.conditions import condition_config
    from analysis.stats import cluster_ci
    from analysis.study import load_images
    from resdit import window_starts
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance
    from resdit.toy import load_pipeline

    base = tuple(load_pipeline().base_size)
    stored = next(e for e in json.loads(STORED.read_text())["scales"] if e["scale"] == SCALE)
    reference = {c["condition"]: c["cases"] for c in stored["conditions"]}
    probe = {f"{r['prompt_index']}|{r['seed']}": r for r in json.loads(PROBE.read_text())["cases"]}
    record = {"conditions": []}
    kept = {}  # condition -> case -> kept sample
    for cond in CONDITIONS:
        rc = condition_config(cond, base)
        images, rows = {}, {}
        for run in runs:
            images.update({"|".join(k.split("|")[2:]): im for k, im in load_images(run, cond, SCALE).items()})
            path = run / "results.jsonl"
            for line in (path.read_text().splitlines() if path.exists() else []):
                r = json.loads(line)
                if r["condition"] == cond and r["scale"] == SCALE:
                    rows[f"{r['prompt_index']}|{r['seed']}"] = r
        cases = sorted(set(images) & set(rows), key=lambda c: tuple(map(int, c.split("|"))))
        kept[cond] = {c: images[c] for c in cases}
        if not cases:
            raise SystemExit(f"no kept 8x samples of {cond} under {', '.join(map(str, runs))}: run the study for it "
                             "(see the docstring)")
        read = {c: splice_seams.readers(images[c], base[0], rc.align, rc.overlap) for c in cases}
        clusters = [int(c.split("|")[0]) for c in cases]
        entry = {"condition": cond, "align": rc.align, "overlap": rc.overlap, "n": len(cases),
                 "windows": len(window_starts(int(base[0] * SCALE) // 2, base[0] // 2, rc.align, rc.overlap)),
                 "cases": {c: {**{k: rows[c][k] for k in KEYS}, **read[c]} for c in cases}}
        for k in KEYS + ("border", "overlap"):
            values = [entry["cases"][c][k] for c in cases]
            ok = [i for i, v in enumerate(values) if v is not None and np.isfinite(v)]
            mean, lo, hi = cluster_ci([values[i] for i in ok], [clusters[i] for i in ok])
            entry[k] = {"mean": mean, "ci95": [lo, hi], "n": len(ok)}
        for k in ("border", "overlap"):  # each on its own lines, against the 9-window conditions' stored readings
            for ref in REFERENCES:
                both = [c for c in cases if c in reference.get(ref, {})]
                d, lo, hi = cluster_ci([read[c][k] - reference[ref][c][k] for c in both],
                                       [int(c.split("|")[0]) for c in both])
                entry[k][f"minus_{ref}"] = {"mean": d, "ci95": [lo, hi], "n": len(both)}
        if cond == CONDITIONS[1]:  # the two conditions share their windows: read on the same lines
            first = record["conditions"][0]
            both = [c for c in cases if c in first["cases"]]
            for k in ("border", "overlap", "detail", "ground_detail"):
                d, lo, hi = cluster_ci([first["cases"][c][k] - entry["cases"][c][k] for c in both],
                                       [int(c.split("|")[0]) for c in both])
                first[k][f"minus_{cond}"] = {"mean": d, "ci95": [lo, hi], "n": len(both)}
        if cond == CONDITIONS[0]:  # the option against the probe that patched the same layout in
            same = [c for c in cases if c in probe]
            entry["probe"] = {"n": len(same), **{
                f"max_abs_diff_{k}": float(max(abs(entry["cases"][c][k] - probe[c][k]) for c in same))
                for k in ("detail", "ground_detail", "border", "overlap")},
                "same_correct_and_fragments": all(entry["cases"][c][k] == probe[c][k] for c in same
                                                  for k in ("correct", "fragments"))}
        record["conditions"].append(entry)
        print(f"{cond}: n={len(cases)}, {entry['windows']} windows a side, correct {entry['correct']['mean']:.2f}, "
              f"detail {entry['detail']['mean']:.3f}, border {entry['border']['mean']:.2f} "
              f"({entry['border']['minus_' + REFERENCES[0]]['mean']:+.2f} vs the defaults), overlap "
              f"{entry['overlap']['mean']:.2f} ({entry['overlap']['minus_' + REFERENCES[0]]['mean']:+.2f})"
              + (f"; probe: {entry['probe']}" if "probe" in entry else ""))
    nine = {}  # the 9-window defaults' kept samples, where a run holds them: every condition on both layouts' lines
    for run in runs:
        nine.update({"|".join(k.split("|")[2:]): im for k, im in load_images(run, REFERENCES[0], SCALE).items()})
    if nine:
        record["both_lines"] = both_lines(nine, kept, base)
        record["rerun_max_abs_diff"] = rerun_difference(runs)
    record = {"provenance": provenance(config={"runs": [str(r) for r in runs], "scale": SCALE,
                                               "conditions": list(CONDITIONS), "references": list(REFERENCES)}),
              **record}
    with atomic_write(ROOT / "results/study-v3/overlap4-8x.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python scripts/overlap_study_8x.py RUN_DIR [RUN_DIR ...]")
    raise SystemExit(main([Path(a) for a in sys.argv[1:]]))
