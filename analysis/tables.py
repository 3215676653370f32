"""Markdown tables of the study: the paper's claims as paired differences, and ResDiT against each baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .conditions import current_name
from .stats import multiplicity_note, paired_difference, verdict

# (claim, condition with the ingredient, condition without it, metric, the direction the paper expects)
CLAIMS = [
    ("PES fixes layout (scaled vs extrapolated PE, global attention)", "scaled_pe", "extrapolate", "correct", +1),
    ("PES fixes layout inside ResDiT (full vs w/o PES)", "resdit_paper", "resdit_no_pes", "correct", +1),
    ("PIPE improves detail (full vs w/o PIPE)", "resdit_paper", "resdit_no_pipe", "detail", +1),
    ("Local attention sharpens detail (ResDiT vs scaled PE)", "resdit_paper", "scaled_pe", "detail", +1),
    ("PSF avoids repetition (full vs w/o PSF: spatial average)", "resdit_paper", "resdit_no_psf", "count", -1),
    ("PSF avoids blur (full vs w/o PSF)", "resdit_paper", "resdit_no_psf", "detail", +1),
    ("MOP+GWS remove seams (full vs hard grid)", "resdit_paper", "resdit_no_mop_gws", "seam", -1),
    ("GWS beyond MOP (full vs uniform splice)", "resdit_paper", "resdit_mop_only", "seam", -1),
    ("ResDiT vs two-stage: layout", "resdit_paper", "two_stage", "correct", +1),
    ("ResDiT vs two-stage: detail", "resdit_paper", "two_stage", "detail", +1),
    ("Fusing to the last step (our fix) vs the paper's schedule: layout", "resdit_paper+fuse_to_end", "resdit_paper", "correct", +1),
    ("Fusing to the last step vs the paper's schedule: seams", "resdit_paper+fuse_to_end", "resdit_paper", "seam", -1),
    ("Proportional attention (scaled PE)", "scaled_pe+pa", "scaled_pe", "correct", +1),
    ("Proportional attention inside ResDiT (the paper's schedule)", "resdit_paper+pa", "resdit_paper", "correct", +1),
    # The phases placed in noise level (phase_by="sigma") against the paper's step fractions.
    ("Phases in noise level vs in steps: layout", "resdit_paper@sigma", "resdit_paper", "correct", +1),
    ("Phases in noise level vs in steps, proportional attention: layout", "resdit_paper+pa@sigma", "resdit_paper+pa", "correct", +1),
    # ResDiT with its v2 defaults (full-size branch, proportional attention, fusion to the last step) against what it
    # replaces.
    ("ResDiT v2 defaults (full-size branch) vs the paper's schedule: layout", "resdit+full_tokens", "resdit_paper", "correct", +1),
    ("ResDiT v2 defaults (full-size branch) vs scaled PE: drawn-object detail", "resdit+full_tokens", "scaled_pe", "detail", +1),
    ("ResDiT v2 defaults (full-size branch) vs scaled PE: ground detail", "resdit+full_tokens", "scaled_pe", "ground_detail", +1),
    ("ResDiT v2 defaults (full-size branch) vs upscale: drawn-object detail", "resdit+full_tokens", "upscale", "detail", +1),
    ("ResDiT v2 defaults (full-size branch) vs two-stage: drawn-object detail", "resdit+full_tokens", "two_stage", "detail", +1),
    ("resdit_fast vs ResDiT v2 defaults: layout (0 = same)", "resdit_fast", "resdit+full_tokens", "correct", +1),
    ("resdit_fast vs ResDiT v2 defaults: detail (0 = same)", "resdit_fast", "resdit+full_tokens", "detail", +1),
]


# The global branch at the training token count (global_tokens="base"), against what it replaces and competes with,
# and one factor at a time against its own settings.
TOKEN_CLAIMS = [
    ("Base-token branch vs the full-size branch (the defaults before): layout", "resdit+base_tokens", "resdit+full_tokens", "correct", +1),
    ("Base-token branch vs the full-size branch (the defaults before): fragments", "resdit+base_tokens", "resdit+full_tokens", "fragments", -1),
    ("Base-token branch vs the full-size branch (the defaults before): drawn-object detail", "resdit+base_tokens", "resdit+full_tokens", "detail",
     +1),
    ("Base-token branch vs two-stage: layout", "resdit+base_tokens", "two_stage", "correct", +1),
    ("Base-token branch vs two-stage: drawn-object detail", "resdit+base_tokens", "two_stage", "detail", +1),
    ("Base-token branch vs upscale: drawn-object detail", "resdit+base_tokens", "upscale", "detail", +1),
    ("Base-token branch vs tiling: layout", "resdit+base_tokens", "tiling", "correct", +1),
    ("Base-token branch vs tiling: drawn-object detail (the limit: same windows)", "resdit+base_tokens", "tiling",
     "detail", +1),
    ("Base-token branch vs scaled PE + proportional attention: layout", "resdit+base_tokens", "scaled_pe+pa",
     "correct", +1),
    ("Base-token branch vs scaled PE + proportional attention: detail", "resdit+base_tokens", "scaled_pe+pa",
     "detail", +1),
    ("Pooled in every phase vs in the fused phase only: layout", "resdit+base_tokens",
     "resdit+base_tokens@fused_only", "correct", +1),
    ("No key bias vs log-count key bias: layout", "resdit+base_tokens", "resdit+base_tokens+key_bias", "correct", +1),
    ("Proportional attention on vs off (base tokens): layout", "resdit+base_tokens", "resdit+base_tokens-pa",
     "correct", +1),
    ("Pooled in every phase vs in the fused phase only: fragments", "resdit+base_tokens",
     "resdit+base_tokens@fused_only", "fragments", -1),
    ("Pooled in every phase vs in the fused phase only: detail", "resdit+base_tokens",
     "resdit+base_tokens@fused_only", "detail", +1),
    ("No key bias vs log-count key bias: fragments", "resdit+base_tokens", "resdit+base_tokens+key_bias",
     "fragments", -1),
    ("Proportional attention on vs off (base tokens): fragments", "resdit+base_tokens", "resdit+base_tokens-pa",
     "fragments", -1),
    ("FFT vs bilinear upsampler: layout", "resdit+base_tokens+fft", "resdit+base_tokens", "correct", +1),
    ("FFT vs bilinear upsampler: fragments", "resdit+base_tokens+fft", "resdit+base_tokens", "fragments", -1),
    ("FFT vs bilinear upsampler: drawn-object detail", "resdit+base_tokens+fft", "resdit+base_tokens", "detail", +1),
    ("Base-token branch vs resdit_fast: layout", "resdit+base_tokens", "resdit_fast", "correct", +1),
    ("Base-token branch vs resdit_fast: fragments", "resdit+base_tokens", "resdit_fast", "fragments", -1),
    # PSF's cutoff lowered to the blocks' Nyquist limit (acts only where the blocks are larger than 5x5: 8x)
    ("Nyquist cutoff vs the cutoff 0.2 (FFT): layout", "resdit+base_tokens+fft+nyquist", "resdit+base_tokens+fft",
     "correct", +1),
    ("Nyquist cutoff vs the cutoff 0.2 (FFT): fragments", "resdit+base_tokens+fft+nyquist", "resdit+base_tokens+fft",
     "fragments", -1),
    ("Nyquist cutoff vs the cutoff 0.2 (FFT): drawn-object detail", "resdit+base_tokens+fft+nyquist",
     "resdit+base_tokens+fft", "detail", +1),
    # the local windows on even starts (window_align=2; changes the windows only where a stride was odd: 3x)
    ("Even window starts vs minimum-overlap starts: drawn-object detail", "resdit+base_tokens+fft+align2",
     "resdit+base_tokens+fft", "detail", +1),
    ("Even window starts vs minimum-overlap starts: ground detail", "resdit+base_tokens+fft+align2",
     "resdit+base_tokens+fft", "ground_detail", +1),
    ("Even window starts vs minimum-overlap starts: layout", "resdit+base_tokens+fft+align2",
     "resdit+base_tokens+fft", "correct", +1),
    ("Even window starts vs minimum-overlap starts: fragments", "resdit+base_tokens+fft+align2",
     "resdit+base_tokens+fft", "fragments", -1),
    ("Even window starts vs minimum-overlap starts: seams", "resdit+base_tokens+fft+align2",
     "resdit+base_tokens+fft", "seam", -1),
    ("The defaults (even starts) vs two-stage: drawn-object detail", "resdit+base_tokens+fft+align2", "two_stage",
     "detail", +1),
    ("The defaults (even starts) vs upscale: drawn-object detail", "resdit+base_tokens+fft+align2", "upscale",
     "detail", +1),
    ("The defaults (even starts) vs tiling: drawn-object detail", "resdit+base_tokens+fft+align2", "tiling",
     "detail", +1),
    ("The defaults (even starts) vs two-stage: layout", "resdit+base_tokens+fft+align2", "two_stage", "correct", +1),
    ("The defaults (even starts) vs tiling: layout", "resdit+base_tokens+fft+align2", "tiling", "correct", +1),
    # where two-stage rarely draws the object (8x) the layout-free reading pairs few cases: the same band where the
    # object belongs (its missing objects count as no texture) and on the ground, paired over every case
    ("Base-token branch (FFT) vs two-stage: detail where the object belongs", "resdit+base_tokens+fft", "two_stage",
     "detail_in_place", +1),
    ("Base-token branch (FFT) vs two-stage: ground detail", "resdit+base_tokens+fft", "two_stage", "ground_detail",
     +1),
    ("Base-token branch (FFT) vs two-stage: drawn-object detail", "resdit+base_tokens+fft", "two_stage", "detail",
     +1),
    # three local-only steps of 20 under each image's window prompt (local_prompt), against the same steps under the
    # call's prompt (the prompt's own effect), the defaults (fusion to the last step) and the baselines
    ("Window prompt vs the call's prompt (3 local-only steps): drawn-object detail", "resdit+window_prompt",
     "resdit+local_steps3", "detail", +1),
    ("Window prompt vs the call's prompt (3 local-only steps): fragments", "resdit+window_prompt",
     "resdit+local_steps3", "fragments", -1),
    ("Window prompt vs the call's prompt (3 local-only steps): seams", "resdit+window_prompt",
     "resdit+local_steps3", "seam", -1),
    ("Window prompt vs the defaults: drawn-object detail", "resdit+window_prompt", "resdit+base_tokens+fft+align2",
     "detail", +1),
    ("Window prompt vs the defaults: layout", "resdit+window_prompt", "resdit+base_tokens+fft+align2", "correct", +1),
    ("Window prompt vs the defaults: fragments", "resdit+window_prompt", "resdit+base_tokens+fft+align2",
     "fragments", -1),
    ("Window prompt vs the defaults: seams", "resdit+window_prompt", "resdit+base_tokens+fft+align2", "seam", -1),
    ("Window prompt vs the defaults (8x: minimum-overlap starts are even): drawn-object detail",
     "resdit+window_prompt", "resdit+base_tokens+fft", "detail", +1),
    ("Window prompt vs two-stage: drawn-object detail", "resdit+window_prompt", "two_stage", "detail", +1),
    ("Window prompt vs upscale: drawn-object detail", "resdit+window_prompt", "upscale", "detail", +1),
    ("Window prompt vs tiling: drawn-object detail", "resdit+window_prompt", "tiling", "detail", +1),
    ("Window prompt vs two-stage: layout", "resdit+window_prompt", "two_stage", "correct", +1),
    ("Window prompt, 1 local-only step vs the defaults: drawn-object detail", "resdit+window_prompt@local_steps1",
     "resdit+base_tokens+fft+align2", "detail", +1),
    ("Window prompt, 1 local-only step vs the defaults: seams", "resdit+window_prompt@local_steps1",
     "resdit+base_tokens+fft+align2", "seam", -1),
    ("Window prompt, 2 local-only steps vs the defaults: drawn-object detail", "resdit+window_prompt@local_steps2",
     "resdit+base_tokens+fft+align2", "detail", +1),
    ("Window prompt, 2 local-only steps vs the defaults: seams", "resdit+window_prompt@local_steps2",
     "resdit+base_tokens+fft+align2", "seam", -1),
    # the splice weights as a factor: feathered (1 inside, a raised-cosine crossfade over each overlap) against GWS's
    # truncated Gaussian, with the window prompt's local-only phase and with the defaults (fusion to the last step)
    ("Window prompt, feathered vs GWS: seams", "resdit+window_prompt+feather", "resdit+window_prompt", "seam", -1),
    ("Window prompt, feathered vs GWS: drawn-object detail", "resdit+window_prompt+feather", "resdit+window_prompt",
     "detail", +1),
    ("Window prompt, feathered vs GWS: ground detail", "resdit+window_prompt+feather", "resdit+window_prompt",
     "ground_detail", +1),
    ("Window prompt, feathered vs the defaults: drawn-object detail", "resdit+window_prompt+feather",
     "resdit+base_tokens+fft+align2", "detail", +1),
    ("Window prompt, feathered vs the defaults: seams", "resdit+window_prompt+feather",
     "resdit+base_tokens+fft+align2", "seam", -1),
    ("Window prompt, feathered vs the defaults: layout", "resdit+window_prompt+feather",
     "resdit+base_tokens+fft+align2", "correct", +1),
    ("Window prompt, feathered vs the defaults (8x: minimum-overlap starts are even): drawn-object detail",
     "resdit+window_prompt+feather", "resdit+base_tokens+fft", "detail", +1),
    ("Window prompt, feathered vs the defaults (8x): seams", "resdit+window_prompt+feather",
     "resdit+base_tokens+fft", "seam", -1),
    ("Window prompt, feathered vs two-stage: drawn-object detail", "resdit+window_prompt+feather", "two_stage",
     "detail", +1),
    ("Window prompt, feathered vs tiling: drawn-object detail", "resdit+window_prompt+feather", "tiling", "detail",
     +1),
    ("Feathered defaults vs the defaults: drawn-object detail", "resdit+feather", "resdit+base_tokens+fft+align2",
     "detail", +1),
    ("Feathered defaults vs the defaults: ground detail", "resdit+feather", "resdit+base_tokens+fft+align2",
     "ground_detail", +1),
    ("Feathered defaults vs the defaults: seams", "resdit+feather", "resdit+base_tokens+fft+align2", "seam", -1),
    ("Feathered defaults vs the defaults (8x): drawn-object detail", "resdit+feather", "resdit+base_tokens+fft",
     "detail", +1),
    ("Feathered defaults vs the defaults (8x): ground detail", "resdit+feather", "resdit+base_tokens+fft",
     "ground_detail", +1),
    # the windows' least overlap (window_overlap=4): at 8x 11 windows a side overlapping by 4-6 tokens instead of 9 by
    # 2 (at 2x-4x the toy's windows overlap by 4 or more already: the same runs). No seam rows: a seam reading is taken
    # on a condition's own window lines, which differ here, so it does not pair across the two layouts; the like-for-
    # like reading (every sample on both layouts' lines) is scripts/overlap_study_8x.py's
    ("Window prompt, feathered, overlap 4 vs 2 tokens (8x): drawn-object detail",
     "resdit+window_prompt+feather@overlap4", "resdit+window_prompt+feather", "detail", +1),
    ("Window prompt, feathered, overlap 4 vs the defaults (8x): drawn-object detail",
     "resdit+window_prompt+feather@overlap4", "resdit+base_tokens+fft", "detail", +1),
    ("Window prompt, feathered, overlap 4 vs the defaults (8x): layout", "resdit+window_prompt+feather@overlap4",
     "resdit+base_tokens+fft", "correct", +1),
    ("Window prompt, feathered, overlap 4 vs the defaults (8x): fragments", "resdit+window_prompt+feather@overlap4",
     "resdit+base_tokens+fft", "fragments", -1),
    ("Window prompt, feathered, overlap 4 vs two-stage (8x): drawn-object detail",
     "resdit+window_prompt+feather@overlap4", "two_stage", "detail", +1),
    ("Window prompt, feathered, overlap 4 vs tiling (8x): drawn-object detail",
     "resdit+window_prompt+feather@overlap4", "tiling", "detail", +1),
    ("The defaults, overlap 4 vs 2 tokens (8x): drawn-object detail", "resdit@overlap4", "resdit+base_tokens+fft",
     "detail", +1),
    ("The defaults, overlap 4 vs 2 tokens (8x): ground detail", "resdit@overlap4", "resdit+base_tokens+fft",
     "ground_detail", +1),
    ("The defaults, overlap 4 vs 2 tokens (8x): fragments", "resdit@overlap4", "resdit+base_tokens+fft",
     "fragments", -1),
    # at 5x-7x minimum-overlap windows on even starts share 2 tokens too: the defaults there (even starts) against
    # the same with an overlap of 4 (a quarter of a window)
    ("The defaults, overlap 4 vs even starts (5x-7x): drawn-object detail", "resdit@overlap4",
     "resdit+base_tokens+fft+align2", "detail", +1),
    ("The defaults, overlap 4 vs even starts (5x-7x): ground detail", "resdit@overlap4",
     "resdit+base_tokens+fft+align2", "ground_detail", +1),
    ("The defaults, overlap 4 vs even starts (5x-7x): fragments", "resdit@overlap4",
     "resdit+base_tokens+fft+align2", "fragments", -1),
    ("The defaults, overlap 4 vs even starts (5x-7x): layout", "resdit@overlap4",
     "resdit+base_tokens+fft+align2", "correct", +1),
    # the defaults at 8x (their windows overlap by a quarter there, the rows of resdit@overlap4) against the baselines
    ("The defaults at 8x (quarter overlap) vs two-stage: layout", "resdit@overlap4", "two_stage", "correct", +1),
    ("The defaults at 8x (quarter overlap) vs two-stage: detail where the object belongs", "resdit@overlap4",
     "two_stage", "detail_in_place", +1),
    ("The defaults at 8x (quarter overlap) vs two-stage: ground detail", "resdit@overlap4", "two_stage",
     "ground_detail", +1),
    ("The defaults at 8x (quarter overlap) vs tiling: layout", "resdit@overlap4", "tiling", "correct", +1),
    ("The defaults at 8x (quarter overlap) vs tiling: drawn-object detail", "resdit@overlap4", "tiling", "detail", +1),
    ("The defaults at 8x (quarter overlap) vs upscale: drawn-object detail", "resdit@overlap4", "upscale", "detail",
     +1),
    # the ground-locked control (5x, 8x): the same least overlap with starts on multiples of 12 tokens, where the toy's
    # grounds repeat; against the even-start overlap it isolates the windows' phase, against the defaults the overlap
    ("Overlap 4, ground-locked starts vs even starts (5x, 8x): ground detail", "resdit+align12@overlap4",
     "resdit@overlap4", "ground_detail", +1),
    ("Overlap 4, ground-locked starts vs even starts (5x, 8x): fragments", "resdit+align12@overlap4",
     "resdit@overlap4", "fragments", -1),
    ("Overlap 4, ground-locked starts vs even starts (5x, 8x): drawn-object detail", "resdit+align12@overlap4",
     "resdit@overlap4", "detail", +1),
    ("Overlap 4, ground-locked starts vs the defaults (5x): ground detail", "resdit+align12@overlap4",
     "resdit+base_tokens+fft+align2", "ground_detail", +1),
    ("Overlap 4, ground-locked starts vs the defaults (5x): fragments", "resdit+align12@overlap4",
     "resdit+base_tokens+fft+align2", "fragments", -1),
    ("Overlap 4, ground-locked starts vs the defaults (8x): ground detail", "resdit+align12@overlap4",
     "resdit+base_tokens+fft", "ground_detail", +1),
    ("Overlap 4, ground-locked starts vs the defaults (8x): fragments", "resdit+align12@overlap4",
     "resdit+base_tokens+fft", "fragments", -1),
    # the global-only phase's length: none of 20 steps against the defaults' 6 (2x-4x: the defaults' rows are
    # resdit+base_tokens+fft+align2's, the same windows; 8x: resdit@overlap4's)
    ("No global-only phase vs the defaults: drawn-object detail", "resdit@global0", "resdit+base_tokens+fft+align2",
     "detail", +1),
    ("No global-only phase vs the defaults: layout", "resdit@global0", "resdit+base_tokens+fft+align2", "correct", +1),
    ("No global-only phase vs the defaults: fragments", "resdit@global0", "resdit+base_tokens+fft+align2",
     "fragments", -1),
    ("No global-only phase vs the defaults: ground detail", "resdit@global0", "resdit+base_tokens+fft+align2",
     "ground_detail", +1),
    ("No global-only phase vs the defaults: seams", "resdit@global0", "resdit+base_tokens+fft+align2", "seam", -1),
    ("No global-only phase vs the defaults (8x): drawn-object detail", "resdit@global0", "resdit@overlap4", "detail",
     +1),
    ("No global-only phase vs the defaults (8x): layout", "resdit@global0", "resdit@overlap4", "correct", +1),
    ("No global-only phase vs the defaults (8x): fragments", "resdit@global0", "resdit@overlap4", "fragments", -1),
    ("No global-only phase vs the defaults (8x): ground detail", "resdit@global0", "resdit@overlap4",
     "ground_detail", +1),
    ("No global-only phase vs the defaults (8x): seams", "resdit@global0", "resdit@overlap4", "seam", -1),
]


def load_rows(*outs: str | Path) -> list[dict]:
    """Every row of one or more study folders (later folders win on the same case key)."""
    rows: dict[str, dict] = {}
    for out in outs:
        for line in (Path(out) / "results.jsonl").read_text().splitlines():
            row = current_name(json.loads(line))
            rows[row.get("key", str(len(rows)))] = row
    return list(rows.values())


def claim_rows(out: str | Path, scales=(2.0, 4.0), claims=None, extra: tuple = ()) -> list[dict]:
    """Every claim at every scale: the paired difference (cluster bootstrap over prompts), its verdict, or why there
    is none. ``extra``: further study folders whose rows pair with ``out``'s (same prompts, seeds and noise)."""
    rows = load_rows(out, *extra)
    found = []
    for claim, a, b, metric, sign in (CLAIMS if claims is None else claims):
        for scale in scales:
            d = paired_difference(rows, a, b, metric, scale)
            entry = {"claim": claim, "a": a, "b": b, "metric": metric, "expected_sign": sign, "scale": scale}
            if d is None:
                entry["verdict"] = _missing(rows, a, b, scale)
            else:
                entry.update(d, verdict=verdict(d, sign, metric))
            found.append(entry)
    return found


def _tagger(source: str | None, selector: str):
    """``tag(path)``: the quote tag of ``source#selector.path`` (``analysis.quotes``), or nothing without a source."""
    return (lambda path: f"<!-- q:{source}#{selector}.{path} -->") if source else (lambda path: "")


def _interval(d: dict, tag, fmt: str = "+.2f") -> str:
    lo, hi = d["ci95"]
    return f"{d['mean']:{fmt}}{tag('mean')} [{lo:{fmt}}{tag('ci95[0]')}, {hi:{fmt}}{tag('ci95[1]')}]"


def claims_table(out: str | Path, scales=(2.0, 4.0), claims=None, extra: tuple = (), rows=None,
                 source: str | None = None) -> str:
    """Markdown rows: each claim's paired difference (cluster bootstrap over prompts) and a verdict per scale,
    with the multiplicity note under the table (``rows``: from :func:`claim_rows`, computed if not given).
    ``source``: the claims file the rows were written to (repository-relative); every number then carries its
    quote tag (``analysis.quotes``)."""
    rows = claim_rows(out, scales, claims, extra) if rows is None else rows
    lines = ["| claim | metric | " + " | ".join(f"{s:g}x: difference [95% CI], pairs/prompts" for s in scales) + " |",
             "|---|---|" + "---|" * len(scales)]
    compared = 0
    for claim in dict.fromkeys(r["claim"] for r in rows):
        cells, metric = [], None
        for scale in scales:
            r = next(x for x in rows if x["claim"] == claim and x["scale"] == scale)
            metric = r["metric"]
            if "mean" not in r:
                cells.append(r["verdict"])
                continue
            compared += 1
            tag = _tagger(source, f"claims[a={r['a']},b={r['b']},metric={metric},scale={scale:g}]")
            cells.append(f"{_interval(r, tag)}, {r['n']}{tag('n')}/{r['prompts']}{tag('prompts')}: {r['verdict']}")
        lines.append(f"| {claim} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{multiplicity_note(compared)}"


def write_claims(out: str | Path, path: str | Path, scales, claims=None, extra: tuple = ()) -> str:
    """Claims as JSON (with provenance: prose quotes it) and as the markdown table it renders."""
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    rows = claim_rows(out, scales, claims, extra)
    table = claims_table(out, scales, claims, extra, rows=rows)
    record = {"provenance": provenance(config={"study": str(out), "extra": [str(e) for e in extra],
                                               "scales": list(scales)}), "claims": rows, "table": table}
    with atomic_write(path) as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return table


def _missing(rows: list[dict], a: str, b: str, scale: float) -> str:
    """Why a paired difference has no value: a condition was not run at this scale, or both ran and no pair has
    the metric defined (e.g. drawn-object detail where one of them drew nothing of the prompted colour)."""
    ran = {(r["condition"], r["scale"]) for r in rows}
    return "no pair defined" if (a, scale) in ran and (b, scale) in ran else "not run"


BASELINES = ("scaled_pe", "ntk", "time_aware", "dype", "tiling", "tiling_gaussian", "two_stage", "upscale")


def baselines_rows(out: str | Path, reference: str = "resdit_paper", scales=(2.0, 4.0), metrics=("correct", "detail"),
                   baselines=BASELINES) -> list[dict]:
    """``reference`` minus each baseline, paired by prompt and seed, per metric and scale (the paired difference of
    :func:`analysis.stats.paired_difference`, or ``verdict``: why there is none), and both conditions' mean
    seconds per image (``metric="seconds"``: ``a_mean`` and ``b_mean``)."""
    rows = load_rows(out)
    seconds = {}
    for r in rows:
        seconds.setdefault((r["condition"], r["scale"]), []).append(r.get("seconds", float("nan")))
    found = []
    for base in baselines:
        for scale in scales:
            for metric in metrics:
                d = paired_difference(rows, reference, base, metric, scale)
                entry = {"a": reference, "b": base, "metric": metric, "scale": scale}
                found.append(entry | ({"verdict": _missing(rows, reference, base, scale)} if d is None else d))
            a, b = seconds.get((reference, scale)), seconds.get((base, scale))
            entry = {"a": reference, "b": base, "metric": "seconds", "scale": scale}
            found.append(entry | ({"verdict": "n/a"} if not a or not b else
                                  {"a_mean": float(np.nanmean(a)), "b_mean": float(np.nanmean(b))}))
    return found


def baselines_table(out: str | Path, reference: str = "resdit_paper", scales=(2.0, 4.0), metrics=("correct", "detail"),
                    baselines=BASELINES, rows=None, source: str | None = None) -> str:
    """Markdown rows: ``reference`` minus each baseline, paired by prompt and seed (mean [95 % CI]) per metric
    and scale, with both conditions' seconds per image (``rows``: from :func:`baselines_rows`, computed if not
    given; ``source``: the file they were written to, to tag every number as :func:`claims_table` does)."""
    rows = baselines_rows(out, reference, scales, metrics, baselines) if rows is None else rows
    by = {(r["b"], r["metric"], r["scale"]): r for r in rows}
    head = [f"{s:g}x {m}" for s in scales for m in metrics] + [f"{s:g}x s/image" for s in scales]
    lines = [f"| {reference} minus | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for base in dict.fromkeys(r["b"] for r in rows):
        cells = []
        for metric, scale in [(m, s) for s in scales for m in metrics] + [("seconds", s) for s in scales]:
            r = by[base, metric, scale]
            tag = _tagger(source, f"rows[b={base},metric={metric},scale={scale:g}]")
            if "verdict" in r:
                cells.append(r["verdict"])
            elif metric == "seconds":
                cells.append(f"{r['a_mean']:.1f}{tag('a_mean')} vs {r['b_mean']:.1f}{tag('b_mean')}")
            else:
                cells.append(_interval(r, tag))
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_baselines(out: str | Path, path: str | Path, reference: str, scales=(2.0, 4.0),
                    metrics=("correct", "detail"), baselines=BASELINES) -> list[dict]:
    """:func:`baselines_rows` as JSON, with provenance and the markdown table they render (as :func:`write_claims`)."""
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    rows = baselines_rows(out, reference, scales, metrics, baselines)
    record = {"provenance": provenance(config={"study": str(out), "reference": reference, "scales": list(scales),
                                               "metrics": list(metrics), "baselines": list(baselines)}),
              "rows": rows, "table": baselines_table(out, reference, scales, metrics, baselines, rows=rows)}
    with atomic_write(path) as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return rows
