"""``resdit report``: execute every notebook headless (papermill) and write an HTML report.

Notebooks record their key numbers with :func:`record_numbers` (a JSON output under a mime
type of our own); :func:`read_numbers` reads them back from an executed notebook, so tests can
check them against the study's functions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NUMBERS_MIME = "application/vnd.resdit.numbers+json"
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def record_numbers(**numbers) -> dict:
    """Show ``numbers`` in the notebook's output under :data:`NUMBERS_MIME` (and as text)."""
    from IPython.display import display

    clean = json.loads(json.dumps(numbers, default=float))
    display({NUMBERS_MIME: clean, "text/plain": json.dumps(clean, indent=1)}, raw=True)
    return clean


def read_numbers(notebook: str | Path) -> dict:
    """Merge every :func:`record_numbers` output of an executed notebook."""
    nb = json.loads(Path(notebook).read_text())
    numbers = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if NUMBERS_MIME in data:
                numbers.update(data[NUMBERS_MIME])
    return numbers


def notebooks(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(directory.glob("[0-9][0-9]_*.ipynb"))


def run_report(out: str | Path, smoke: bool = False, only: list[str] | None = None, kernel: str = "python3") -> int:
    """Execute the notebooks into ``out`` with HTML copies and an index; return the failures' count."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = (out / "figures") if smoke else NOTEBOOKS_DIR.parent / "figures"
    failures, rows = [], []
    for nb in notebooks():
        if only and not any(key in nb.name for key in only):
            continue
        target = out / nb.name
        try:
            pm.execute_notebook(str(nb), str(target), parameters={"SMOKE": smoke, "FIGURES": str(figures)},
                                kernel_name=kernel, progress_bar=False, cwd=str(NOTEBOOKS_DIR))
            status = "ok"
        except Exception as err:  # papermill raises PapermillExecutionError with the cell's traceback
            failures.append(nb.name)
            status = f"FAILED: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if target.exists():
            body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(target), as_version=4))
            (out / f"{nb.stem}.html").write_text(body)
        rows.append((nb.stem, status))
        print(f"{nb.name}: {status}", flush=True)
    links = "\n".join(f'<li><a href="{name}.html">{name}</a>: {status}</li>' for name, status in rows)
    (out / "index.html").write_text(f"<html><body><h1>resdit report{' (smoke)' if smoke else ''}</h1>"
                                    f"<ul>{links}</ul></body></html>")
    if failures:
        print(f"notebooks that failed: {', '.join(failures)}", file=sys.stderr)
    return len(failures)


def main(args) -> int:
    return 1 if run_report(args.out, smoke=args.smoke, only=args.only) else 0
