"""Notebooks: committed without outputs; the smoke report executes all of them (this is CI's run
of `resdit report --smoke`) and their recorded numbers agree with the study's functions."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from analysis.report import notebooks, read_numbers
from analysis.cli import main

REPORT = Path(__file__).resolve().parent.parent / "out" / "report"


def _staged(nb: Path) -> str:
    """The notebook as git stores it (the index: what a commit records, after the nbstripout filter); the file
    itself outside a git checkout."""
    root = nb.parent.parent
    try:
        return subprocess.run(["git", "show", f":{nb.relative_to(root).as_posix()}"], cwd=root, check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return nb.read_text()


def test_notebooks_are_committed_without_outputs():
    """What git records has no outputs (editing in JupyterLab writes outputs into the working copy; the nbstripout
    filter the set-up installs strips them on the way in)."""
    for nb in notebooks():
        cells = json.loads(_staged(nb))["cells"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in cells if c["cell_type"] == "code"), nb


def test_the_output_filter_keeps_git_status_clean_after_a_notebook_is_run(tmp_path):
    """The repository's .gitattributes and ``nbstripout --install`` (make setup): a notebook saved with outputs and
    an execution count shows no diff, and adding it records nothing new (git's status may list the file as
    touched until it is added: its size changed, its filtered content did not)."""
    import shutil
    import sys

    root = Path(__file__).resolve().parents[1]
    assert "*.ipynb filter=nbstripout" in (root / ".gitattributes").read_text()
    nbstripout = Path(sys.executable).parent / "nbstripout"
    if not nbstripout.exists():
        pytest.skip("nbstripout is installed by the notebooks extra (make setup)")

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "ci@example.org")
    git("config", "user.name", "ci")
    shutil.copy(root / ".gitattributes", tmp_path / ".gitattributes")
    subprocess.run([str(nbstripout), "--install"], cwd=tmp_path, check=True)
    nb = next(iter(notebooks()))
    clean = json.loads(nb.read_text())
    run = json.loads(nb.read_text())
    code = next(c for c in run["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 3
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    (tmp_path / "nb.ipynb").write_text(json.dumps(clean, indent=1) + "\n")
    git("add", ".")
    git("commit", "-qm", "clean")
    (tmp_path / "nb.ipynb").write_text(json.dumps(run, indent=1) + "\n")  # as JupyterLab saves it after a run
    assert git("diff") == ""  # the filtered content is the committed one
    git("add", "nb.ipynb")
    assert git("status", "--porcelain") == ""  # nothing to commit
    stored = json.loads(git("show", ":nb.ipynb"))
    assert not any(c.get("outputs") or c.get("execution_count") for c in stored["cells"] if c["cell_type"] == "code")


def test_the_smoke_report_writes_only_under_its_out_folder(report):
    """Scratch files of the notebooks (the smoke study, caches, images) go to ``--out/work``, not notebooks/."""
    notebooks_dir = next(iter(notebooks())).parent
    assert sorted(p.name for p in notebooks_dir.iterdir() if p.name != ".ipynb_checkpoints") == sorted(
        nb.name for nb in notebooks())
    assert (report / "work" / "smoke_study" / "summary.json").exists()


def test_every_notebook_has_a_parameters_cell_with_smoke():
    for nb in notebooks():
        cells = json.loads(nb.read_text())["cells"]
        params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1 and "SMOKE = False" in "".join(params[0]["source"]), nb


@pytest.fixture(scope="module")
def report():
    code = main(["report", "--smoke", "--out", str(REPORT)])
    assert code == 0, "a notebook failed; see out/report/*.html"
    return REPORT


def test_report_renders_every_notebook_with_images(report):
    for nb in notebooks():
        html = (report / f"{nb.stem}.html").read_text()
        assert "data:image/png" in html, nb.stem
    assert all(name in (report / "index.html").read_text() for name in (nb.stem for nb in notebooks()))


def _figures(html: str) -> int:
    return html.count("data:image/png")


def test_report_shows_without_a_kernel_what_the_widgets_explore(report):
    """Static counterparts of every widget: attention maps per probe and branch (04), the slider grids and
    spectra (02); the index shows one key figure per notebook with its numbers and settings."""
    assert _figures((report / "04_attention_explorer.html").read_text()) >= 4
    assert _figures((report / "02_resdit_generation.html").read_text()) >= 5
    index = (report / "index.html").read_text()
    assert _figures(index) == len(notebooks())
    assert index.count("key numbers") == len(notebooks()) and "shipped toy model" in index


def test_notebook_outputs_carry_no_library_warnings_and_numbers_once(report):
    for nb in notebooks():
        executed = json.loads((report / nb.name).read_text())
        for cell in executed["cells"]:
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
                assert out.get("name") != "stderr", (nb.name, text[:200])
                assert "Warning" not in text and "[transformers]" not in text, (nb.name, text[:200])
                if "application/vnd.resdit.numbers+json" in out.get("data", {}):
                    assert "text/plain" not in out["data"]  # recorded for readers, not printed a second time
        html = (report / f"{nb.stem}.html").read_text()
        assert "[transformers]" not in html and "UserWarning" not in html and "FutureWarning" not in html


def test_intervention_numbers_match_the_study_scores(report):
    from analysis.scoring import score_case

    numbers = read_numbers(report / "01_intervention_study.ipynb")
    images = np.load(REPORT / "work" / "intervention_images.npz")
    assert numbers["scores"], "the toy model's scores were not recorded"
    for name, recorded in numbers["scores"].items():
        label, scale = name.rsplit(" @ ", 1)
        again = score_case(images[f"{label}@{scale.rstrip('x')}"], numbers["prompt"], (32, 32))
        assert again["count"] == recorded["count"] and again["correct"] == recorded["correct"]
        a, b = float(again["detail"]), float("nan") if recorded["detail"] is None else float(recorded["detail"])
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b)


def test_attention_numbers_are_probabilities(report):
    numbers = read_numbers(report / "04_attention_explorer.ipynb")
    np.testing.assert_allclose(numbers["row_sums"], 1.0, atol=1e-5)
    assert len(numbers["entropy_global"]) == 6  # the toy model's 2 dual + 4 single blocks


@pytest.mark.parametrize("name,extra", [("01_intervention_study", {}),
                                        ("02_resdit_generation", {"HEIGHT": 32, "WIDTH": 48}),
                                        ("04_attention_explorer", {"CACHE": "no-such-cache"})])
def test_notebooks_run_on_a_diffusers_flux_checkpoint_by_changing_model(name, extra, tmp_path):
    import papermill as pm
    from tiny_pipelines import tiny_flux_pipeline

    from analysis.report import NOTEBOOKS_DIR

    model_dir = tmp_path / "tiny-flux"
    tiny_flux_pipeline().save_pretrained(model_dir)
    pm.execute_notebook(str(NOTEBOOKS_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"), cwd=str(tmp_path),
                        parameters={"MODEL": str(model_dir), "BASE_SIZE": [16, 16], "SMOKE": True,
                                    "FIGURES": str(tmp_path), **extra}, progress_bar=False)


def test_the_static_report_works_offline_and_reads_as_a_page(report):
    """No widget manager or any other script from the network; every slider section has a precomputed flipbook;
    no cell shows a dict as its Out[]; no markdown table left as raw text; the index states the settings that ran
    (the smoke branch's steps, not the parameters cell's) and shows its key numbers as tables."""
    import re

    from analysis.flipbook import MARKER

    for nb in notebooks():
        page = (report / f"{nb.stem}.html").read_text()
        assert not re.search(r"<script[^>]+src=[\"']https?://[^\"']*(jsdelivr|unpkg|widget)", page), nb.stem
        assert "application/vnd.jupyter.widget-view+json" not in page, nb.stem
        executed = json.loads((report / nb.name).read_text())
        for cell in executed["cells"]:
            for out in cell.get("outputs", []):
                text = "".join(out.get("data", {}).get("text/plain", "")) + "".join(out.get("text", ""))
                assert not (out.get("output_type") == "execute_result" and text.lstrip().startswith("{")), nb.stem
                assert "|---|" not in text, nb.stem  # a table printed as markdown text
    for stem in ("02_resdit_generation", "04_attention_explorer"):
        assert (report / f"{stem}.html").read_text().count(f'class="{MARKER}"') >= (3 if stem.startswith("02") else 1)
    index = (report / "index.html").read_text()
    assert "STEPS=4" in index and "STEPS=20" not in index
    for section in index.split("<h3>key numbers</h3>")[1:]:  # records as tables, never as printed dicts
        numbers = section.split("made by")[0]
        assert "<table>" in numbers and "{" not in numbers and "}" not in numbers, numbers[:300]


def test_report_kernels_talk_over_ipc_so_no_kernel_warns_about_tcp(tmp_path):
    """The stock kernel manager's kernel prints "running over TCP without encryption" to the report's output;
    the report's manager (IPC sockets) does not."""
    import subprocess
    import sys

    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
                     "source": ["print(1)"]}], "metadata": {"kernelspec": {"name": "python3", "display_name": "py"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "in.ipynb").write_text(json.dumps(nb))
    stderr = {}
    for name, manager in (("stock", None), ("report", "analysis.kernels.IPCKernelManager")):
        code = ("import papermill as pm, sys; pm.execute_notebook(sys.argv[1], sys.argv[2], progress_bar=False"
                + (f", kernel_manager_class={manager!r})" if manager else ")"))
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in.ipynb"), str(tmp_path / f"{name}.ipynb")],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
        assert done.returncode == 0, done.stderr[-500:]
        stderr[name] = done.stderr
    assert "without encryption" in stderr["stock"]  # the check sees the warning where it is printed
    assert "without encryption" not in stderr["report"]
    assert not [p.name for p in Path(__file__).resolve().parents[1].glob("kernel-*ipc*")]  # no socket left in cwd
