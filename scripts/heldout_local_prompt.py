"""The local prompt on fresh held-out prompts: ``eval-toy`` at 3x, 4x and 8x with the defaults and with three
local-only steps under each image's window prompt, paired image by image.

    resdit eval-toy --modes resdit --scales 1 3 4 --prompts 64 --seed 700 --local-steps 3 --window-prompts \\
        --threads 1 --out results/toy-v2/eval-heldout700-window-prompt.json
    resdit eval-toy --modes resdit --scales 8 --prompts 32 --seed 700 --local-steps 3 --window-prompts \\
        --threads 1 --out results/toy-v2/eval-heldout700-window-prompt-8x.json
    resdit eval-toy --modes resdit --scales 3 4 --prompts 64 --seed 700 --threads 1 \\
        --out results/toy-v2/eval-heldout700-defaults.json
    resdit eval-toy --modes resdit --scales 8 --prompts 32 --seed 700 --threads 1 \\
        --out results/toy-v2/eval-heldout700-defaults-8x.json
    python scripts/heldout_local_prompt.py      # results/toy-v2/heldout-local-prompt.json

Seed 700: prompts and noise that chose nothing (the local prompt's setting was probed on seed 500's). The 8x runs
take the first 32 of the same prompts and noise (``evaluation_prompts`` slices one fixed order), so their base size
is the first 32 images of the 1x row. Per scale and setting: correct, objects per image, drawn-object detail (the
mean over images that drew the object) and its ratio to the base size's over the same images; per scale the paired
difference window prompt - defaults over images both drew, with a 95 % BCa interval from resampling images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "results" / "toy-v2"
FILES = {"window_prompt": ("eval-heldout700-window-prompt.json", "eval-heldout700-window-prompt-8x.json"),
         "defaults": ("eval-heldout700-defaults.json", "eval-heldout700-defaults-8x.json")}


def _rows(names) -> dict[float, dict]:
    rows = {}
    for name in names:
        path = RESULTS / name
        if path.exists():
            rows.update({r["scale"]: r for r in json.loads(path.read_text())["rows"]})
    return rows


def _values(row: dict, n: int) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in row["detail_per_image"][:n]], dtype=float)


def main() -> int:
    from analysis.stats import bootstrap_ci
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    runs = {setting: _rows(names) for setting, names in FILES.items()}
    base = runs["window_prompt"].get(1.0)
    if base is None:
        raise SystemExit(f"no base-size row: run the first eval-toy command of {__file__}'s docstring")
    out = {"provenance": provenance(config={"files": FILES, "seed": 700}), "base": {}, "scales": []}
    for scale in sorted({s for rows in runs.values() for s in rows if s != 1.0}):
        entry = {"scale": scale}
        for setting, rows in runs.items():
            row = rows.get(scale)
            if row is None:
                continue
            n = row["n"]
            values, base_values = _values(row, n), _values(base, n)
            both = np.isfinite(values) & np.isfinite(base_values)
            entry[setting] = {"n": n, "correct": row["correct"], "accuracy": row["accuracy"],
                              "ci95_exact": row["ci95_exact"], "mean_count": row["mean_count"],
                              "detail": row["detail"], "base_detail": float(np.nanmean(base_values)),
                              "ratio": float(np.nanmean(values) / np.nanmean(base_values)),
                              "ratio_same_images": float(values[both].mean() / base_values[both].mean()),
                              "seconds_per_image": row["seconds"] / n}
            out["base"][str(n)] = float(np.nanmean(base_values))
        if "window_prompt" in entry and "defaults" in entry:
            n = min(entry["window_prompt"]["n"], entry["defaults"]["n"])
            a, b = _values(runs["window_prompt"][scale], n), _values(runs["defaults"][scale], n)
            both = np.isfinite(a) & np.isfinite(b)
            lo, hi = bootstrap_ci(a[both] - b[both])
            entry["window_prompt_minus_defaults"] = {"mean": float((a[both] - b[both]).mean()), "ci95": [lo, hi],
                                                     "n": int(both.sum()),
                                                     "ratio": float(a[both].mean() / b[both].mean())}
        out["scales"].append(entry)
    with atomic_write(RESULTS / "heldout-local-prompt.json") as f:
        f.write(dumps_strict(out, indent=1) + "\n")
    for entry in out["scales"]:
        print(entry["scale"], {k: (v["ratio"], v["correct"], v["mean_count"]) for k, v in entry.items()
                               if isinstance(v, dict) and "ratio" in v and "correct" in v},
              entry.get("window_prompt_minus_defaults"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
