"""How closely a rerun reproduces committed study rows: per metric, the cases that agree exactly and the largest
relative difference over the cases both hold (rows paired by case key; a rerun under another name pairs through
``--rename NEW=OLD``).

    python scripts/compare_study_rows.py RERUN/results.jsonl results/study-v3/results.jsonl --out FILE.json
    # the defaults with even starts at 2x and 4x (their windows are the minimum-overlap ones) against those rows:
    python scripts/compare_study_rows.py results/study-v3/results.jsonl results/study-v3/results.jsonl \
        --conditions resdit+base_tokens+fft+align2 --scales 2 4 \
        --rename resdit+base_tokens+fft+align2=resdit+base_tokens+fft --out results/study-v3/even-starts-2x4x.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METRICS = ("correct", "count", "fragments", "coverage", "centre_error", "detail", "detail_in_place", "noise",
           "ground_detail", "seam", "seam_mop")


def compare(rerun: list[dict], committed: dict[str, dict], rename: dict[str, str]) -> dict:
    out = {"cases": 0, "metrics": {}}
    for m in METRICS:
        exact, worst, both = 0, 0.0, 0
        for r in rerun:
            cond = r["condition"]
            key = rename.get(cond, cond) + r["key"][len(cond):]
            a, b = r.get(m), committed.get(key, {}).get(m)
            if key not in committed or a is None or b is None or (isinstance(a, float) and math.isnan(a)):
                continue
            both += 1
            if a == b:
                exact += 1
            else:
                worst = max(worst, abs(a - b) / max(abs(b), 1e-12))
        out["metrics"][m] = {"pairs": both, "exact": exact, "max_relative_difference": worst}
        out["cases"] = max(out["cases"], both)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("rerun")
    p.add_argument("committed")
    p.add_argument("--rename", action="append", default=[], help="NEW=OLD condition names")
    p.add_argument("--conditions", nargs="+", default=None, help="only the rerun's rows of these conditions")
    p.add_argument("--scales", nargs="+", type=float, default=None, help="only the rerun's rows at these scales")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    rerun = [json.loads(line) for line in Path(args.rerun).read_text().splitlines() if line.strip()]
    rerun = [r for r in rerun if (args.conditions is None or r["condition"] in args.conditions)
             and (args.scales is None or r["scale"] in args.scales)]
    committed = {r["key"]: r for r in (json.loads(line) for line in Path(args.committed).read_text().splitlines()
                                       if line.strip())}
    rename = dict(item.split("=", 1) for item in args.rename)
    result = compare(rerun, committed, rename)
    result["rerun_commands"] = sorted({r["provenance"].get("command", "") for r in rerun if r.get("provenance")})
    result["rerun_commits"] = sorted({r["provenance"].get("commit", "") for r in rerun if r.get("provenance")})
    with atomic_write(args.out) as f:
        f.write(dumps_strict({"provenance": provenance(config=vars(args)), **result}, indent=1) + "\n")
    print(dumps_strict(result["metrics"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
