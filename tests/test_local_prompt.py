import json
"""The local-only phase's own prompt (resdit.local_prompt): which phase reads which text, and the errors."""

import numpy as np
import pytest
import torch
from conftest import flux_inputs, tiny_flux

import resdit
from resdit import ResDiTConfig, ResDiTConfigError
from test_apply import STEPS


def _run(model, inputs, step, local_text=None, mode="resdit_paper", context=None, **cfg):
    resdit.apply_resdit(model, ResDiTConfig(mode=mode, **cfg), base_grid=(8, 8), local_text=local_text)
    resdit.set_step(model, step, 35)
    try:
        with torch.no_grad():
            if context is None:
                return model(**inputs).sample
            with model.cache_context(context):
                return model(**inputs).sample
    finally:
        resdit.remove_resdit(model)


@pytest.fixture
def setting():
    model = tiny_flux()
    inputs = flux_inputs((16, 16), text_len=5)
    g = torch.Generator().manual_seed(9)
    return model, inputs, torch.randn(1, 5, 32, generator=g), torch.randn(1, 32, generator=g)


@pytest.mark.parametrize("phase", ["global", "fused"])
def test_the_phases_with_a_global_branch_keep_the_calls_prompt(setting, phase):
    model, inputs, states, pooled = setting
    torch.testing.assert_close(_run(model, inputs, STEPS[phase], local_text=(states, pooled)),
                               _run(model, inputs, STEPS[phase]), atol=0, rtol=0)


def test_the_local_only_phase_runs_under_the_local_prompts_text_and_pooled_vector(setting):
    model, inputs, states, pooled = setting
    with_local = _run(model, inputs, STEPS["local"], local_text=(states, pooled))
    swapped = dict(inputs, encoder_hidden_states=states, pooled_projections=pooled)
    torch.testing.assert_close(with_local, _run(model, swapped, STEPS["local"]), atol=0, rtol=0)
    assert not torch.allclose(with_local, _run(model, inputs, STEPS["local"]), atol=1e-4)
    text_only = dict(inputs, encoder_hidden_states=states)  # states alone: the call's pooled vector stays
    torch.testing.assert_close(_run(model, inputs, STEPS["local"], local_text=states),
                               _run(model, text_only, STEPS["local"]), atol=0, rtol=0)


@pytest.mark.parametrize("size", [(8, 8), (8, 16)])
def test_at_the_base_size_a_local_prompt_changes_nothing_and_above_it_acts(setting, size):
    model, _, states, pooled = setting
    inputs = flux_inputs(size, text_len=5)
    same = torch.equal(_run(model, inputs, STEPS["local"], local_text=(states, pooled)),
                       _run(model, inputs, STEPS["local"]))
    assert same == (size == (8, 8))  # one window, the whole image: its prompt's place words hold


def test_a_local_prompt_of_another_length_gets_its_own_text_ids(setting):
    model, inputs, _, pooled = setting
    longer = torch.randn(1, 9, 32, generator=torch.Generator().manual_seed(2))
    swapped = dict(inputs, encoder_hidden_states=longer, pooled_projections=pooled, txt_ids=torch.zeros(9, 3))
    torch.testing.assert_close(_run(model, inputs, STEPS["local"], local_text=(longer, pooled)),
                               _run(model, swapped, STEPS["local"]), atol=0, rtol=0)


def test_the_unconditional_call_keeps_its_own_text(setting):
    model, inputs, states, pooled = setting
    torch.testing.assert_close(_run(model, inputs, STEPS["local"], local_text=(states, pooled), context="uncond"),
                               _run(model, inputs, STEPS["local"]), atol=0, rtol=0)


def test_one_local_prompt_serves_a_batch_and_mismatches_are_named(setting):
    model, _, states, pooled = setting
    inputs = flux_inputs((16, 16), text_len=5, batch=2)
    both = _run(model, inputs, STEPS["local"], local_text=(states.expand(2, -1, -1), pooled.expand(2, -1)))
    torch.testing.assert_close(_run(model, inputs, STEPS["local"], local_text=(states, pooled)), both, atol=0, rtol=0)
    with pytest.raises(ResDiTConfigError, match="3 local prompts for a batch of 2"):
        _run(model, inputs, STEPS["local"], local_text=states.expand(3, -1, -1))
    with pytest.raises(ResDiTConfigError, match="16 features a token"):
        _run(model, inputs, STEPS["local"], local_text=torch.randn(1, 5, 16))


@pytest.mark.parametrize("mode", ["direct", "scaled_pe", "tiling"])
def test_a_mode_without_windows_refuses_a_local_prompt(mode):
    with pytest.raises(ResDiTConfigError, match="no local branch"):
        resdit.apply_resdit(tiny_flux(), ResDiTConfig(mode=mode), base_grid=(8, 8), local_text=torch.zeros(1, 5, 32))


def test_a_schedule_without_a_local_only_phase_refuses_a_local_prompt_and_says_what_to_set():
    model = tiny_flux()
    for cfg in (ResDiTConfig(mode="resdit"), ResDiTConfig(mode="resdit_paper", local_steps=0)):
        with pytest.raises(ResDiTConfigError, match="local_steps=3"):
            resdit.apply_resdit(model, cfg, base_grid=(8, 8), local_text=torch.zeros(1, 5, 32))
        assert resdit.get_state(model) is None
    resdit.apply_resdit(model, ResDiTConfig(mode="resdit", local_steps=3), base_grid=(8, 8),
                        local_text=torch.zeros(1, 5, 32))
    resdit.remove_resdit(model)


def test_a_bare_transformer_needs_encoded_text_and_other_families_are_refused():
    from tiny_pipelines import tiny_sd3

    with pytest.raises(ResDiTConfigError, match="local_text="):
        resdit.apply_resdit(tiny_flux(), ResDiTConfig(mode="resdit_paper"), base_grid=(8, 8), local_prompt="a cat")
    sd3 = tiny_sd3()
    with pytest.raises(ResDiTConfigError, match="not yet on SD3"):
        resdit.apply_resdit(sd3, ResDiTConfig(mode="resdit_paper"), base_grid=(8, 8), local_text=torch.zeros(1, 5, 32))
    assert resdit.get_state(sd3) is None


def test_flux_pipeline_encodes_the_local_prompt_and_removal_restores_it():
    from tiny_pipelines import tiny_flux_pipeline

    pipe = tiny_flux_pipeline()
    cfg = ResDiTConfig(base_size=(16, 16), mode="resdit", local_steps=2)

    def image(**kw):
        return resdit.generate(pipe, "a cat at left", cfg, 32, 32, num_inference_steps=6, seed=0,
                               max_sequence_length=512, **kw)

    plain = image()
    local = image(local_prompt="fur, sharp")
    assert local.shape == plain.shape and torch.isfinite(local).all()
    assert not torch.allclose(local, plain, atol=1e-4)
    assert resdit.get_state(pipe) is None
    torch.testing.assert_close(image(), plain, atol=0, rtol=0)
    with pytest.raises(ResDiTConfigError, match="no local branch"):
        resdit.generate(pipe, "a cat", ResDiTConfig(base_size=(16, 16), mode="two_stage"), 32, 32, 2,
                        local_prompt="fur")


def test_a_controlnet_reads_the_same_local_prompt():
    from tiny_pipelines import tiny_flux_controlnet_pipeline

    pipe = tiny_flux_controlnet_pipeline()
    control = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cfg = ResDiTConfig(base_size=(16, 16), mode="resdit", local_steps=2)

    def image():
        return pipe("a cat", control_image=control, height=32, width=32, num_inference_steps=6, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images

    with resdit.enabled(pipe, cfg):
        plain = image()
    with resdit.enabled(pipe, cfg, local_prompt="fur") as state:
        net_state = resdit.get_state(pipe.controlnet)
        assert net_state is not None and net_state.local_text is state.local_text
        local = image()
    assert np.isfinite(local).all() and not np.allclose(local, plain, atol=1e-4)


def _captured(pipe, monkeypatch, **kwargs):
    """eval-toy's images (through a reader) for 3 prompts at 2x, 4 steps, one image per pipeline call."""
    from resdit.toy import evaluate

    monkeypatch.setattr(evaluate, "BATCH", 1)  # a call per image: the window prompts and the noise by index
    seen = []
    rows = evaluate.evaluate(pipe, ["resdit"], [2.0], n_prompts=3, steps=4, progress=False,
                             readers={"capture": lambda images, *_: seen.append(images) or {}}, local_steps=1, **kwargs)
    return rows[0], seen[0]


def test_eval_toy_runs_each_local_only_phase_under_its_images_window_prompt(tiny_toy, monkeypatch):
    from resdit.toy import load_pipeline, world

    pipe = load_pipeline(tiny_toy)
    plain_row, plain = _captured(pipe, monkeypatch)
    row, windowed = _captured(pipe, monkeypatch, window_prompts=True)
    assert (plain_row["local_prompt"], row["local_prompt"]) == (None, "window_prompt") and row["local_steps"] == 1
    assert np.abs(windowed - plain).max() > 1e-3  # the window prompts acted (100x the rounding below)...
    monkeypatch.setattr(world, "window_prompt", lambda p, w=None: p)
    _, same = _captured(pipe, monkeypatch, window_prompts=True)
    # ...and nothing else did: each image kept its noise and prompt (to float rounding: the text is encoded anew)
    np.testing.assert_allclose(same, plain, atol=1e-5)


def _eval_configs(tiny_toy, monkeypatch, modes, scale, **kwargs):
    """eval-toy's rows and the config each mode's images were generated with (generation and scoring stubbed)."""
    from resdit.toy import evaluate, load_pipeline

    ran = []
    monkeypatch.setattr(evaluate, "generate_batch", lambda *a, config=None, **k: ran.append(config) or
                        np.zeros((1, 3, *a[2:4]), np.float32))
    monkeypatch.setattr(evaluate, "score", lambda *a: {})
    rows = evaluate.evaluate(load_pipeline(tiny_toy), modes, [scale], n_prompts=1, steps=4, progress=False, readers={},
                             **kwargs)
    return rows, ran


def test_eval_toy_feathers_only_the_modes_with_windows(tiny_toy, monkeypatch):
    rows, ran = _eval_configs(tiny_toy, monkeypatch, ["resdit", "tiling"], 2.0, splice="feather")
    ran = [c.weighting for c in ran]
    assert ran == ["feather", "uniform"] and [r["splice"] for r in rows] == ["feather", None]


def test_eval_toy_widens_the_overlap_of_the_modes_with_windows_only(tiny_toy, monkeypatch):
    rows, ran = _eval_configs(tiny_toy, monkeypatch, ["resdit", "scaled_pe", "resdit_no_mop_gws"], 8.0,
                              window_overlap=4, splice="feather")
    ran = [c.overlap for c in ran]
    assert ran == [4, 1, 1] and [r["window_overlap"] for r in rows] == [4, None, 1]
    assert [r["splice"] for r in rows] == ["feather", None, "feather"]  # the hard grid takes a splice, not an overlap


def test_eval_toy_sets_the_global_only_phase_and_records_the_count_that_ran(tiny_toy, monkeypatch):
    rows, ran = _eval_configs(tiny_toy, monkeypatch, ["resdit", "resdit_paper", "scaled_pe"], 2.0, global_steps=0)
    assert [c.global_steps for c in ran][:2] == [0, 0]
    assert [r["global_steps"] for r in rows] == [0, 0, None]  # scaled_pe has no phases
    rows, _ = _eval_configs(tiny_toy, monkeypatch, ["resdit"], 2.0)
    assert rows[0]["global_steps"] == resdit.phase_lengths(4)[0] == 1  # the default's count of 4 steps, not None


def test_eval_toy_refuses_window_prompts_it_cannot_apply_before_any_image(tiny_toy):
    from resdit.toy import evaluate, load_pipeline

    pipe = load_pipeline(tiny_toy)
    never = {"capture": lambda *a: pytest.fail("an image was made")}
    with pytest.raises(ResDiTConfigError, match="none of modes"):
        evaluate.evaluate(pipe, ["direct", "tiling"], [2.0], n_prompts=1, steps=4, readers=never, window_prompts=True)
    with pytest.raises(ResDiTConfigError, match="local_steps=3"):
        evaluate.evaluate(pipe, ["direct", "resdit"], [2.0], n_prompts=1, steps=4, readers=never, local_steps=0,
                          window_prompts=True)


def test_a_study_condition_runs_its_local_only_phase_under_the_window_prompts(tiny_toy, tmp_path, monkeypatch):
    from analysis import study
    from analysis.conditions import condition_config, condition_local_prompt
    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import evaluation_prompts
    from resdit.toy.world import window_prompt

    calls = []

    def generate(pipe, prompts, cfg, *args, local_prompt=None, **kwargs):
        calls.append((list(prompts), cfg, local_prompt))
        return resdit.generate(pipe, prompts, cfg, *args, local_prompt=local_prompt, **kwargs)

    monkeypatch.setattr(study, "generate", generate)
    conditions = ("resdit+local_steps3", "resdit+window_prompt")
    path = study.run_study(study.StudyConfig(out=str(tmp_path), scales=(2.0,), prompts=2, seeds=1, steps=20,
                                             conditions=conditions, model=str(tiny_toy)), progress=False)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["condition"]: r["provenance"]["study"]["local_prompt"] for r in rows} == {
        "resdit+local_steps3": None, "resdit+window_prompt": "window_prompt"}
    world = load_pipeline(tiny_toy).world
    prompts = evaluation_prompts(2, world=world)
    windows = [window_prompt(p, world) for p in prompts]
    assert windows != prompts
    base = (32, 32)
    assert [(p, c.local_steps, lp) for p, c, lp in calls] == [(prompts, 3, None), (prompts, 3, windows)]
    assert calls[0][1] == calls[1][1] == condition_config("resdit+window_prompt", base)
    assert condition_local_prompt("resdit+window_prompt", prompts, world) == windows
    assert condition_local_prompt("resdit+local_steps3", prompts, world) is None
