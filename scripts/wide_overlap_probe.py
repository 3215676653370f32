"""Probe: does the feathered window prompt's seam at 8x come from its windows' 2-token overlap?

    python scripts/wide_overlap_probe.py      # results/study-v3/wide-overlap-8x.json (about 10 minutes on two cores)

At 8x on the toy (128 tokens a side, windows of 16) minimum-overlap windows overlap by 2 tokens (9 starts at stride
14, :func:`resdit.geometry.window_starts`), so a feathered crossfade is nearly a cut; at 2x-4x, where they overlap
by 4 or more, feathering brings the window prompt's seams to the defaults' level
(``results/study-v3/splice-seams-by-scale.json``). The probe reruns the study's 16 cases at 8x of
``resdit+window_prompt+feather`` with 11 windows a side (starts on even tokens as the condition's own, overlaps of 4-6 tokens): every caller of
``window_starts`` (the partition and both seam readers) gets the wider layout, nothing else changes. Its readers
(each on its own windows' lines) are paired case by case with the stored readings of the study's samples in
``splice-seams-by-scale.json`` (the standard 9 windows, GWS's window prompt and the defaults).
It predates the option ``window_overlap``: ``window_overlap=4`` gives the same starts and the same images
(``scripts/overlap_study_8x.py`` checks it on the study's samples of ``resdit+window_prompt+feather@overlap4``).

    python scripts/wide_overlap_probe.py --reference RUN_DIR [RUN_DIR ...]

adds the like-for-like reading: the kept samples of study runs (``images/``; the defaults at 8x,
``resdit+base_tokens+fft``, and the window prompt with GWS and feathered, 9 windows) and the exact renders, read on
the wide layout's lines, paired with the probe's cases, beside a seam made on purpose on those lines (each wide
window's colour offset, GWS and feathered: the readers' power there). A seam shows as an excess over images that
were not spliced on those lines; each condition on its own lines is what ``splice-seams-by-scale.json`` holds.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SCALE, PROMPTS, WINDOWS, COND = 8, 16, 11, "resdit+window_prompt+feather"
STORED = ROOT / "results/study-v3/splice-seams-by-scale.json"


def _wide(stock):
    def starts(length: int, window: int, align: int = 1) -> list[int]:
        if length != SCALE * window:  # the 8x canvas only; anything else as it was
            return stock(length, window, align)
        last = length - window  # every start but the last on a multiple of align, as window_starts does
        return [align * round(k * last / (WINDOWS - 1) / align) for k in range(WINDOWS - 1)] + [last]
    return starts


def run(prompts: list[int]) -> list[dict]:
    import analysis.scoring
    import resdit.geometry
    import splice_seams

    wide = _wide(resdit.geometry.window_starts)
    resdit.geometry.window_starts = analysis.scoring.window_starts = wide
    splice_seams.SCALE, splice_seams.PROMPTS, splice_seams.SEEDS = SCALE, PROMPTS, 1
    return splice_seams.generated(COND, prompts)


def reference(runs: list[Path]) -> int:
    import json

    import analysis.scoring
    import resdit.geometry
    import splice_seams
    from analysis.stats import cluster_ci
    from analysis.study import load_images
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance
    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import evaluation_prompts
    from resdit.toy.world import parse_prompt, render

    out = ROOT / "results/study-v3/wide-overlap-8x.json"
    record = json.loads(out.read_text())
    probe = {f"{r['prompt_index']}|{r['seed']}": r for r in record["cases"]}
    clusters = [int(c.split("|")[0]) for c in probe]
    resdit.geometry.window_starts = analysis.scoring.window_starts = _wide(resdit.geometry.window_starts)
    pipe = load_pipeline()
    base, size = pipe.base_size[0], pipe.base_size[0] * SCALE
    prompts = evaluation_prompts(PROMPTS, seed=0, world=pipe.world)
    images = {"exact": {f"{p}|0": render(parse_prompt(t, pipe.world), size, size).image for p, t in enumerate(prompts)}}
    for cond in ("resdit+base_tokens+fft", "resdit+window_prompt", COND):
        images[cond] = {}
        for run in runs:
            kept = load_images(run, cond, float(SCALE))
            images[cond].update({"|".join(k.split("|")[2:]): im for k, im in kept.items()})
    missing = [name for name, ims in images.items() if not all(c in ims for c in probe)]
    if missing:
        raise SystemExit(f"no kept 8x samples of every probe case for {', '.join(missing)} under "
                         f"{', '.join(map(str, runs)) or '(no RUN_DIR given)'}: run the study for them (see docstring)")
    # can the readers see a seam on the wide lines? the exact renders with a colour offset per (wide) window, spliced
    made = {f"exact_with_{w}_seams": {c: splice_seams.readers(images["exact"][c] + splice_seams.window_offsets(
        size, base, w, int(c.split("|")[0])), base) for c in probe} for w in ("gaussian", "feather")}
    constructed = {name: {k: float(np.mean([r[k] for r in rs.values()])) for k in ("border", "overlap")}
                   for name, rs in made.items()}
    for name, c in constructed.items():
        print(f"{name:>30s} on the wide lines: border {c['border']:.2f}, overlap {c['overlap']:.2f}")
    same = {}
    for name, ims in images.items():
        readings = {c: splice_seams.readers(ims[c], base) for c in probe}
        same[name] = {"n": len(probe)}
        for k in ("border", "overlap"):
            d, lo, hi = cluster_ci([probe[c][k] - readings[c][k] for c in probe], clusters)
            same[name][k] = {"mean": float(np.mean([readings[c][k] for c in probe])),
                             "probe_minus": {"mean": d, "ci95": [lo, hi]}}
        print(f"{name:>30s} on the wide lines: border {same[name]['border']['mean']:.2f} "
              f"(probe minus {same[name]['border']['probe_minus']['mean']:+.2f}), overlap "
              f"{same[name]['overlap']['mean']:.2f} (probe minus {same[name]['overlap']['probe_minus']['mean']:+.2f})")
    record["same_lines"] = same
    record["same_lines_constructed"] = constructed
    record["same_lines_provenance"] = provenance(config={"runs": [str(r) for r in runs]})
    with atomic_write(out) as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


def main() -> int:
    import json

    if sys.argv[1:2] == ["--reference"]:
        return reference([Path(a) for a in sys.argv[2:]])

    import resdit.geometry
    from analysis.stats import cluster_ci
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    starts = _wide(resdit.geometry.window_starts)(128, 16, 2)  # the condition's alignment
    overlaps = sorted({a + 16 - b for a, b in zip(starts, starts[1:])})
    stored = json.loads(STORED.read_text())
    at8 = next(e for e in stored["scales"] if e["scale"] == SCALE)
    ref = {c["condition"]: c["cases"] for c in at8["conditions"]}
    with ProcessPoolExecutor(2) as pool:  # each process runs half the prompts (the study's noise per case)
        halves = list(pool.map(run, [list(range(0, PROMPTS, 2)), list(range(1, PROMPTS, 2))]))
    rows = sorted((r for h in halves for r in h), key=lambda r: r["prompt_index"])
    summary = {"windows": WINDOWS, "starts": starts, "overlaps": overlaps, "n": len(rows)}
    for k in ("correct", "detail", "border", "overlap"):
        summary[k] = float(np.mean([r[k] for r in rows if r[k] is not None and np.isfinite(r[k])]))
    for k in ("border", "overlap"):
        for name in ("resdit+base_tokens+fft", "resdit+window_prompt", COND):
            other = ref[name]
            pairs = [(r[k], other[f"{r['prompt_index']}|{r['seed']}"][k]) for r in rows]
            d, lo, hi = cluster_ci([a - b for a, b in pairs], [r["prompt_index"] for r in rows])
            summary[f"{k}_minus_{name}"] = {"mean": d, "ci95": [lo, hi], "n": len(pairs)}
    print(json.dumps(summary, indent=1))
    record = {"provenance": provenance(config={"scale": SCALE, "prompts": PROMPTS, "windows": WINDOWS,
                                               "condition": COND}), "summary": summary, "cases": rows}
    with atomic_write(ROOT / "results/study-v3/wide-overlap-8x.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
