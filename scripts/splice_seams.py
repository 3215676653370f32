"""Seams of the splice, read where each splice leaves them: GWS (the paper's truncated Gaussian) against feathered
weights (``splice="feather"``), with and without a local-only phase.

    python scripts/splice_seams.py      # results/toy-v2/splice-seams.json (about 15 minutes on two cores)

Two seam readers (:func:`analysis.metrics.seam_score`: gradient energy on some lines over that on the others):
``border``, the study's ``seam``, on the window-border lines; ``overlap``, on every line inside the windows'
overlaps (:func:`analysis.metrics.overlap_lines`), where any splice moves from one window to the next.

* ``constructed``: the study's 16 prompts' exact renders at 4x, plus every window's own random colour offset
  (uniform in +-0.2, the same per seed for both splices) spliced with each weighting: a seam made on purpose;
* ``generated``: the study's 32 cases at 4x (16 prompts x 2 seeds, its noise and conditions) under the defaults,
  the window prompt's three local-only steps (``resdit+window_prompt``), the same with feathered weights, and the
  defaults with feathered weights; drawn-object detail, layout, both readers, and paired differences against the
  defaults (cluster bootstrap over prompts, :func:`analysis.stats.cluster_ci`).

    python scripts/splice_seams.py --stored RUN_DIR [RUN_DIR ...]   # results/study-v3/splice-seams-by-scale.json

reads the samples that study runs kept (``images/<condition>@<scale>.npz``) of the four conditions above (and of
``resdit+base_tokens+fft``, the defaults where the study ran them without alignment: 8x) at every
scale they hold, each with its own window alignment, and the exact renders of the same prompts at each size, alone
and with a seam made on purpose (each window's colour offset, as in ``constructed``): both readers per case, and the paired differences (cluster bootstrap over prompts) against the defaults and, for the
feathered window prompt, against GWS, wherever both conditions have the case. Seconds, no generation.
A ``RUN_DIR`` per condition: ``python -m analysis study --out RUN_DIR --conditions COND --scales 2 3 4 --prompts 16
--seeds 2`` and ``... --scales 8 --prompts 16 --seeds 1`` (the study's own cases; about 20 and 30 minutes a
condition on one core).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCALE, AMPLITUDE = 4, 0.2
CONDITIONS = ("resdit+base_tokens+fft+align2", "resdit+window_prompt", "resdit+window_prompt+feather",
              "resdit+feather")
PROMPTS, SEEDS, STEPS = 16, 2, 20
DEFAULTS_8X = "resdit+base_tokens+fft"  # the defaults where minimum-overlap starts are even (8x): not run with align2
KEYS = ("correct", "fragments", "detail", "ground_detail", "border", "overlap")


def readers(image: np.ndarray, base_px: int, align: int = 2, overlap: int = 1) -> dict:
    from analysis.metrics import border_lines, overlap_lines, seam_score
    from resdit.geometry import window_starts

    n, w = image.shape[1] // 2, base_px // 2
    starts = window_starts(n, w, align, overlap)
    on_border, in_overlap = border_lines(starts, w, n, 2), overlap_lines(starts, w, n, 2)
    return {"border": seam_score(image, on_border, on_border), "overlap": seam_score(image, in_overlap, in_overlap)}


def window_offsets(size_px: int, base_px: int, weighting: str, seed: int, overlap: int = 1) -> np.ndarray:
    """``[3, size, size]``: every window's own colour offset, spliced with ``weighting`` (2 px per token; windows on
    even starts overlapping by at least ``overlap`` tokens)."""
    import torch

    from resdit import WindowPartition

    n = size_px // 2
    part = WindowPartition.build((n, n), (base_px // 2,) * 2, weighting=weighting, align=2, min_overlap=overlap)
    values = (torch.rand(part.num_windows, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * AMPLITUDE
    out = torch.zeros(n * n, 3).index_add_(0, part.index.reshape(-1),
                                           (part.weights[..., None] * values[:, None, :]).reshape(-1, 3))
    field = out.reshape(n, n, 3).permute(2, 0, 1).numpy()
    return np.repeat(np.repeat(field, 2, 1), 2, 2)


def generated(cond: str, prompt_indices: list[int] | None = None) -> list[dict]:
    """The study's cases (``PROMPTS`` x ``SEEDS``, or those of ``prompt_indices``) at ``SCALE`` under ``cond``, scored."""
    import torch

    from analysis.conditions import condition_config, condition_local_prompt
    from analysis.scoring import score_case
    from analysis.study import case_noise
    from resdit import generate
    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import canvas_size, evaluation_prompts

    torch.set_num_threads(1)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    base = tuple(pipe.base_size)
    prompts = evaluation_prompts(PROMPTS, seed=0, world=pipe.world)
    h, w = canvas_size(base, SCALE)
    cases = [(p, s) for p in (range(PROMPTS) if prompt_indices is None else prompt_indices) for s in range(SEEDS)]
    texts = [prompts[p] for p, _ in cases]
    noise = torch.stack([case_noise(p, s, h, w) for p, s in cases])
    cfg = condition_config(cond, base)
    images = generate(pipe, texts, cfg, h, w, STEPS, latents=noise,
                      local_prompt=condition_local_prompt(cond, texts, pipe.world)).numpy()
    rows = []
    for (p, s), text, image in zip(cases, texts, images):
        scored = score_case(image, text, base, cfg.spec.windows, world=pipe.world, align=cfg.align,
                            min_overlap=cfg.overlap)
        rows.append({"prompt_index": p, "seed": s, **{k: scored[k] for k in KEYS[:4]}, **readers(image, base[0])})
    return rows


def stored(runs: list[Path]) -> int:
    from analysis.conditions import condition_config
    from analysis.stats import cluster_ci
    from analysis.study import load_images
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance
    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import evaluation_prompts
    from resdit.toy.world import parse_prompt, render

    pipe = load_pipeline()
    base = tuple(pipe.base_size)
    kept = CONDITIONS + (DEFAULTS_8X,)
    readings: dict[tuple[str, float], dict[str, dict]] = {}  # (condition, scale) -> case "prompt|seed" -> readers
    for run in runs:
        for path in sorted((run / "images").glob("*.npz")):
            cond, scale = path.stem.rsplit("@", 1)
            if cond not in kept:
                continue
            align = condition_config(cond, base).align
            for key, image in load_images(run, cond, float(scale)).items():
                case = "|".join(key.split("|")[2:])
                readings.setdefault((cond, float(scale)), {})[case] = readers(image, base[0], align)
    if not readings:
        raise SystemExit(f"no stored images of {', '.join(kept)} under {', '.join(map(str, runs))}")
    scales = sorted({s for _, s in readings})
    prompts = evaluation_prompts(max(int(c.split("|")[0]) for r in readings.values() for c in r) + 1, seed=0,
                                 world=pipe.world)
    entries = []
    for scale in scales:
        size = round(base[0] * scale)
        exact = [render(parse_prompt(p, pipe.world), size, size).image for p in prompts]
        constructed = {"exact": [readers(im, base[0]) for im in exact]}  # can each reader see a seam at this size?
        for weighting in ("gaussian", "feather"):
            constructed[f"exact_with_{weighting}_seams"] = [
                readers(im + window_offsets(size, base[0], weighting, k), base[0]) for k, im in enumerate(exact)]
        entry = {"scale": scale, "conditions": [],
                 "constructed": {name: {k: float(np.mean([r[k] for r in rs])) for k in ("border", "overlap")}
                                 for name, rs in constructed.items()}}
        for name, c in entry["constructed"].items():
            print(f"{scale:g}x {name:>32s}  border {c['border']:.2f}  overlap {c['overlap']:.2f}")
        defaults = next((c for c in (CONDITIONS[0], DEFAULTS_8X) if (c, scale) in readings), CONDITIONS[0])
        entry["defaults"] = defaults
        for cond in kept:
            got = readings.get((cond, scale))
            if not got:
                continue
            cases = sorted(got, key=lambda c: tuple(map(int, c.split("|"))))
            clusters = [int(c.split("|")[0]) for c in cases]
            align = condition_config(cond, base).align
            on_exact = [readers(exact[p], base[0], align) for p in sorted(set(clusters))]
            row = {"condition": cond, "n": len(cases), "align": align,  # the exact renders on the same lines
                   "exact": {k: float(np.mean([r[k] for r in on_exact])) for k in ("border", "overlap")},
                   "cases": {c: got[c] for c in cases}}
            for k in ("border", "overlap"):
                mean, lo, hi = cluster_ci([got[c][k] for c in cases], clusters)
                row[k] = {"mean": mean, "ci95": [lo, hi]}
                for name, ref in (("minus_defaults", defaults), ("minus_gaussian", "resdit+window_prompt")):
                    other = readings.get((ref, scale), {})
                    both = [c for c in cases if c in other]
                    if cond == ref or (name == "minus_gaussian" and cond != "resdit+window_prompt+feather") or not both:
                        continue
                    d, dlo, dhi = cluster_ci([got[c][k] - other[c][k] for c in both],
                                             [int(c.split("|")[0]) for c in both])
                    row[k][name] = {"mean": d, "ci95": [dlo, dhi], "n": len(both)}
            entry["conditions"].append(row)
            print(f"{scale:g}x {cond:>32s}  n={len(cases):3d}  border {row['border']['mean']:.2f}  "
                  f"overlap {row['overlap']['mean']:.2f}  (exact renders {row['exact']['border']:.2f} / "
                  f"{row['exact']['overlap']:.2f})")
        entries.append(entry)
    record = {"provenance": provenance(config={"runs": [str(r) for r in runs], "conditions": list(kept)}),
              "scales": entries}
    with atomic_write(ROOT / "results/study-v3/splice-seams-by-scale.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--stored"]:
        if len(sys.argv) < 3:
            raise SystemExit("usage: python scripts/splice_seams.py --stored RUN_DIR [RUN_DIR ...]")
        return stored([Path(a) for a in sys.argv[2:]])

    from analysis.stats import cluster_ci
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance
    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import canvas_size, evaluation_prompts
    from resdit.toy.world import parse_prompt, render

    pipe = load_pipeline()
    base = tuple(pipe.base_size)
    h, _ = canvas_size(base, SCALE)
    exact = [render(parse_prompt(p, pipe.world), h, h).image
             for p in evaluation_prompts(PROMPTS, seed=0, world=pipe.world)]
    constructed = {"exact": [readers(im, base[0]) for im in exact]}
    for weighting in ("gaussian", "feather"):
        constructed[f"exact_with_{weighting}_seams"] = [readers(im + window_offsets(h, base[0], weighting, k), base[0])
                                                       for k, im in enumerate(exact)]
    constructed = {name: {k: float(np.mean([r[k] for r in rs])) for k in ("border", "overlap")}
                   for name, rs in constructed.items()}
    with ProcessPoolExecutor(2) as pool:
        rows = dict(zip(CONDITIONS, pool.map(generated, CONDITIONS)))
    ref = rows[CONDITIONS[0]]
    clusters = [r["prompt_index"] for r in ref]
    summary = []
    for cond, rs in rows.items():
        entry = {"condition": cond}
        for k in KEYS:
            mean, lo, hi = cluster_ci([r[k] for r in rs], clusters)
            entry[k] = {"mean": mean, "ci95": [lo, hi]}
            if cond != CONDITIONS[0]:
                d, dlo, dhi = cluster_ci([a[k] - b[k] for a, b in zip(rs, ref)], clusters)
                entry[k]["minus_defaults"] = {"mean": d, "ci95": [dlo, dhi]}
        summary.append(entry)
    if "resdit+window_prompt+feather" in rows:  # feathering's own effect under the window prompt
        a, b = rows["resdit+window_prompt+feather"], rows["resdit+window_prompt"]
        entry = next(e for e in summary if e["condition"] == "resdit+window_prompt+feather")
        for k in KEYS:
            d, dlo, dhi = cluster_ci([x[k] - y[k] for x, y in zip(a, b)], clusters)
            entry[k]["minus_gaussian"] = {"mean": d, "ci95": [dlo, dhi]}
    for name, c in constructed.items():
        print(f"{name:>32s}  border {c['border']:.2f}  overlap {c['overlap']:.2f}")
    for e in summary:
        print(f"{e['condition']:>32s}  " + "  ".join(f"{k} {e[k]['mean']:.3f}" for k in KEYS))
    record = {"provenance": provenance(config={"scale": SCALE, "amplitude": AMPLITUDE, "conditions": list(CONDITIONS),
                                               "prompts": PROMPTS, "seeds": SEEDS, "steps": STEPS}),
              "constructed": constructed, "generated": summary, "cases": rows}
    with atomic_write(ROOT / "results/toy-v2/splice-seams.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
