"""What a request runs on (the scheduler shift, the CFG half) and what it refuses, before any work."""

import math

import numpy as np
import pytest
import torch
from conftest import flux_inputs, tiny_flux
from tiny_pipelines import tiny_flux_pipeline

import resdit
from resdit import ResDiTConfig, ResDiTConfigError
from resdit.cli import main


@pytest.fixture(scope="module")
def dev_pipe():
    """The tiny FluxPipeline with FLUX.1-dev's scheduler scaled down: its 8x8-token base plays 1024^2
    (FLUX's 4096 tokens), 4x4 tokens play 256^2, shift rule otherwise FLUX.1-dev's."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = tiny_flux_pipeline()
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=16, base_shift=0.5, max_image_seq_len=64,
                                                     max_shift=1.15, shift=3.0, use_dynamic_shifting=True)
    return pipe


def _sigmas(pipe, size, cfg=None, steps=4):
    kwargs = dict(height=size[0], width=size[1], num_inference_steps=steps, max_sequence_length=48,
                  output_type="np", generator=torch.Generator().manual_seed(0))
    if cfg is None:
        pipe("a cat", **kwargs)
    else:
        with resdit.enabled(pipe, cfg):
            pipe("a cat", **kwargs)
    return pipe.scheduler.sigmas.clone()


@pytest.mark.parametrize("mode", ["resdit", "scaled_pe", "extrapolate", "patch_pe_local", "ntk"])
def test_every_mode_but_direct_denoises_on_the_base_sizes_sigmas_by_default(dev_pipe, mode):
    base = _sigmas(dev_pipe, (16, 16))
    at_3x_stock = _sigmas(dev_pipe, (48, 48))
    assert not torch.allclose(base, at_3x_stock)  # the stock rule shifts 3x far harder (mu 8.1 vs 1.15)
    torch.testing.assert_close(_sigmas(dev_pipe, (48, 48), ResDiTConfig(base_size=(16, 16), mode=mode)), base)


def test_direct_is_the_pipelines_own_schedule_and_pipeline_keeps_the_old_rule(dev_pipe):
    at_3x_stock = _sigmas(dev_pipe, (48, 48))
    assert torch.equal(_sigmas(dev_pipe, (48, 48), ResDiTConfig(base_size=(16, 16), mode="direct")), at_3x_stock)
    assert torch.equal(_sigmas(dev_pipe, (48, 48), ResDiTConfig(base_size=(16, 16), mu="pipeline")), at_3x_stock)


def test_no_size_makes_the_shift_overflow(dev_pipe):
    sigmas = np.linspace(1.0, 1 / 4, 4)
    with pytest.raises(OverflowError):  # the stock scheduler at the mu of a 16M-token canvas
        dev_pipe.scheduler.set_timesteps(sigmas=sigmas, mu=1e5)
    with resdit.enabled(dev_pipe, ResDiTConfig(base_size=(16, 16), mode="direct")):
        dev_pipe.scheduler.set_timesteps(sigmas=sigmas, mu=1e5)
        shifted = dev_pipe.scheduler.sigmas[:-1]
        dev_pipe.scheduler.set_timesteps(sigmas=sigmas, mu=0.5)  # finite mu: the stock function, bit for bit
        safe_small = dev_pipe.scheduler.sigmas.clone()
    torch.testing.assert_close(shifted, torch.ones(4))  # the limit: every sigma 1
    dev_pipe.scheduler.set_timesteps(sigmas=sigmas, mu=0.5)
    assert torch.equal(safe_small, dev_pipe.scheduler.sigmas)


# ------------------------------------------------------------------------------------- bad input, CLI
def _sd3_folder(tmp_path):
    from tiny_pipelines import tiny_sd3_pipeline

    folder = tmp_path / "tiny-sd3"
    tiny_sd3_pipeline().save_pretrained(folder)
    return folder


BAD = {
    "zero height": ["--height", "0", "--width", "64"],
    "negative width": ["--height", "64", "--width", "-64"],
    "fractional size": ["--height", "64.5", "--width", "64"],
    "size off the patch grid": ["--height", "63", "--width", "64"],
    "zero steps": ["--height", "64", "--width", "64", "--steps", "0"],
    "nan cutoff": ["--height", "64", "--width", "64", "--cutoff", "nan"],
    "cutoff above sqrt 2": ["--height", "64", "--width", "64", "--cutoff", "1.5"],
    "inf splice width": ["--height", "64", "--width", "64", "--splice-width", "inf"],
    "zero splice width": ["--height", "64", "--width", "64", "--splice-width", "0"],
    "negative sigma": ["--height", "64", "--width", "64", "--sigma", "-0.5"],
    "nan mu": ["--height", "64", "--width", "64", "--mu", "nan"],
    "negative phase": ["--height", "64", "--width", "64", "--local-steps", "-1"],
    "phases longer than steps": ["--height", "64", "--width", "64", "--steps", "4", "--global-steps", "3",
                                 "--local-steps", "3"],
    "unknown mode": ["--height", "64", "--width", "64", "--mode", "resdit_plus"],
    "unknown image format": ["--height", "64", "--width", "64", "--out-suffix", ".gif"],
    "prompt outside the toy grammar": ["--height", "64", "--width", "64", "--prompt", "a purple cat"],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_requests_exit_2_with_one_error_line_before_loading_and_write_nothing(case, tmp_path, capsys,
                                                                                  monkeypatch):
    import resdit.cli as cli

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded for a request that could be refused without one")

    monkeypatch.setattr(cli, "load_any_pipeline", no_loading)
    args = list(BAD[case])
    suffix = ".png"
    if "--out-suffix" in args:
        i = args.index("--out-suffix")
        suffix = args[i + 1]
        del args[i:i + 2]
    if "--prompt" not in args:
        args += ["--prompt", "a red striped circle at top left"]
    out = tmp_path / f"img{suffix}"
    with _returns_or_exits() as result:
        result.code = main(["generate", *args, "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert result.code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert not list(tmp_path.iterdir())


class _returns_or_exits:
    """``main`` returns 2 for library errors; argparse exits with 2 for malformed options: catch both."""

    code = None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is SystemExit:
            self.code = value.code
            return True
        return False


def test_a_mode_the_model_family_lacks_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    import resdit.cli as cli

    folder = _sd3_folder(tmp_path)
    capsys.readouterr()  # save_pretrained's progress bars
    monkeypatch.setattr(cli, "load_any_pipeline", lambda *a, **k: pytest.fail("loaded the model"))
    out = tmp_path / "x.png"
    code = main(["generate", "--model", str(folder), "--prompt", "a cat", "--height", "64", "--width", "64",
                 "--mode", "ntk", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: Mode 'ntk' does not apply to SD3") and len(err.splitlines()) == 1
    assert not out.exists()


def test_every_cli_option_has_a_help_line():
    import argparse

    from resdit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.option_strings}" for name, p in sub.choices.items() for a in p._actions
               if a.option_strings and a.help is None]
    assert missing == []


# ------------------------------------------------------------------------------------- bad input, API
@pytest.mark.parametrize("kwargs", [dict(cutoff=float("nan")), dict(splice_width=float("inf")), dict(splice_width=0.0),
                                    dict(mu=float("nan")), dict(mu="stock"), dict(global_steps=-1),
                                    dict(local_steps=1.5), dict(strength=float("nan"))])
def test_config_rejects_non_finite_and_out_of_range_options(kwargs):
    with pytest.raises(ResDiTConfigError):
        ResDiTConfig(base_size=(16, 16), **kwargs)


@pytest.mark.parametrize("size,steps", [((0, 32), 2), ((32, -32), 2), ((32, 32), 0), ((33, 32), 2)])
def test_generate_rejects_bad_requests_before_the_transformer_runs(dev_pipe, size, steps):
    calls = []
    handle = dev_pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ResDiTConfigError):
            resdit.generate(dev_pipe, "a cat", ResDiTConfig(base_size=(16, 16)), *size, num_inference_steps=steps,
                            max_sequence_length=48)
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize("kwargs", [dict(window_overlap=8), dict(window_overlap=3, window_align=6),
                                    dict(mode="tiling", window_overlap=8)])
def test_windows_that_cannot_overlap_as_asked_are_refused_before_the_transformer_runs(dev_pipe, kwargs):
    """An 8-token window cannot overlap its neighbour by 8; starts on multiples of 6 cannot keep an overlap of 3."""
    calls = []
    handle = dev_pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ResDiTConfigError, match="window_overlap"):
            resdit.generate(dev_pipe, "a cat", ResDiTConfig(base_size=(16, 16), **kwargs), 64, 64,
                            num_inference_steps=2, max_sequence_length=48)
    finally:
        handle.remove()
    assert calls == []


# ------------------------------------------------------------------------------------- CFG half
def _record_calls(model, calls):
    """Run ``calls`` = [(step, context name or None), ...] through a recorded, ResDiT-patched transformer."""
    inputs = flux_inputs((8, 8))
    with resdit.enabled(model, ResDiTConfig(mode="scaled_pe"), base_grid=(8, 8)):
        with resdit.record(model, points=["entropy"], layers=[0]) as cache, torch.no_grad():
            for step, name in calls:
                resdit.set_step(model, step, 4)
                inputs = dict(inputs, timestep=torch.full((1,), 0.5 + 0.01 * len(cache)))  # tell calls apart
                if name is None:
                    model(**inputs)
                else:
                    with model.cache_context(name):
                        model(**inputs)
    return cache


def test_cfg_half_comes_from_the_pipelines_call_context():
    model = tiny_flux()
    # uncond before cond, and two calls for one half at a step (a second-order solver's pattern)
    cache = _record_calls(model, [(0, "uncond"), (0, "cond"), (1, "cond"), (1, "cond"), (1, "uncond")])
    keys = {(k[1], k[2]) for k in cache.entries}
    assert keys == {(0, 0), (0, 1), (1, 0), (1, 1)}  # cond -> 0, uncond -> 1, whatever the order or repeats


def test_without_a_call_context_repeated_calls_at_one_step_count_up():
    cache = _record_calls(tiny_flux(), [(0, None), (0, None), (1, None)])
    assert {(k[1], k[2]) for k in cache.entries} == {(0, 0), (0, 1), (1, 0)}


def test_true_cfg_in_a_flux_pipeline_records_both_halves(dev_pipe):
    with resdit.enabled(dev_pipe, ResDiTConfig(base_size=(16, 16), mode="resdit")):
        with resdit.record(dev_pipe, points=["entropy"], layers=[0]) as cache:
            dev_pipe("a cat", negative_prompt="a dog", true_cfg_scale=2.0, height=32, width=32,
                     num_inference_steps=3, max_sequence_length=48, generator=torch.Generator().manual_seed(0))
    assert {(k[1], k[2]) for k in cache.entries} == {(s, c) for s in range(3) for c in (0, 1)}
    assert resdit.get_state(dev_pipe) is None and "cache_context" not in vars(dev_pipe.transformer)


# ------------------------------------------------------------------------------------- strict JSON
def test_results_are_strict_json_and_read_back_unchanged(tmp_path):
    import json

    from resdit.io import dumps_strict

    row = {"detail": float("nan"), "seam": float("inf"), "correct": 1.0, "ci95": [float("nan"), 0.5],
           "count": np.int64(2), "scale": np.float32(2.0)}
    text = dumps_strict(row)
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back == {"detail": None, "seam": None, "correct": 1.0, "ci95": [None, 0.5], "count": 2, "scale": 2.0}
    assert json.loads(dumps_strict(back)) == back
    assert math.isnan(np.array([back["detail"], 1.0], dtype=float)[0])  # readers get NaN back as a number
