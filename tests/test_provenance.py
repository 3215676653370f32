"""Every result file says what made it: commit, model checksum, command, config, seeds, versions, machine."""

import hashlib
import json
import subprocess

import pytest
import torch

from analysis.study import MixedStudyError, StudyConfig, run_study, summarize
from resdit.provenance import REPO, provenance


def _check(prov: dict, model_dir):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert prov["commit"] == (head or None)
    assert isinstance(prov["dirty"], bool) or prov["commit"] is None
    sha = hashlib.sha256((model_dir / "transformer.safetensors").read_bytes()).hexdigest()
    assert prov["weights_sha256"]["transformer.safetensors"] == sha
    assert prov["versions"]["torch"] == torch.__version__
    assert prov["machine"]["torch_threads"] >= 1 and prov["command"]
    assert prov["machine"]["cpu"] and prov["machine"]["cpu_capability"]  # a timing names the processor it ran on
    load = prov["machine"]["load_average"]  # and what else ran beside it
    assert len(load) == 3 and all(x >= 0 for x in load)


def test_provenance_names_the_commit_the_weights_and_the_versions(tiny_toy):
    from resdit import ResDiTConfig

    prov = provenance(config=ResDiTConfig(mode="resdit", base_size=(32, 32)), model=tiny_toy, seeds=[0, 1],
                      argv=["resdit", "study", "--out", "x"])
    _check(prov, tiny_toy)
    assert prov["config"]["mode"] == "resdit" and prov["config"]["base_size"] == [32, 32]
    assert prov["command"] == "resdit study --out x" and prov["seeds"] == [0, 1]
    json.dumps(prov, allow_nan=False)  # strict JSON


def test_study_rows_and_summary_carry_provenance(tiny_toy, tmp_path):
    cfg = StudyConfig(out=str(tmp_path), scales=(2.0,), prompts=1, seeds=1, steps=2, conditions=("resdit_paper",),
                      model=str(tiny_toy))
    path = run_study(cfg, progress=False)
    row = json.loads(path.read_text().splitlines()[0])
    _check(row["provenance"], tiny_toy)
    assert row["provenance"]["config"]["mode"] == "resdit_paper"  # the condition resolved to its mode
    assert row["provenance"]["study"]["conditions"] == ["resdit_paper"] and row["provenance"]["study"]["steps"] == 2
    summary = summarize(tmp_path)
    assert [s["rows"] for s in summary["sources"]] == [1] and summary["provenance"]["commit"] == row["provenance"][
        "commit"]


def test_summarize_refuses_rows_of_two_commits_unless_told(tiny_toy, tmp_path):
    cfg = StudyConfig(out=str(tmp_path), scales=(2.0,), prompts=2, seeds=1, steps=2, conditions=("resdit_paper",),
                      model=str(tiny_toy))
    path = run_study(cfg, progress=False)
    lines = path.read_text().splitlines()
    other = json.loads(lines[1])
    other["provenance"]["commit"] = "0" * 40
    path.write_text("\n".join([lines[0], json.dumps(other)]) + "\n")
    with pytest.raises(MixedStudyError, match="2 sources"):
        summarize(tmp_path)
    summary = summarize(tmp_path, allow_mixed=True)
    assert sorted(s["commit"] for s in summary["sources"])[0] == "0" * 40 and len(summary["sources"]) == 2


def test_eval_toy_json_carries_provenance(tiny_toy, tmp_path):
    from resdit.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval-toy", "--model", str(tiny_toy), "--scales", "1", "--modes", "direct", "--prompts", "1",
                 "--steps", "1", "--threads", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    _check(record["provenance"], tiny_toy)
    assert record["rows"][0]["mode"] == "direct"
    assert record["provenance"]["config"]["modes"] == ["direct"]
    # the installed detail reader ran on the same images: one value per image, the mean over those that drew one
    row = record["rows"][0]
    assert row["readers"] == ["detail"] and len(row["detail_per_image"]) == 1
    drawn = [v for v in row["detail_per_image"] if v is not None]
    assert row["detail_n"] == len(drawn) and (row["detail"] is None if not drawn else row["detail"] == drawn[0])


def test_rerunning_a_rows_recorded_command_reproduces_the_summary(tiny_toy, tmp_path):
    import shlex

    from resdit.cli import main

    first = tmp_path / "first"
    assert main(["study", "--smoke", "--out", str(first), "--model", str(tiny_toy), "--threads", "1",
                 "--conditions", "base", "scaled_pe"]) == 0
    row = json.loads((first / "results.jsonl").read_text().splitlines()[0])
    argv = shlex.split(row["provenance"]["command"])[1:]
    again = tmp_path / "again"
    argv[argv.index("--out") + 1] = str(again)
    assert main(argv) == 0
    a, b = (json.loads((d / "summary.json").read_text())["groups"] for d in (first, again))
    drop = {"seconds_per_image"}
    assert [{k: v for k, v in g.items() if k not in drop} for g in a] == [
        {k: v for k, v in g.items() if k not in drop} for g in b]


def test_committed_result_files_are_strict_json():
    """No bare NaN or Infinity in any committed result (strict JSON readers refuse them)."""
    def strict(text):
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))

    for path in sorted(REPO.glob("results/**/*.json")) + sorted(REPO.glob("results/**/*.jsonl")):
        text = path.read_text()
        for line in (text.splitlines() if path.suffix == ".jsonl" else [text]):
            if line.strip():
                strict(line)


def test_dilution_and_bench_files_carry_provenance(tiny_toy, tmp_path, monkeypatch):
    import argparse

    from analysis.dilution import main as dilution_main
    from resdit import bench

    out = tmp_path / "dilution.json"
    assert dilution_main(["--model", str(tiny_toy), "--scales", "1", "2", "--prompts", "1", "--steps", "2",
                          "--record-steps", "0", "--threads", "1", "--full-up-to", "2", "--out", str(out)]) == 0
    _check(json.loads(out.read_text())["provenance"], tiny_toy)

    from resdit.toy import load_pipeline

    monkeypatch.setattr("resdit.toy.load_pipeline", lambda *a, **k: load_pipeline(tiny_toy))
    monkeypatch.setattr(bench, "GENERATION_CASES", {"direct": dict(mode="direct"), "two_stage": dict(mode="two_stage")})
    path = tmp_path / "generations.json"
    args = argparse.Namespace(scales=[2.0], steps=1, repeats=1, threads=1, json=False, out=str(path), config="toy",
                              generations=True)
    assert bench.main(args) == 0
    record = json.loads(path.read_text())
    assert record["provenance"]["config"]["scales"] == [2.0] and {r["mode"] for r in record["results"]} == {
        "direct", "two_stage"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert record["provenance"]["commit"] == (head or None)
