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
