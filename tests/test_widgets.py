import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from conftest import flux_inputs, tiny_flux

import resdit
from resdit import ResDiTConfig
from resdit.widgets import AttentionExplorer, GenerationExplorer


@pytest.fixture(scope="module")
def saved_cache(tmp_path_factory):
    model = tiny_flux()
    path = tmp_path_factory.mktemp("cache") / "cache"
    with resdit.enabled(model, ResDiTConfig(mode="resdit", global_tokens="full"), base_grid=(8, 8)):
        resdit.set_step(model, 15, 35)  # fused phase: both branches recorded
        with resdit.record(model, points=["probs", "entropy", "distance"], probes=[(2, 3), (12, 12)]) as cache:
            with torch.no_grad():
                model(**flux_inputs((16, 16), text_len=5))
    cache.save(path)
    return resdit.AttentionCache.load(path)  # the explorer works from disk, with no model


def test_attention_explorer_follows_its_controls(saved_cache):
    ex = AttentionExplorer(saved_cache)
    first = ex.last["map"]
    assert first.shape == (16, 16)
    np.testing.assert_allclose(first, saved_cache.get("probs", 0, branch="global")[0, 0, 0, 5:].reshape(16, 16))
    assert [label for label, _ in ex.controls["probe"].options] == ["token row 2, column 3", "token row 12, column 12"]
    ex.controls["probe"].value = 1  # chosen by where it is
    ex.controls["branch"].value = "local"
    local = saved_cache.get("probs", 0, branch="local")[0, 0, 1, 5:].reshape(16, 16).numpy()
    np.testing.assert_allclose(ex.last["map"], local)
    assert ex.last["curve_values"].shape == (2,)
    ex.controls["curve"].value = "distance"
    assert np.isfinite(ex.last["curve_values"]).all()


def test_attention_explorer_needs_probabilities():
    with pytest.raises(ValueError, match="points=\\['probs'\\]"):
        AttentionExplorer(resdit.AttentionCache(["a"]))


def test_generation_explorer_regenerates_with_the_sliders():
    from resdit.toy.model import build_scheduler, build_text_encoder, build_transformer
    from resdit.toy.pipeline import ToyFluxPipeline

    torch.manual_seed(0)
    pipe = ToyFluxPipeline(build_transformer(num_layers=1, num_single_layers=1).eval(), build_text_encoder().eval(),
                           build_scheduler(), {"base_size_px": [16, 16]})
    ex = GenerationExplorer(pipe, "a red striped circle at top left", steps=4)  # a first render at construction
    assert ex.last["size"] == (32, 32) and set(ex.last["spectra"]) == {"global", "local", "fused"}
    first = ex.last["image"]
    ex.controls["cutoff"].value = 1.41
    ex.update()
    assert not np.allclose(first, ex.last["image"])
    ex.controls["local_steps"].value = 2
    ex.controls["global_steps"].value = 4  # with 2 local steps only 2 are left: the slider stops there
    assert ex.controls["global_steps"].value == 2 and ex.controls["global_steps"].max == 2
    states = []
    generate = ex._generate
    ex._generate = lambda: (states.append((ex.button.disabled, ex.button.description)), generate())
    ex.update()
    assert states == [(True, "generating...")] and not ex.button.disabled and "error" not in ex.last


def test_the_generation_explorer_says_it_drives_the_toy_pipeline():
    from tiny_pipelines import tiny_flux_pipeline

    with pytest.raises(TypeError, match="toy pipeline"):
        GenerationExplorer(tiny_flux_pipeline(), "a cat")


def test_probe_maps_outline_the_window_each_local_probe_attends_in(saved_cache):
    """The local panels draw the probe's window; the probe lies inside it, and its attention mass outside is 0."""
    import matplotlib.patches as mpatches

    from resdit import plots

    fig = plots.probe_maps_figure(saved_cache, 0, 15)
    local_axes = [ax for ax in fig.axes if ax.get_title().startswith("local")]
    assert len(local_axes) == 2 and all("probe at token row" in ax.get_title() for ax in local_axes)
    probs = saved_cache.get("probs", 0, step=15, branch="local")[0].float().mean(0).numpy()
    for ax, probe, row in zip(local_axes, saved_cache.meta["probes"], probs):
        (rect,) = [p for p in ax.patches if isinstance(p, mpatches.Rectangle)]
        x0, y0 = rect.get_xy()
        r, c = probe
        assert x0 <= c < x0 + rect.get_width() and y0 <= r < y0 + rect.get_height()
        amap = plots.probe_map(row, tuple(saved_cache.meta["grid"]), saved_cache.meta["text_len"])
        inside = np.zeros_like(amap, dtype=bool)
        inside[int(y0):int(y0 + rect.get_height()), int(x0):int(x0 + rect.get_width())] = True
        assert amap[~inside].sum() < 1e-6 < amap[inside].sum()
