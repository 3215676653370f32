"""A shorter global-only phase on held-out prompts: ``eval-toy`` at 2x, 3x and 4x with 0 (4x: also 2) global-only
steps of 20 against the defaults' 6, paired image by image (the prompts and noise of seed 500, where the defaults read
0.66 of the base size's drawn-object detail at 4x).

    resdit eval-toy --modes resdit --scales 4 --prompts 64 --seed 500 --global-steps 0 --threads 1 \\
        --out results/toy-v2/eval-resdit-detail-4x-global0.json
    resdit eval-toy --modes resdit --scales 4 --prompts 64 --seed 500 --global-steps 2 --threads 1 \\
        --out results/toy-v2/eval-resdit-detail-4x-global2.json
    resdit eval-toy --modes resdit --scales 2 3 --prompts 64 --seed 500 --global-steps 0 --threads 1 \\
        --out results/toy-v2/eval-resdit-detail-2x3x-global0.json
    resdit eval-toy --modes resdit --scales 2 --prompts 64 --seed 500 --threads 1 \\
        --out results/toy-v2/eval-resdit-detail-2x.json
    resdit eval-toy --modes resdit --scales 8 --prompts 16 --seed 500 --global-steps 0 --threads 1 \\
        --out results/toy-v2/eval-resdit-detail-8x-global0.json
    python scripts/heldout_global_phase.py      # results/toy-v2/heldout-global-phase.json

The defaults' other rows are ``eval-resdit-detail-4x.json`` (4x), ``eval-resdit-detail-1x3x.json`` (the base size,
3x) and ``eval-resdit-detail-8x-quarter.json`` (8x on the first 16 prompts, the quarter-window overlap the defaults
run there; its base size is the first 16 of the base size's 64 images, the same prompts and noise).
Per setting: correct, objects per image, drawn-object detail and its ratio to the base size's over the same images;
per shorter phase the paired difference of detail against the defaults over images both drew, with a 95 % BCa
interval from resampling images, and for each ratio a percentile interval from resampling images; the cost
model's FLOP ratios to direct for FLUX.1-dev at 3072², 4096² and 8192².
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "results" / "toy-v2"
FILES = {"defaults": ("eval-resdit-detail-4x.json", "eval-resdit-detail-1x3x.json", "eval-resdit-detail-2x.json",
                      "eval-resdit-detail-8x-quarter.json"),
         "global0": ("eval-resdit-detail-4x-global0.json", "eval-resdit-detail-2x3x-global0.json",
                     "eval-resdit-detail-8x-global0.json"),
         "global2": ("eval-resdit-detail-4x-global2.json",)}
BASE = "eval-resdit-detail-1x3x.json"


def _rows(names) -> dict[float, dict]:
    rows = {}
    for name in names:
        if (RESULTS / name).exists():
            rows.update({r["scale"]: r for r in json.loads((RESULTS / name).read_text())["rows"]})
    return rows


def _values(row: dict) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in row["detail_per_image"]], dtype=float)


def main() -> int:
    from analysis.stats import bootstrap_ci
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    base = _values(_rows([BASE])[1.0])
    runs = {k: _rows(v) for k, v in FILES.items()}
    out = {"provenance": provenance(config={"files": FILES, "base": BASE, "seed": 500}), "scales": []}
    for scale in sorted({s for rows in runs.values() for s in rows if s != 1.0}):
        entry = {"scale": scale, "settings": {}, "pairs": {}}
        for name, rows in runs.items():
            if scale not in rows:
                continue
            row, v = rows[scale], _values(rows[scale])
            if len(v) > len(base):
                raise SystemExit(f"{name} at {scale}x has {len(v)} images, the base size {len(base)}: run the base size on as many")
            base_n = base[:len(v)]  # runs of fewer prompts hold the first of the same prompts and noise
            both = np.isfinite(v) & np.isfinite(base_n)
            idx = np.flatnonzero(both)
            rng = np.random.default_rng(0)  # the same draws for every setting and scale: each interval reproduces alone
            boot = [np.mean(v[s]) / np.mean(base_n[s]) for s in (rng.choice(idx, len(idx)) for _ in range(2000))]
            entry["settings"][name] = {
                "n": row["n"], "correct": row["correct"], "accuracy": row["accuracy"], "ci95_exact": row["ci95_exact"],
                "mean_count": row["mean_count"], "detail": row["detail"], "global_steps": row.get("global_steps", 6),
                "ratio": float(np.mean(v[both]) / np.mean(base_n[both])),
                "ratio_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                "seconds_per_image": row["seconds"] / row["n"]}
            if name != "defaults" and scale in runs["defaults"]:
                a, b = v, _values(runs["defaults"][scale])
                both = np.isfinite(a) & np.isfinite(b)
                d = a[both] - b[both]
                lo, hi = bootstrap_ci(d)
                entry["pairs"][f"{name}_minus_defaults"] = {"mean": float(d.mean()), "ci95": [lo, hi],
                                                            "n": int(both.sum())}
        out["scales"].append(entry)
    from resdit import ResDiTConfig
    from resdit.cost import FLUX_DEV_CONFIG, generation_flops

    out["flux_dev_flops_to_direct"] = []  # the cost model, 35 steps, 512 text tokens, base 1024^2 = 64x64 tokens
    for side in (3072, 4096, 8192):
        grid = (side // 16, side // 16)
        direct = generation_flops(FLUX_DEV_CONFIG, grid, (64, 64), 512, "direct", 35)
        out["flux_dev_flops_to_direct"].append({"side": side, **{
            name: generation_flops(FLUX_DEV_CONFIG, grid, (64, 64), 512, ResDiTConfig(mode="resdit", **kw), 35) / direct
            for name, kw in (("defaults", {}), ("global0", {"global_steps": 0}))}})
    with atomic_write(RESULTS / "heldout-global-phase.json") as f:
        f.write(dumps_strict(out, indent=1) + "\n")
    for entry in out["scales"]:
        for name, st in entry["settings"].items():
            print(f"{entry['scale']}x {name:>9s}  correct {st['correct']}/{st['n']}  objects {st['mean_count']:.2f}  "
                  f"detail {st['detail']:.3f}  ratio {st['ratio']:.3f} [{st['ratio_ci95'][0]:.3f}, "
                  f"{st['ratio_ci95'][1]:.3f}]")
        for name, p in entry["pairs"].items():
            print(f"{entry['scale']}x {name}: {p['mean']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}] "
                  f"over {p['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
