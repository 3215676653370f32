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
