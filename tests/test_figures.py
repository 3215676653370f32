"""The committed figures are what the current code draws: regenerate the data of one and compare."""

from pathlib import Path

import numpy as np
import pytest

from analysis.interventions import index_grids

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def test_index_grid_figure_data_matches_the_current_code():
    path = FIGURES / "index_grids.npz"
    if not path.exists():
        pytest.fail("figures/index_grids.npz is missing: regenerate with `resdit report --out out/full`.")
    saved = np.load(path)
    grid, base = tuple(saved["grid"]), tuple(saved["base"])
    for i, ids in enumerate(index_grids(grid, base).values()):
        np.testing.assert_array_equal(saved[f"ids{i}"], ids)


def test_sweep_points_take_each_scale_once_with_base_as_scale_one():
    from analysis.figures import sweep_points

    def group(cond, scale, n, mean):
        return {"condition": cond, "scale": scale, "n": n, "correct": {"mean": mean, "ci95": [mean - 0.1, mean + 0.1]}}

    groups = [group("base", 1.0, 32, 1.0), group("resdit", 2.0, 32, 0.5), group("resdit", 2.0, 8, 0.9),
              group("resdit", 8.0, 2, 0.0), group("resdit", 3.0, 8, float("nan"))]
    pts = sweep_points(groups, conditions=["resdit"], metrics=["correct"])["resdit"]["correct"]
    assert [(p[0], p[1], p[4]) for p in pts] == [(1.0, 1.0, 32), (2.0, 0.5, 32), (8.0, 0.0, 2)]


def test_sweep_table_has_one_cell_per_scale_and_marks_missing_ones():
    from analysis.figures import sweep_table

    def group(cond, scale, n, correct, count):
        return {"condition": cond, "scale": scale, "n": n, "correct": {"mean": correct, "ci95": [0, 1]},
                "count": {"mean": count, "ci95": [0, 3]}}

    groups = [group("base", 1.0, 32, 1.0, 1.0), group("direct", 2.0, 32, 0.0, 1.59),
              group("resdit", 8.0, 2, 0.5, 3.0)]
    table = sweep_table(groups, conditions=["direct", "resdit"]).splitlines()
    assert table[0] == "| condition | 1x | 2x | 8x |"
    assert table[2] == "| direct | 1.00 (1.0 obj, n=32) | 0.00 (1.6 obj, n=32) | - |"
    assert table[3] == "| resdit | 1.00 (1.0 obj, n=32) | - | 0.50 (3.0 obj, n=2) |"


def test_the_demo_contact_sheet_shows_every_method_at_every_scale_with_its_scores(tiny_toy, tmp_path):
    """One panel per method and scale, each scored from its own image; at 1x every single-pass method is the model
    itself (the same image); the PNG and its numbers are written."""
    import json

    from analysis.demo import METHODS, PROMPT, sheet_cases, write_sheet
    from analysis.scoring import score_case
    from resdit.toy import load_pipeline

    pipe = load_pipeline(tiny_toy)
    cases = sheet_cases(pipe, scales=(1, 2), steps=2)
    assert [(c["mode"], c["scale"]) for c in cases] == [(m, s) for m, _, _ in METHODS for s in (1, 2)]
    at_1x = [c["image"] for c in cases if c["scale"] == 1 and c["mode"] != "two_stage"]
    assert all(np.array_equal(at_1x[0], image) for image in at_1x)
    resdit_2x = next(c for c in cases if c["label"] == "ResDiT" and c["scale"] == 2)
    windowed_2x = next(c for c in cases if c["label"] == "ResDiT + window prompt" and c["scale"] == 2)
    assert not np.array_equal(windowed_2x["image"], resdit_2x["image"])
    assert (resdit_2x["splice"], windowed_2x["splice"]) == ("gaussian", "feather")  # no seams from the local-only phase
    assert resdit_2x["image"].shape == (3, 64, 64)
    assert resdit_2x["detail"] == pytest.approx(score_case(resdit_2x["image"], PROMPT, (32, 32), "mop",
                                                          world=pipe.world)["detail"], nan_ok=True)
    out = write_sheet(tmp_path / "sheet.png", scales=(1, 2), steps=2, model=str(tiny_toy), quiet=True)
    numbers = json.loads(out.with_suffix(".json").read_text())
    assert out.read_bytes()[:4] == b"\x89PNG" and len(numbers["cases"]) == 2 * len(METHODS)
    assert [c["correct"] for c in numbers["cases"]] == [c["correct"] for c in cases]  # same noise, same images


def test_the_last_predicted_clean_image_is_the_generated_image(tiny_toy):
    """x0 = x_t - sigma v after the last step is where the Euler step to sigma = 0 lands: the pipeline's output."""
    import torch

    from analysis.mechanism import x0_trajectory
    from resdit import ResDiTConfig, generate
    from resdit.toy import load_pipeline

    pipe = load_pipeline(tiny_toy)
    noise = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cfg = ResDiTConfig(base_size=(32, 32), mode="resdit")
    traj = x0_trajectory(pipe, "a red striped circle at top left", cfg, 64, 64, 3, noise)
    final = generate(pipe, "a red striped circle at top left", cfg, 64, 64, 3, latents=noise)[0].numpy()
    assert traj.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(traj[-1], final, atol=1e-5)
    assert not np.allclose(traj[0], final, atol=1e-2)  # the first prediction is not yet the image


def test_the_radial_profile_peaks_at_a_constructed_fields_frequency():
    """A field of one frequency (0.25 cycles per token along x) puts its energy in the bin of rho = 0.5."""
    from analysis.mechanism import radial_profile

    x = np.cos(2 * np.pi * 0.25 * np.arange(16))[None, :].repeat(16, 0)
    amp = np.abs(np.fft.rfft2(x))
    rho, mean = radial_profile(amp, bins=14)
    assert abs(rho[np.nanargmax(mean)] - 0.5) < np.sqrt(2) / 14


def test_condition_bars_name_conditions_for_readers_and_show_zero_and_missing():
    """Reader names on the axis (the internal ones in the caption table), ordered by the first metric at the
    largest scale; a zero drawn (a tick at 0), a condition not run at a scale labelled as such."""
    from analysis.figures import condition_bars, name_table, reader_name

    def group(cond, scale, correct):
        return {"condition": cond, "scale": scale, "correct": {"mean": correct, "ci95": [correct, correct]}}

    groups = [group("resdit_paper", 2.0, 0.5), group("resdit_paper", 4.0, 0.0), group("two_stage", 4.0, 1.0),
              group("resdit+base_tokens+fft", 2.0, 1.0), group("resdit+base_tokens+fft", 4.0, 0.9)]
    fig = condition_bars(groups, ["correct"])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [reader_name("two_stage"), reader_name("resdit+base_tokens+fft"), reader_name("resdit_paper")]
    assert "ResDiT as in the paper" in labels[2]
    texts = [t.get_text().strip() for t in ax.texts]
    assert texts == ["not run"]  # two-stage at 2x
    zero_ticks = [ln for ln in ax.lines
                  if ln.get_marker() == "|" and ln.get_markersize() == 5 and ln.get_xdata()[0] == 0]
    assert len(zero_ticks) == 1  # resdit_paper at 4x: 0.0, drawn
    assert "`resdit_paper`" in name_table(["resdit_paper"]) and reader_name("resdit_paper") in name_table(["resdit_paper"])


def test_a_flipbook_embeds_every_frame_behind_one_slider_with_no_network():
    import re

    from analysis.flipbook import MARKER, flipbook

    frames = [(f'cutoff {c} <"quoted">', np.full((3, 8, 8), c)) for c in (0.1, 0.2, 0.5)]
    page = flipbook(frames, title="PSF cutoff")
    assert page.count("data:image/png;base64,") == 3 and 'max="2"' in page and f'class="{MARKER}"' in page
    shown = re.findall(r'style="display:(block|none);', page)
    assert shown == ["block", "none", "none"]  # the first frame, then the slider switches
    assert "http" not in page and "&lt;&quot;quoted&quot;&gt;" in page  # captions escaped, nothing fetched
    with pytest.raises(ValueError):
        flipbook([])


def test_the_full_spectrum_of_rfft_amplitudes_is_the_centred_fft():
    from resdit.plots import full_spectrum

    x = np.random.default_rng(0).normal(size=(8, 10))
    np.testing.assert_allclose(full_spectrum(np.abs(np.fft.rfft2(x))), np.fft.fftshift(np.abs(np.fft.fft2(x))),
                               atol=1e-9)
