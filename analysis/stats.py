"""Statistics of the study: bootstrap intervals of a mean, and paired differences between conditions."""

from __future__ import annotations

import numpy as np

def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean (NaNs dropped)."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values))).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_difference(rows: list[dict], a: str, b: str, metric: str, scale: float, n_boot: int = 2000,
                      seed: int = 0) -> dict | None:
    """Mean of ``metric(a) - metric(b)`` over cases both ran (same prompt and seed), with a 95 %
    bootstrap CI; None if they share no case. Undefined values (``null`` in the results file) are left out."""
    index = {(r["condition"], r["scale"], r["prompt_index"], r["seed"]): float("nan") if r[metric] is None
             else r[metric] for r in rows if metric in r}
    diffs = [index[a, scale, p, s] - index[b, scale, p, s] for (c, sc, p, s) in index
             if c == a and sc == scale and (b, scale, p, s) in index]
    diffs = np.array([d for d in diffs if np.isfinite(d)], dtype=float)
    if len(diffs) == 0:
        return None
    lo, hi = bootstrap_ci(diffs, n_boot, seed)
    return {"mean": float(diffs.mean()), "ci95": [lo, hi], "n": int(len(diffs))}
