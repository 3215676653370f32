import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from resdit import ResDiTConfigError, WindowPartition, window_starts
from resdit.geometry import grid_starts


def _rounded_starts(length, window, n):
    return [int(math.floor(k * (length - window) / (n - 1) + 0.5)) for k in range(n)]


def test_window_starts_paper_example():
    assert window_starts(256, 64) == [0, 48, 96, 144, 192]


def test_window_starts_single_window_when_image_fits():
    assert window_starts(64, 64) == [0]
    assert window_starts(10, 64) == [0]


def test_rounding_that_would_leave_a_seam_adds_a_window():
    # 191 / 64: three windows would start at 0, 64 (63.5 rounded), 127 -> a stride of 64, no overlap.
    starts = window_starts(191, 64)
    assert starts == [0, 42, 85, 127]


def test_one_token_window_is_an_error():
    with pytest.raises(ResDiTConfigError, match="at least 2"):
        window_starts(10, 1)


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 600), window=st.integers(2, 128))
def test_mop_properties(length, window):
    starts = window_starts(length, window)
    w = min(window, length)
    assert starts[0] == 0
    assert starts[-1] + w == length
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s:s + w] = True
    assert covered.all()
    assert all(0 < b - a < window for a, b in zip(starts, starts[1:]))
    if length > window:
        n = len(starts)
        assert n > length / window
        # minimal: no smaller count above length/window has all rounded strides below the window
        for m in range(length // window + 1, n):
            s = _rounded_starts(length, window, m)
            assert any(b - a >= window for a, b in zip(s, s[1:]))


@settings(max_examples=100, deadline=None)
@given(h=st.integers(2, 40), w=st.integers(2, 40), bh=st.integers(2, 16), bw=st.integers(2, 16),
       weighting=st.sampled_from(["gaussian", "uniform"]), layout=st.sampled_from(["mop", "grid"]))
def test_splice_weights_are_a_partition_of_unity(h, w, bh, bw, weighting, layout):
    part = WindowPartition.build((h, w), (bh, bw), layout=layout, weighting=weighting, sigma=0.3)
    total = torch.zeros(h * w).index_add_(0, part.index.reshape(-1), part.weights.reshape(-1).float())
    torch.testing.assert_close(total, torch.ones(h * w), atol=1e-6, rtol=0)


def test_splice_of_gathered_tensor_is_identity():
    part = WindowPartition.build((23, 17), (8, 8))
    x = torch.randn(2, 23 * 17, 5)
    torch.testing.assert_close(part.splice(part.gather(x)), x, atol=1e-5, rtol=0)


def test_grid_layout_tiles_without_overlap_when_divisible():
    assert grid_starts(24, 8) == [0, 8, 16]
    assert grid_starts(20, 8) == [0, 8, 12]


def test_nearest_window_offsets_stay_inside_the_window():
    part = WindowPartition.build((37, 29), (8, 8))
    assert part.local_rc.min() >= 0 and part.local_rc.max() < 8
