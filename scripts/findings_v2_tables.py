"""The toy study v2's four tables in docs/findings.md (2x and 4x: every condition; the claims; the v2 defaults against
each baseline), every number tagged with the result file it comes from (``tests/test_quotes.py`` checks each tag):

    python scripts/findings_v2_tables.py           # writes results/study-v2/baselines.json and detail-ratios.json,
                                                   # prints the tables
    python scripts/findings_v2_tables.py --write   # ... and puts them in place in docs/findings.md

Sources: ``results/study-v2/summary.json`` (per condition and scale: mean and 95 % bootstrap interval over prompts x
seeds), ``results/study-v2/claims.json`` (``resdit study --summarize``'s paired differences) and
``results/study-v2/baselines.json`` (written here from ``results/study-v2/results.jsonl`` by
:func:`analysis.tables.write_baselines`: ``resdit+full_tokens``, the defaults of that study, minus each baseline);
``results/study-v2/detail-ratios.json``, the prose's drawn-object detail over the base size's with its interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY = "results/study-v2"
SUMMARY, CLAIMS, BASELINES_FILE = f"{STUDY}/summary.json", f"{STUDY}/claims.json", f"{STUDY}/baselines.json"
RATIOS = f"{STUDY}/detail-ratios.json"
RATIO_CONDITIONS = ("scaled_pe", "resdit+full_tokens", "resdit_paper", "resdit_fast", "two_stage", "upscale")
CONDITIONS = ("extrapolate", "scaled_pe", "patch_pe", "patch_pe_local", "resdit_paper", "resdit_no_pes",
              "resdit_no_pipe", "resdit_no_psf", "resdit_no_mop_gws", "resdit_mop_only", "ntk", "time_aware", "dype",
              "tiling", "tiling_gaussian", "two_stage", "upscale", "scaled_pe+pa", "resdit_paper+pa",
              "resdit_paper+fuse_to_end", "resdit_paper+fuse_to_end+pa", "scaled_pe+pa@pipeline_shift",
              "resdit_paper+fuse_to_end+pa@pipeline_shift", "resdit+full_tokens", "resdit_fast", "resdit_paper@sigma",
              "resdit_paper+pa@sigma", "resdit+full_tokens@global_16of35", "resdit+full_tokens@global_21of35")
REFERENCE = "resdit+full_tokens"
BASELINES = ("scaled_pe", "ntk", "time_aware", "dype", "tiling", "tiling_gaussian", "two_stage", "upscale",
             "resdit_fast", "resdit_paper")
GROUP_HEAD = ("| condition | n | correct | objects | drawn-object detail | ground detail | noise (1e-4) | seam | "
              "patch-KID | s/image |")
# (the heading of the section the table sits in, the table's first line)
PLACES = {"groups 2": ("## The thesis, both halves, at 2x", GROUP_HEAD),
          "claims": ("## The claims (paired by prompt and seed", "| claim | metric |"),
          "baselines": ("## The v2 defaults against each baseline", f"| {REFERENCE} minus |"),
          "groups 4": ("## 4x", GROUP_HEAD)}


def groups_table(scale: float) -> str:
    """Every condition of ``CONDITIONS`` that ran at ``scale``, one row each, from the summary."""
    groups = {(g["condition"], g["scale"]): g for g in json.loads((ROOT / SUMMARY).read_text())["groups"]}
    lines = [GROUP_HEAD, "|---|---|---|---|---|---|---|---|---|---|"]
    for condition in CONDITIONS:
        g = groups.get((condition, scale))
        if g is None:
            continue

        def tag(path: str) -> str:
            return f"<!-- q:{SUMMARY}#groups[condition={condition},scale={scale:g}].{path} -->"

        def interval(metric: str) -> str:
            m = g[metric]
            if m["mean"] is None:
                return "n/a"
            lo, hi = m["ci95"]
            return (f"{m['mean']:.2f}{tag(metric + '.mean')} [{lo:.2f}{tag(metric + '.ci95[0]')}, "
                    f"{hi:.2f}{tag(metric + '.ci95[1]')}]")

        cells = [condition, f"{g['n']}{tag('n')}", interval("correct"), f"{g['count']['mean']:.2f}{tag('count.mean')}",
                 interval("detail"), interval("ground_detail"),
                 f"{g['noise']['mean'] * 1e4:.1f}{tag('noise.mean*10000')}", f"{g['seam']['mean']:.2f}{tag('seam.mean')}",
                 f"{g['patch_kid']:.3f}{tag('patch_kid')}", f"{g['seconds_per_image']:.1f}{tag('seconds_per_image')}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_ratios(n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Drawn-object detail of a condition at 2x and 4x over the base size's on the same prompts and noise: the ratio
    of the two means over the cases where both drew the object, and its 95 % percentile interval from resampling
    prompts (seeds stay with their prompt)."""
    import numpy as np

    from analysis.tables import load_rows

    rows = load_rows(ROOT / STUDY)
    detail = {(r["condition"], r["scale"], r["prompt_index"], r["seed"]): r["detail"] for r in rows
              if r.get("detail") is not None}
    found = []
    for condition in RATIO_CONDITIONS:
        for scale in (2.0, 4.0):
            pairs = [(p, v, detail[("base", 1.0, p, s)]) for (c, sc, p, s), v in detail.items()
                     if c == condition and sc == scale and ("base", 1.0, p, s) in detail]
            prompts = np.array([p for p, _, _ in pairs])
            a, b = np.array([x for _, x, _ in pairs]), np.array([y for _, _, y in pairs])
            groups = [np.flatnonzero(prompts == q) for q in np.unique(prompts)]
            rng = np.random.default_rng(seed)
            boot = []
            for _ in range(n_boot):
                take = np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
                boot.append(a[take].mean() / b[take].mean())
            lo, hi = np.percentile(boot, [2.5, 97.5])
            found.append({"condition": condition, "scale": scale, "ratio": float(a.mean() / b.mean()),
                          "ci95": [float(lo), float(hi)], "n": len(pairs), "prompts": len(groups)})
    return found


def write_detail_ratios() -> None:
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    record = {"provenance": provenance(config={"study": STUDY, "base": "base at 1x", "n_boot": 2000, "seed": 0}),
              "ratios": detail_ratios()}
    with atomic_write(ROOT / RATIOS) as f:
        f.write(dumps_strict(record, indent=1) + "\n")


def tables() -> dict[str, str]:
    from analysis.tables import baselines_table, claims_table, write_baselines

    rows = write_baselines(ROOT / STUDY, ROOT / BASELINES_FILE, REFERENCE, scales=(2.0, 4.0),
                           metrics=("correct", "detail", "ground_detail"), baselines=BASELINES)
    claims = json.loads((ROOT / CLAIMS).read_text())["claims"]
    return {"groups 2": groups_table(2.0),
            "claims": claims_table(None, scales=(2.0, 4.0), rows=claims, source=CLAIMS).split("\n\n")[0],
            "baselines": baselines_table(None, REFERENCE, (2.0, 4.0), ("correct", "detail", "ground_detail"),
                                         rows=rows, source=BASELINES_FILE),
            "groups 4": groups_table(4.0)}


def put_in_place(text: str, heading: str, head: str, table: str) -> str:
    """``text`` with the table that starts with ``head``, first after ``heading``, replaced by ``table``."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    first = next(i for i in range(start, len(lines)) if lines[i].startswith(head))
    last = next(i for i in range(first, len(lines)) if not lines[i].startswith("|"))
    return "\n".join(lines[:first] + table.split("\n") + lines[last:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="put the tables in place in docs/findings.md")
    args = parser.parse_args(argv)
    made = tables()
    write_detail_ratios()
    if not args.write:
        print("\n\n".join(made.values()))
        return 0
    from resdit.io import atomic_write

    path = ROOT / "docs" / "findings.md"
    text = path.read_text()
    for key, (heading, head) in PLACES.items():
        text = put_in_place(text, heading, head, made[key])
    with atomic_write(path) as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
