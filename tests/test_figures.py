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
