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
       weighting=st.sampled_from(["gaussian", "uniform", "feather"]), layout=st.sampled_from(["mop", "grid"]))
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


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 600), window=st.integers(3, 128), align=st.integers(1, 8))
def test_aligned_starts(length, window, align):
    """Aligned starts: multiples of align but the last (which ends at the border), covering, overlapping, and
    the smallest count whose evenly spread starts, rounded to multiples of align, keep every stride under the
    window."""
    if align >= window:
        if length > window:
            with pytest.raises(ResDiTConfigError, match="window_align"):
                window_starts(length, window, align)
        return
    starts = window_starts(length, window, align)
    w = min(window, length)
    assert starts[0] == 0 and starts[-1] + w == length
    assert all(s % align == 0 for s in starts[:-1])
    assert all(0 < b - a < window for a, b in zip(starts, starts[1:]))
    if length > window:
        span = length - window
        for m in range(length // window + 1, len(starts)):
            s = [align * int(math.floor(k * span / (m - 1) / align + 0.5)) for k in range(m - 1)] + [span]
            assert not all(0 < b - a < window for a, b in zip(s, s[1:]))


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 600), window=st.integers(3, 96), align=st.integers(1, 4), overlap=st.integers(1, 40))
def test_starts_with_a_least_overlap(length, window, align, overlap):
    """With ``min_overlap``: every two neighbours share at least that many tokens, starts aligned as before, and
    (for starts on every token or every other one) as few windows as any layout of that overlap and alignment."""
    if length <= window:
        assert window_starts(length, window, align, overlap) == [0]
        return
    if align >= window or overlap >= window or align > window - overlap:
        with pytest.raises(ResDiTConfigError, match="window_align|window_overlap"):
            window_starts(length, window, align, overlap)
        return
    starts = window_starts(length, window, align, overlap)
    assert starts[0] == 0 and starts[-1] + window == length
    assert all(s % align == 0 for s in starts[:-1])
    assert all(0 < b - a <= window - overlap for a, b in zip(starts, starts[1:]))
    span, stride = length - window, window - overlap
    aligned = align * (stride // align)  # the longest stride between two aligned starts (all but the last one's)
    fewest = 2 if span <= stride else max(math.ceil(span / stride), math.ceil((span - stride) / aligned) + 1) + 1
    assert len(starts) >= fewest
    if align <= 2:  # the defaults' alignments: no layout of that overlap and alignment has fewer windows
        assert len(starts) == fewest


def test_a_least_overlap_widens_only_the_scales_whose_windows_overlap_less():
    """The toy's 16-token windows: 2x, 3x and 4x overlap by 4 or more already, so a least overlap of 4 leaves
    them as they are (their study rows stand for it); at 8x minimum-overlap windows share 2 tokens (9 a side at
    stride 14), with 4 they are 11 a side, overlapping by 4-6."""
    for scale in (2, 3, 4):
        assert window_starts(16 * scale, 16, 2, 4) == window_starts(16 * scale, 16, 2)
    assert window_starts(128, 16, 2) == list(range(0, 113, 14))
    wide = window_starts(128, 16, 2, 4)
    assert wide == [0, 12, 22, 34, 44, 56, 68, 78, 90, 100, 112]
    assert {16 - (b - a) for a, b in zip(wide, wide[1:])} == {4, 6}
    with pytest.raises(ResDiTConfigError, match="grid layout"):  # hard tiles have no overlap to widen
        WindowPartition.build((128, 128), (16, 16), layout="grid", min_overlap=4)
    part = WindowPartition.build((128, 128), (16, 16), weighting="feather", align=2, min_overlap=4)
    assert part.num_windows == 121 and part.starts == (wide, wide)
    total = torch.zeros(128 * 128).index_add_(0, part.index.reshape(-1), part.weights.reshape(-1))
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def test_mode_resdit_overlaps_its_windows_by_a_quarter_per_axis_and_no_other_mode_moves():
    """mode resdit's default least overlap is a quarter of the window on each axis: on the toy's 16-token windows
    the windows of 2x, 3x and 4x are the minimum-overlap ones (outputs there unchanged), 8x has 11 a side; FLUX.1's
    64-token windows at 3072^2 and 4096^2 keep their count; a 16 x 8 window overlaps by 4 rows and 2 columns;
    resdit_fast, resdit_paper and tiling keep the minimum overlap."""
    from resdit import ResDiTConfig
    from resdit.fusion import build_partition
    from resdit.geometry import least_overlap

    assert [least_overlap("quarter", w) for w in (2, 3, 4, 16, 64, 65)] == [1, 1, 1, 4, 16, 16]
    defaults, mop = ResDiTConfig(mode="resdit"), ResDiTConfig(mode="resdit", window_overlap=1)
    for scale in (2, 3, 4):
        grid = (16 * scale, 16 * scale)
        assert build_partition(defaults, grid, (16, 16)).starts == build_partition(mop, grid, (16, 16)).starts
    assert build_partition(defaults, (128, 128), (16, 16)).starts == (window_starts(128, 16, 2, 4),) * 2
    for side in (192, 256):  # FLUX.1 at 3072^2 and 4096^2: as many windows as the minimum overlap's
        assert len(window_starts(side, 64, 2, "quarter")) == len(window_starts(side, 64, 2))
    part = build_partition(defaults, (96, 96), (16, 8))
    assert part.starts == (window_starts(96, 16, 2, 4), window_starts(96, 8, 2, 2))
    assert window_starts(96, 8, 2, 2) != window_starts(96, 8, 2, 4)
    for mode in ("resdit_fast", "resdit_paper", "tiling"):
        config = ResDiTConfig(mode=mode)
        assert config.overlap == 1
        assert build_partition(config, (128, 128), (16, 16)).starts == (window_starts(128, 16, config.align),) * 2
    with pytest.raises(ResDiTConfigError, match="quarter"):
        ResDiTConfig(mode="resdit", window_overlap="half")


def test_align_one_is_the_minimum_overlap_partition():
    for length in range(1, 300):
        for window in (2, 7, 16, 64):
            assert window_starts(length, window, 1) == window_starts(length, window)


def test_even_starts_change_only_odd_strides_on_the_toy_scales():
    """The toy's 16-token windows: even starts leave 2x, 4x and 8x as they were (so their study rows stand for
    the aligned defaults) and make 3x's strides (11, 10, 11) even."""
    for scale in (2, 4, 8):
        assert window_starts(16 * scale, 16, 2) == window_starts(16 * scale, 16)
    assert window_starts(48, 16) == [0, 11, 21, 32]
    assert window_starts(48, 16, 2) == [0, 10, 22, 32]
    # FLUX.1 at 3072^2 and 4096^2 (64-token windows): as many windows as without alignment
    for side in (3072, 4096):
        assert len(window_starts(side // 16, 64, 2)) == len(window_starts(side // 16, 64))


@pytest.mark.parametrize("align, kept", [(1, False), (2, True)])
def test_splice_keeps_a_texture_drawn_in_phase_with_each_window_only_on_even_starts(align, kept):
    """The mechanism window_align answers: each window draws a two-token texture in phase with its own origin (as
    a model does that learnt the texture in phase with its canvas' edge). Spliced over 48 tokens (3x of 16), odd
    strides put neighbours in opposite phases and the splice cancels the texture where they overlap."""
    part = WindowPartition.build((2, 48), (2, 16), align=align)
    stripes = torch.cos(math.pi * torch.arange(16.0)).repeat(2)  # +1, -1, ... along each window's columns
    windows = stripes.expand(part.num_windows, 32)[None, :, :, None]
    amplitude = part.splice(windows)[0, :, 0].abs()  # the texture's amplitude, token by token
    if kept:
        assert torch.allclose(amplitude, torch.ones(96), atol=1e-5)
    else:
        assert amplitude.min() < 0.1  # cancelled where two windows of opposite phase weigh alike


def _spliced_offsets(grid, base, weighting):
    """Every window carrying its own constant (0, 1, 0, 1, ... by window), spliced: [H, W]."""
    part = WindowPartition.build(grid, base, weighting=weighting, align=2)
    values = (torch.arange(part.num_windows) % 2).float()[:, None].expand_as(part.weights)
    out = torch.zeros(grid[0] * grid[1]).index_add_(0, part.index.reshape(-1), (part.weights * values).reshape(-1))
    return out.reshape(grid)


@pytest.mark.parametrize("grid", [(64, 64), (48, 48), (40, 40), (32, 64)])
def test_feathered_splice_moves_the_step_off_the_window_borders(grid):
    # GWS's Gaussian is cut off at the window's edge, so a window's weight jumps there (exp(-1/2) of its peak at
    # width 0.5); the feathered weights fall to zero first, so windows that disagree blend inside the overlap
    # instead: the step across a border line is small, the transition as a whole is as short as the overlap.
    from analysis.metrics import border_lines

    at_borders, anywhere = {}, {}
    for weighting in ("gaussian", "feather"):
        field = _spliced_offsets(grid, (16, 16), weighting)
        dy, dx = field.diff(dim=0).abs(), field.diff(dim=1).abs()
        rows = [p - 1 for p in border_lines(window_starts(grid[0], 16, 2), 16, grid[0])]
        cols = [p - 1 for p in border_lines(window_starts(grid[1], 16, 2), 16, grid[1])]
        at_borders[weighting] = max(float(dy[rows].max()), float(dx[:, cols].max()))
        anywhere[weighting] = max(float(dy.max()), float(dx.max()))
    assert at_borders["gaussian"] > 0.3 and at_borders["feather"] < 0.1
    assert anywhere["feather"] > 0.5 * anywhere["gaussian"]  # the step is moved, not removed


def test_feathered_weights_are_one_where_one_window_covers_and_zero_at_inner_edges():
    part = WindowPartition.build((64, 64), (16, 16), weighting="feather", align=2)
    cover = torch.zeros(64 * 64).index_add_(0, part.index.reshape(-1), torch.ones(part.index.numel()))
    w = torch.zeros(64 * 64).index_add_(0, part.index[0], part.weights[0])  # window 0, scattered
    alone = (cover == 1) & (w > 0)
    assert alone.any() and torch.allclose(w[alone], torch.ones(int(alone.sum())))
    w0 = part.weights[0].reshape(16, 16)
    assert float(w0[0, 0]) == 1.0  # the image's corner: no neighbour, no ramp
    assert float(w0[8, -1]) < 0.05 and float(w0[-1, 8]) < 0.05  # the edges inside the image: almost nothing left


def test_one_window_feathered_is_the_identity():
    part = WindowPartition.build((16, 16), (16, 16), weighting="feather")
    assert part.num_windows == 1 and torch.equal(part.weights, torch.ones_like(part.weights))
