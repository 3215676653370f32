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


def record_numbers(**numbers) -> None:
    """Record ``numbers`` in the notebook's output under :data:`NUMBERS_MIME` only: readers (tests, the report's
    index) get them from there; the notebook prints what a person reads, once. ``settings={...}``: the values a
    notebook actually runs with where its SMOKE branch changes a parameter (the index shows these)."""
    from IPython.display import display

    from resdit.io import finite_or_none

    from resdit.provenance import provenance

    numbers = {**numbers, "provenance": provenance(argv=numbers.pop("argv", None))}
    clean = json.loads(json.dumps(finite_or_none(numbers), default=float))
    display({NUMBERS_MIME: clean, "text/html": "<!-- resdit numbers -->"}, raw=True)  # nothing shown twice
    # returns nothing: a cell ending in this call shows no Out[] (readers use read_numbers)


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

    from resdit.io import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = (out / "figures") if smoke else NOTEBOOKS_DIR.parent / "figures"
    work = (out / "work").resolve()  # the notebooks' scratch files: under --out, never in notebooks/
    work.mkdir(parents=True, exist_ok=True)
    failures, rows = [], []
    for nb in notebooks():
        if only and not any(key in nb.name for key in only):
            continue
        target = out / nb.name
        try:
            parameters = {"SMOKE": smoke, "FIGURES": str(figures), "WORK": str(work)}
            pm.execute_notebook(str(nb), str(target), parameters=parameters, kernel_name=kernel, progress_bar=False,
                                cwd=str(NOTEBOOKS_DIR), kernel_manager_class="analysis.kernels.IPCKernelManager")
            status = "ok"
        except Exception as err:  # papermill raises PapermillExecutionError with the cell's traceback
            failures.append(nb.name)
            status = f"FAILED: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if target.exists():
            body, _ = HTMLExporter().from_notebook_node(static(nbformat.read(str(target), as_version=4)))
            with atomic_write(out / f"{nb.stem}.html") as f:
                f.write(body)
        rows.append((nb.stem, status))
        print(f"{nb.name}: {status}", flush=True)
    with atomic_write(out / "index.html") as f:
        f.write(index_page(out, rows, smoke))
    print(f"report: {(out / 'index.html').resolve()}", flush=True)
    if failures:
        print(f"notebooks that failed: {', '.join(failures)}", file=sys.stderr)
    return len(failures)


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def static(notebook):
    """The notebook as the static report shows it: live widgets (which need a kernel and the widget manager's
    JavaScript from a CDN) replaced by a note pointing at their precomputed flipbooks; no widget state."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if any(WIDGET_MIME in out.get("data", {}) for out in cell.get("outputs", [])):
            cell.outputs = [{"output_type": "display_data", "metadata": {}, "data": {
                "text/html": "<p><em>The live explorer runs in JupyterLab (<code>make lab</code>); this page shows "
                             "its settings precomputed in the slider figures.</em></p>",
                "text/plain": "(the live explorer: in JupyterLab)"}}]
    return notebook


KEY_FIGURE_TAG = "key-figure"


def key_figure(notebook: dict) -> str | None:
    """The first PNG of the cell tagged ``key-figure`` (else of any cell), base64."""
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in cells if KEY_FIGURE_TAG in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + cells:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                return png if isinstance(png, str) else "".join(png)
    return None


def settings(notebook: dict) -> dict:
    """The parameters a notebook ran with: its parameters cell, with what papermill injected on top."""
    import ast

    values = {}
    for cell in notebook["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    try:
                        values[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
    values.update(notebook.get("metadata", {}).get("papermill", {}).get("parameters", {}))
    return values


def _model_line(values: dict) -> str:
    if values.get("MODEL"):
        return f"model {values['MODEL']}"
    from resdit.loading import peek

    info = peek(None)
    return f"the shipped toy model (toy world {info.world})"


def _numbers_html(numbers: dict, limit: int = 12) -> str:
    import html

    rows = []
    prov = numbers.get("provenance") or {}
    numbers = {k: v for k, v in numbers.items() if k not in ("provenance", "settings")}
    for key, value in list(numbers.items())[:limit]:
        rows.append(f"<tr><td>{html.escape(str(key))}</td><td>{_value_html(value)}</td></tr>")
    made_by = (f"<p><small>made by commit {html.escape(str(prov.get('commit')))}"
               f"{' (uncommitted changes)' if prov.get('dirty') else ''}, model {html.escape(str(prov.get('model_id')))}"
               f", torch {html.escape(str(prov.get('versions', {}).get('torch')))}</small></p>") if prov else ""
    return (f"<table>{''.join(rows)}</table>" if rows else "<p>(no numbers recorded)</p>") + made_by


def _value_html(value, limit: int = 8) -> str:
    """A recorded value as a reader reads it: a dict of records as a table (one row each, a column per field), a
    flat dict as a two-column table, everything else rounded to what it carries (:func:`_short`)."""
    import html

    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        fields = list(dict.fromkeys(f for v in value.values() for f in v))
        head = "".join(f"<th>{html.escape(str(f))}</th>" for f in fields)
        body = "".join(f"<tr><td>{html.escape(str(k))}</td>"
                       + "".join(f"<td>{html.escape(_short(v.get(f, '')))}</td>" for f in fields) + "</tr>"
                       for k, v in list(value.items())[:limit])
        more = f"<tr><td colspan={len(fields) + 1}>... {len(value) - limit} more</td></tr>" if len(value) > limit else ""
        return f"<table><tr><th></th>{head}</tr>{body}{more}</table>"
    if isinstance(value, dict):
        body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_short(v))}</td></tr>"
                       for k, v in list(value.items())[:limit])
        more = f"<tr><td colspan=2>... {len(value) - limit} more</td></tr>" if len(value) > limit else ""
        return f"<table>{body}{more}</table>"
    return html.escape(_short(value))


def _short(value) -> str:
    if value is None:  # a metric undefined for that case (no object drawn, no window border): not a zero
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value[:6]) + (", ...]" if len(value) > 6 else "]")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:4]) + (" ..." if len(value) > 4 else "")
    return str(value)


def index_page(out: Path, rows: list[tuple[str, str]], smoke: bool) -> str:
    """Each notebook's key figure, key numbers and the settings that produced them, with a link."""
    import html

    sections = []
    for name, status in rows:
        path = out / f"{name}.ipynb"
        nb = json.loads(path.read_text()) if path.exists() else {"cells": []}
        png = key_figure(nb)
        values = settings(nb)
        values.update((read_numbers(path) if path.exists() else {}).get("settings", {}))  # what ran
        shown = {k: v for k, v in values.items() if k not in ("FIGURES", "WORK")}
        settings_line = f"{_model_line(values)}; " + ", ".join(f"{k}={v!r}" for k, v in shown.items())
        if values.get("SMOKE"):
            settings_line += " (smoke: as its SMOKE branch set them)"
        settings_line = html.escape(settings_line)
        figure = f'<img src="data:image/png;base64,{png}" style="max-width:900px">' if png else "<p>(no figure)</p>"
        sections.append(f'<section><h2><a href="{name}.html">{html.escape(name)}</a>: {html.escape(status)}</h2>'
                        f"<p><small>{settings_line}</small></p>{figure}"
                        f"<h3>key numbers</h3>{_numbers_html(read_numbers(path) if path.exists() else {})}</section>")
    title = f"resdit report{' (smoke)' if smoke else ''}"
    style = ("body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{padding:1px 8px;vertical-align:top}"
             "td table td,td table th{text-align:right;font-variant-numeric:tabular-nums}"
             "td table td:first-child{text-align:left;white-space:nowrap}")
    return (f"<html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head><body>"
            f"<h1>{title}</h1><p>n/a: a metric undefined for that case (no object of the prompted colour drawn, "
            "no window border to read a seam on), not a zero.</p>"
            + "".join(sections) + "</body></html>")


def main(args) -> int:
    from resdit.io import check_writable

    check_writable(args.out, directory=True)
    return 1 if run_report(args.out, smoke=args.smoke, only=args.only) else 0
