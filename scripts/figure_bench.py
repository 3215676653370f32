"""figures/bench.png from a whole-generation benchmark (``resdit bench --generations --out FILE``):

    python scripts/figure_bench.py results/bench/generations-2026-12-08.json figures/bench.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.craft import save_figure  # noqa: E402
from analysis.figures import generations_figure  # noqa: E402


def main(argv: list[str]) -> int:
    source, out = (argv + ["results/bench/generations-2026-12-08.json", "figures/bench.png"][len(argv):])[:2]
    fig = generations_figure(json.loads(Path(source).read_text())["results"])
    save_figure(fig, out, dpi=120)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
