"""The study's statistics, matched to how its samples are drawn: P prompts x S seeds, seeds nested in prompts.

* A condition's mean of a metric is the mean over prompts of each prompt's mean over its seeds; its interval
  resamples prompts (a cluster bootstrap), with scipy's BCa (:func:`cluster_ci`).
* A proportion (``correct``) also gets an exact binomial (Clopper-Pearson) interval over samples
  (:func:`proportion_ci`), which treats seeds as independent and is the narrower of the two when they are not.
* A paired difference pairs cases by (prompt, seed), averages the pairs within each prompt and resamples prompts
  (:func:`paired_difference`).
* A verdict (:func:`verdict`) needs at least :data:`MIN_PAIRS` pairs over :data:`MIN_PROMPTS` prompts; floor and
  ceiling cases say so; "equivalent" needs the whole interval inside a margin stated in advance
  (:data:`EQUIVALENCE_MARGINS`, the two one-sided tests at 2.5 % each).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

#: a claim needs at least this many pairs, from at least this many prompts, for any verdict
MIN_PAIRS = 10
MIN_PROMPTS = 5
#: differences within these bounds count as "the same", stated before any comparison was read
EQUIVALENCE_MARGINS = {"correct": 0.10, "detail": 0.05, "ground_detail": 0.05, "count": 0.25, "seam": 0.25,
                       "coverage": 0.05, "fragments": 0.5}
CONFIDENCE = 0.95


def _cluster_means(values: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    keep = np.isfinite(values)
    values, clusters = values[keep], clusters[keep]
    return np.array([values[clusters == c].mean() for c in np.unique(clusters)])


def cluster_ci(values, clusters, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean over clusters of each cluster's mean (NaNs dropped) and its 95 % BCa
    interval from resampling clusters. One cluster or identical cluster means: a zero-width interval."""
    means = _cluster_means(np.asarray(values, dtype=float), np.asarray(clusters))
    if len(means) == 0:
        return float("nan"), float("nan"), float("nan")
    centre = float(means.mean())
    if len(means) == 1 or np.ptp(means) == 0:
        return centre, centre, centre
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa's warning on degenerate resamples: the percentile fallback below
        res = stats.bootstrap((means,), np.mean, confidence_level=CONFIDENCE, n_resamples=n_boot, method="BCa",
                              random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        res = stats.bootstrap((means,), np.mean, confidence_level=CONFIDENCE, n_resamples=n_boot,
                              method="percentile", random_state=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return centre, lo, hi


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % BCa interval of the mean of independent values (NaNs dropped): :func:`cluster_ci` with one value per
    cluster."""
    values = np.asarray(values, dtype=float)
    _, lo, hi = cluster_ci(values, np.arange(len(values)), n_boot, seed)
    return lo, hi


def proportion_ci(successes: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95 % interval of a proportion."""
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def paired_difference(rows: list[dict], a: str, b: str, metric: str, scale: float, n_boot: int = 2000,
                      seed: int = 0) -> dict | None:
    """``metric(a) - metric(b)`` over cases both ran (same prompt and seed): the mean over prompts of each prompt's
    mean pair difference, a 95 % BCa interval from resampling prompts, the pair and prompt counts, and both sides'
    means over the same pairs (for floor and ceiling reads). None if they share no case with the metric defined
    (undefined values, ``null`` in the results file, are left out)."""
    index = {(r["condition"], r["scale"], r["prompt_index"], r["seed"]): float("nan") if r[metric] is None
             else r[metric] for r in rows if metric in r}
    pairs = [(p, index[a, scale, p, s], index[b, scale, p, s]) for (c, sc, p, s) in index
             if c == a and sc == scale and (b, scale, p, s) in index]
    pairs = [(p, x, y) for p, x, y in pairs if np.isfinite(x) and np.isfinite(y)]
    if not pairs:
        return None
    prompts = np.array([p for p, _, _ in pairs])
    xa, xb = np.array([x for _, x, _ in pairs]), np.array([y for _, _, y in pairs])
    mean, lo, hi = cluster_ci(xa - xb, prompts, n_boot, seed)
    return {"mean": mean, "ci95": [lo, hi], "n": len(pairs), "prompts": int(len(np.unique(prompts))),
            "a_mean": float(xa.mean()), "b_mean": float(xb.mean())}


def verdict(d: dict | None, sign: int, metric: str) -> str:
    """What a paired difference says about a claim whose expected direction is ``sign``.

    ``"reproduced"`` / ``"contradicted"``: the interval excludes 0 on that side; ``"equivalent (within ±m)"``: it
    lies inside the metric's stated margin; ``"not separated"`` otherwise. Before any of these: ``"too few pairs"``
    and, for proportions, ``"floor (both 0)"`` / ``"ceiling (both 1)"``, which no interval can separate.
    """
    if d is None:
        return "no pair defined"
    if d["n"] < MIN_PAIRS or d.get("prompts", d["n"]) < MIN_PROMPTS:
        return f"too few pairs ({d['n']} < {MIN_PAIRS} or {d.get('prompts', d['n'])} prompts < {MIN_PROMPTS})"
    if metric == "correct" and d.get("a_mean") == d.get("b_mean") and d.get("a_mean") in (0.0, 1.0):
        return "floor (both 0)" if d["a_mean"] == 0.0 else "ceiling (both 1)"
    lo, hi = d["ci95"]
    ends = (sign * lo, sign * hi)
    if min(ends) > 0:
        return "reproduced"
    if max(ends) < 0:
        return "contradicted"
    margin = EQUIVALENCE_MARGINS.get(metric)
    if margin is not None and -margin < lo and hi < margin:
        return f"equivalent (within ±{margin:g})"
    return "not separated"


def multiplicity_note(k: int) -> str:
    """What a 95 % row means among ``k`` of them."""
    return (f"{k} comparisons at 95 % each, with no correction for multiplicity: if none of the effects were real, "
            f"about {0.025 * k:.1f} of them would still read \"reproduced\" and as many \"contradicted\" by chance "
            f"(each interval excludes 0 on one given side 2.5 % of the time). Read a single row near 0 with that in "
            f"mind; rows far from 0, or repeated at several scales, are not at that risk.")
