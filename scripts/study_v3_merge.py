"""Fold the rows of study runs made in their own folders (one per concurrent process) into ``results/study-v3``,
then regenerate its summary, claims and the 3x-8x figures.

    python scripts/study_v3_merge.py RUN_DIR [RUN_DIR ...]

Each ``RUN_DIR`` is a ``resdit study --out RUN_DIR ...`` folder of the same model as the study: its
``results.jsonl`` joins as a shard (a case key already present is replaced by the run's row), its features and
images are copied beside the study's, and rows made under the conditions' former names are renamed
(:func:`analysis.study.migrate_names`). Rows of more than one commit are summarized together: the summary's
``sources`` lists each commit with its row count, and every row keeps its own provenance. Then ``resdit study --summarize``'s
:func:`analysis.study.summarize`, the claims table (``results/study-v3/claims.json``, the v2 study's 2x and 4x rows
as extra; the base-token claims and the paper's) and ``scripts/figures_scales.py``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.study import migrate_names, summarize  # noqa: E402
from analysis.tables import CLAIMS, TOKEN_CLAIMS, write_claims  # noqa: E402

STUDY = Path("results") / "study-v3"  # relative to the repository (provenance records it as written)
SCALES = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


def merge(runs: list[Path]) -> None:
    for i, run in enumerate(runs):
        rows = run / "results.jsonl"
        if not rows.exists():
            raise SystemExit(f"{run} has no results.jsonl")
        shutil.copy(rows, STUDY / f"results.{i + 1}.jsonl")
        for sub in ("features", "images"):
            if (run / sub).is_dir():
                (STUDY / sub).mkdir(exist_ok=True)
                for path in (run / sub).iterdir():
                    shutil.copy(path, STUDY / sub / path.name)


def main(argv: list[str]) -> int:
    import os

    runs = [Path(a).resolve() for a in argv]
    os.chdir(ROOT)
    merge(runs)
    migrate_names(STUDY)  # rows and features of runs made under the conditions' former names
    summarize(STUDY, allow_mixed=True)  # the summary lists each source (commit, model) with its rows
    # the base-token branch's claims and the paper's (its ablations and baselines, at 3x and 8x where they ran)
    print(write_claims(STUDY, STUDY / "claims.json", SCALES, TOKEN_CLAIMS + CLAIMS,
                       extra=(Path("results") / "study-v2",)))
    import figures_scales

    return figures_scales.main()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main(sys.argv[1:]))
