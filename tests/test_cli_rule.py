"""One rule for every subcommand: a bad option, path or model folder is one ``error:`` line and exit status 2 before
any model is loaded; an interrupt is one line and exit 130; no file is left behind."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from resdit.cli import main
from resdit.toy.model import WEIGHTS_DIR

PROMPT = "a red striped circle at top left"


def _gen(out, *extra):
    return ["generate", "--prompt", PROMPT, "--height", "64", "--width", "64", "--steps", "2", "--out", str(out),
            *extra]


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if any model is loaded."""
    import resdit.loading
    import resdit.toy

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the error")

    monkeypatch.setattr(resdit.loading, "load_any_pipeline", refuse)
    monkeypatch.setattr(resdit.toy, "load_pipeline", refuse)
    import resdit.cli

    monkeypatch.setattr(resdit.cli, "load_any_pipeline", refuse)


def _broken_copies(tmp_path):
    """Toy weights folders each broken in one way, and the file the error must name."""
    cases = {}
    for name, damage in [("truncated", "transformer.safetensors"), ("empty", "text_encoder.safetensors"),
                         ("no_encoder", "text_encoder.safetensors"), ("no_config", "config.json"),
                         ("bad_config", "config.json")]:
        folder = tmp_path / name
        shutil.copytree(WEIGHTS_DIR, folder)
        target = folder / damage
        if name == "truncated":
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
        elif name == "empty":
            target.write_bytes(b"")
        elif name.startswith("no_"):
            target.unlink()
        else:
            target.write_text("{not json")
        cases[name] = (folder, damage)
    return cases


def test_broken_weights_folders_get_one_line_naming_the_file(tmp_path, capsys, no_loading):
    for name, (folder, damaged) in _broken_copies(tmp_path).items():
        out = tmp_path / f"{name}.png"
        code = main(_gen(out, "--model", str(folder)))
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1, (name, err)
        assert damaged in err, (name, err)
        assert not out.exists()


@pytest.mark.parametrize("argv, match", [
    (["--sigma", "0.001"], "hard cut"),
    (["--base-size", "abc"], "HxW"),
    (["--base-size", "0x0"], "HxW"),
    (["--height", "100000", "--width", "100000"], "force-size"),
    (["--model", "nowhere"], "no model"),
])
def test_generate_refuses_bad_options_before_loading(argv, match, tmp_path, capsys, no_loading):
    out = tmp_path / "x.png"
    args = _gen(out)
    for i in range(0, len(argv), 2):  # later options override the defaults above
        if argv[i] in args:
            args[args.index(argv[i]) + 1] = argv[i + 1]
        else:
            args += argv[i:i + 2]
    with pytest.raises(SystemExit) if argv[0] == "--base-size" else _nothing():
        code = main(args)
    err = capsys.readouterr().err
    if argv[0] != "--base-size":
        assert code == 2
    assert match in err and err.startswith("error:") and err.count("\n") == 1
    assert not out.exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("out", ["/proc/x.png", "DIR"])
def test_generate_refuses_an_unwritable_output_before_loading(out, tmp_path, capsys, no_loading):
    if out == "DIR":
        out = tmp_path / "folder.png"
        out.mkdir()
    assert main(_gen(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(out) in err


@pytest.mark.parametrize("argv, match", [
    (["study", "--out", "OUT", "--scales", "-1"], "> 0"),
    (["study", "--out", "OUT", "--model", "nowhere", "--scales", "2"], "no model"),
    (["study", "--out", "OUT", "--shard", "3/2"], "0 <= i < n"),
    (["study", "--out", "OUT", "--shard", "x"], "i/n"),
    (["study", "--out", "MISSING", "--summarize"], "No study"),
    (["eval-toy", "--scales", "0"], "> 0"),
    (["eval-toy", "--out", "/proc/e.json"], "cannot write"),
    (["bench", "--scales", "-2"], "> 0"),
    (["bench", "--generations", "--cases", "direkt"], "Unknown bench case"),
    (["bench", "--cases", "direct"], "add --generations"),
    (["train-toy", "--max-minutes", "-1"], "> 0"),
    (["report", "--out", "/proc/report"], "cannot write"),
])
def test_every_subcommand_gets_one_error_line_and_exit_2(argv, match, tmp_path, capsys, no_loading):
    argv = [str(tmp_path / "study") if a == "OUT" else str(tmp_path / "missing") if a == "MISSING" else a
            for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's type errors exit from the parser
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "missing").exists()
    assert not list(tmp_path.glob("study/*.jsonl"))


def test_a_shard_with_no_groups_is_an_error_not_a_silent_success(tmp_path, capsys, no_loading):
    code = main(["study", "--out", str(tmp_path / "s"), "--conditions", "scaled_pe", "--scales", "2",
                 "--shard", "1/2"])
    err = capsys.readouterr().err
    assert code == 2 and "no work" in err and not (tmp_path / "s").exists()


def test_an_interrupt_is_one_line_and_exit_130_with_nothing_left(tmp_path):
    import threading

    out = tmp_path / "x.png"
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    # 128 px (4,096 tokens, a short step) and many steps: the signal lands between two steps, even on a busy machine
    proc = subprocess.Popen([sys.executable, "-m", "resdit.cli", "generate", "--prompt", PROMPT, "--height", "128",
                             "--width", "128", "--steps", "400", "--mode", "scaled_pe", "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            # a shell's Ctrl-C reaches a program whose SIGINT is the default, whatever the test
                            # runner's is (a runner that ignores SIGINT would pass that on to the child)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err_chunks = []
    reader = threading.Thread(target=lambda: err_chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.time() + 300
    while time.time() < deadline and "%|" not in "".join(err_chunks):  # the progress bar: denoising has begun
        time.sleep(0.2)
    assert "%|" in "".join(err_chunks), "".join(err_chunks)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    err = "".join(err_chunks)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    assert proc.returncode == 130, err
    assert lines[-1].startswith("interrupted") and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_summary_of_a_missing_folder_creates_nothing(tmp_path, capsys):
    from analysis.study import summarize

    with pytest.raises(ValueError, match="No study"):
        summarize(tmp_path / "none")
    assert not (tmp_path / "none").exists()
    json.dumps({})


def test_splice_reaches_the_config_and_an_unknown_one_is_refused(tmp_path, capsys, no_loading):
    from resdit import ResDiTConfig, ResDiTConfigError
    from resdit.cli import build_parser, config_from_args, main

    args = build_parser().parse_args(_gen(tmp_path / "a.png", "--splice", "feather"))
    assert config_from_args(args, (32, 32)).weighting == "feather"
    assert config_from_args(build_parser().parse_args(_gen(tmp_path / "a.png")), (32, 32)).weighting == "gaussian"
    assert ResDiTConfig(mode="resdit_no_mop_gws").weighting == "uniform"  # the mode's own
    with pytest.raises(ResDiTConfigError, match="splice='cosine'"):
        ResDiTConfig(mode="resdit", splice="cosine")
    with pytest.raises(ResDiTConfigError, match="has neither"):  # a splice that would weigh nothing
        ResDiTConfig(mode="scaled_pe", splice="feather")
    assert ResDiTConfig(mode="tiling", splice="feather").weighting == "feather"
    with pytest.raises(SystemExit) as stop:
        main(_gen(tmp_path / "x.png", "--splice", "cosine"))
    assert stop.value.code == 2 and "--splice" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_window_align_reaches_the_config_and_zero_is_refused(tmp_path, capsys, no_loading):
    from resdit.cli import build_parser, config_from_args, main

    args = build_parser().parse_args(_gen(tmp_path / "a.png", "--window-align", "4"))
    assert config_from_args(args, (32, 32)).align == 4
    args = build_parser().parse_args(_gen(tmp_path / "a.png"))
    assert config_from_args(args, (32, 32)).align == 2  # mode resdit's own
    with pytest.raises(SystemExit) as stop:
        main(_gen(tmp_path / "x.png", "--window-align", "0"))
    assert stop.value.code == 2 and "--window-align" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_window_overlap_reaches_the_config_and_zero_is_refused(tmp_path, capsys, no_loading):
    from resdit.cli import build_parser, config_from_args, main

    args = build_parser().parse_args(_gen(tmp_path / "a.png", "--window-overlap", "4"))
    assert config_from_args(args, (32, 32)).overlap == 4
    args = build_parser().parse_args(_gen(tmp_path / "a.png"))
    assert config_from_args(args, (32, 32)).overlap == "quarter"  # mode resdit's default
    args = build_parser().parse_args(_gen(tmp_path / "a.png", "--window-overlap", "1"))
    assert config_from_args(args, (32, 32)).overlap == 1
    args = build_parser().parse_args(_gen(tmp_path / "a.png", "--mode", "resdit_fast", "--window-overlap", "quarter"))
    assert config_from_args(args, (32, 32)).overlap == "quarter"
    for bad in ("0", "half"):
        with pytest.raises(SystemExit) as stop:
            main(_gen(tmp_path / "x.png", "--window-overlap", bad))
        assert stop.value.code == 2 and "--window-overlap" in capsys.readouterr().err
        assert not (tmp_path / "x.png").exists()
