import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from analysis.metrics import (RandomFeatures, base_size_crops, border_lines, detail_score, kid, layout_score,
                              seam_score, measured_period)
from resdit.toy.world import parse_prompt, random_scene, render


def test_two_drawn_objects_count_two_and_fail_layout():
    scene = parse_prompt("a red striped circle at top left and a red checkered square at bottom right")
    out = render(scene, 64, 64)
    score = layout_score(out.image, scene.objects[0], out.masks[0])
    assert score.count == 2 and not score.correct


def test_exact_render_has_perfect_layout():
    scene = parse_prompt("a green striped triangle at right")
    out = render(scene, 96, 96)
    score = layout_score(out.image, scene.objects[0], out.masks[0])
    assert score.correct and score.centre_error < 0.03 and score.size_ratio == pytest.approx(1, abs=0.1)


def test_blur_lowers_the_detail_score():
    scene = parse_prompt("a blue striped square at center")
    out = render(scene, 128, 128)
    blurred = np.stack([gaussian_filter(c, 1.5) for c in out.image])
    sharp = detail_score(out.image, out.image, scene.objects[0], out.masks[0])
    assert sharp == pytest.approx(1.0)
    assert detail_score(blurred, out.image, scene.objects[0], out.masks[0]) < 0.3 * sharp


def test_detail_is_undefined_where_the_exact_render_has_no_texture_band():
    scene = parse_prompt("a blue striped square at center")
    out = render(scene, 128, 128)
    flat = np.stack([np.where(out.masks[0], 0.8, 0.2) for _ in range(3)])  # the object without its stripes
    noisy = flat + np.random.default_rng(0).normal(0, 0.1, flat.shape)
    assert np.isnan(detail_score(noisy, flat, scene.objects[0], out.masks[0]))  # no ratio against nothing
    assert np.isfinite(detail_score(noisy, out.image, scene.objects[0], out.masks[0]))


def test_texture_period_is_measured_in_pixels_at_any_size():
    scene = parse_prompt("a yellow striped circle at center")
    for size in (64, 128):
        out = render(scene, size, size)
        assert measured_period(out.image, out.masks[0]) == pytest.approx(4.0, rel=0.08)


def test_a_hard_seam_on_a_window_border_raises_the_seam_score():
    image = render(random_scene(np.random.default_rng(0)), 64, 64).image
    rows = border_lines([0, 24, 48], 16, 64 // 2, px_per_token=2)
    cols = rows
    clean = seam_score(image, rows, cols)
    seamed = image.copy()
    seamed[:, rows[0]:] += 0.1
    assert seam_score(seamed, rows, cols) > 3 * clean


def test_border_lines_skip_the_image_edges():
    assert border_lines([0, 8, 16], 16, 32) == [8, 16, 24]  # starts 8, 16 and ends 16, 24; not 0 or 32


def test_kid_separates_distributions():
    rng = np.random.default_rng(0)
    a = np.stack([render(random_scene(rng), 32, 32).image for _ in range(24)])
    b = np.stack([render(random_scene(rng), 32, 32).image for _ in range(24)])
    blurred = np.stack([[gaussian_filter(c, 2) for c in im] for im in b])
    extract = RandomFeatures()
    same = kid(extract(a), extract(b))
    different = kid(extract(a), extract(blurred))
    assert different > 5 * abs(same)


def test_base_size_crops_have_the_base_size():
    images = np.zeros((2, 3, 64, 48))
    assert base_size_crops(images, (32, 32), per_image=3).shape == (6, 3, 32, 32)


# ------------------------------------------------------------------------------------- layout-free detail, noise
def _scene(prompt, world="v2"):
    return parse_prompt(prompt, world)


def test_a_crisp_misplaced_object_scores_full_detail_and_no_layout():
    from analysis.metrics import drawn_detail

    asked = _scene("a red striped circle at top left")
    drawn = _scene("a red striped circle at bottom right")  # the same object, drawn in the wrong cell
    truth, image = render(asked, 128, 128), render(drawn, 128, 128).image
    obj = asked.objects[0]
    assert not layout_score(image, obj, truth.masks[0], "v2").correct
    assert drawn_detail(image, truth.image, obj, truth.masks[0], "v2") == pytest.approx(1.0, abs=0.15)
    assert detail_score(image, truth.image, obj, truth.masks[0], "v2") < 0.2  # the in-place reading misses it


def test_a_blurred_well_placed_object_scores_layout_and_little_detail():
    from analysis.metrics import drawn_detail

    scene = _scene("a blue striped square at center")
    truth = render(scene, 128, 128)
    blurred = np.stack([gaussian_filter(c, 1.5) for c in truth.image])
    obj = scene.objects[0]
    assert layout_score(blurred, obj, truth.masks[0], "v2").correct
    assert drawn_detail(blurred, truth.image, obj, truth.masks[0], "v2") < 0.2


def test_white_noise_scores_as_noise_not_as_detail():
    from analysis.metrics import drawn_detail, noise_score

    scene = _scene("a yellow checkered circle at center")
    truth = render(scene, 128, 128)
    obj = scene.objects[0]
    flat = np.stack([gaussian_filter(c, 2.0) for c in truth.image])  # the texture gone ...
    noisy = flat + np.random.default_rng(0).normal(0, 0.1, flat.shape)  # ... and speckle instead
    assert noise_score(truth.image, truth.image) == 0.0
    assert noise_score(noisy, truth.image) > 0.5 * 0.1 ** 2 / 3  # grey of 3 independent channels: s^2 / 3
    assert noise_score(flat, truth.image) == 0.0
    assert drawn_detail(noisy, truth.image, obj, truth.masks[0], "v2") < 0.3
    assert noise_score(truth.image, truth.image) < noise_score(noisy, truth.image)


def test_ground_detail_reads_the_ground_texture_away_from_objects():
    from analysis.metrics import ground_detail

    scene = _scene("a green striped triangle at left on tiles")
    truth = render(scene, 96, 96)
    blurred = np.stack([gaussian_filter(c, 2.0) for c in truth.image])
    assert ground_detail(truth.image, truth.image, scene, truth.masks) == pytest.approx(1.0)
    assert ground_detail(blurred, truth.image, scene, truth.masks) < 0.2
    plain = _scene("a green striped triangle at left")
    out = render(plain, 96, 96)
    assert np.isnan(ground_detail(out.image, out.image, plain, out.masks))


def test_a_prompt_without_a_place_is_correct_with_one_object_anywhere():
    scene = _scene("a red checkered square")
    elsewhere = render(_scene("a red checkered square at top right"), 64, 64).image
    assert layout_score(elsewhere, scene.objects[0], render(scene, 64, 64).masks[0], "v2").correct


def test_an_object_broken_into_specks_reads_as_fragments_not_as_gone():
    from analysis.metrics import FRAGMENT_MIN_PIXELS, colour_coverage

    scene = _scene("a red checkered square at center")
    truth = render(scene, 128, 128)
    obj = scene.objects[0]
    whole = colour_coverage(truth.image, obj, truth.masks[0])
    assert whole.fragments == 1 and whole.coverage == pytest.approx(1.0, abs=0.1)
    # keep the object's pixels only on a sparse lattice of 3x3 specks: the object count drops to 0 ...
    ys, xs = np.mgrid[:128, :128]
    specks = (ys % 8 < 3) & (xs % 8 < 3)
    broken = np.where(truth.masks[0] & ~specks, truth.image[:, :1, :1], truth.image)  # background colour
    broken = np.where((truth.masks[0] & specks)[None], np.array([0.9, 0.1, 0.1])[:, None, None], broken)
    assert layout_score(broken, obj, truth.masks[0], "v2").count == 0
    # ... and coverage and fragments say what happened: many pieces, a fraction of the area
    cover = colour_coverage(broken, obj, truth.masks[0])
    assert cover.fragments > 10 and 0.05 < cover.coverage < 0.3
    assert FRAGMENT_MIN_PIXELS <= 9  # a 3x3 speck counts


def test_an_object_too_faint_for_its_colour_has_no_coverage():
    from analysis.metrics import colour_coverage

    scene = _scene("a blue striped circle at left")
    truth = render(scene, 96, 96)
    grey = truth.image.mean(0, keepdims=True)
    faint = 0.8 * grey + 0.2 * truth.image  # the colour washed out towards grey
    cover = colour_coverage(faint, scene.objects[0], truth.masks[0])
    assert cover.coverage < 0.05 and cover.fragments == 0


def test_overlap_reader_sees_seams_the_border_reader_misses_under_a_feathered_splice():
    # every window of a smooth image gets its own colour offset, spliced by GWS or by feathered weights
    import torch

    from analysis.metrics import border_lines, overlap_lines, seam_score
    from resdit import WindowPartition
    from resdit.geometry import window_starts

    n, w = 64, 16
    yy, xx = np.mgrid[0:n, 0:n] / n
    smooth = np.stack([0.3 + 0.2 * yy, 0.4 + 0.1 * xx, 0.5 + 0.0 * xx])
    starts = window_starts(n, w, 2)
    on_border, in_overlap = border_lines(starts, w, n), overlap_lines(starts, w, n)
    read = {}
    for weighting in ("gaussian", "feather"):
        part = WindowPartition.build((n, n), (w, w), weighting=weighting, align=2)
        values = (torch.rand(part.num_windows, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.2
        out = torch.zeros(n * n, 3).index_add_(0, part.index.reshape(-1),
                                               (part.weights[..., None] * values[:, None]).reshape(-1, 3))
        image = smooth + out.reshape(n, n, 3).permute(2, 0, 1).numpy()
        read[weighting] = (seam_score(image, on_border, on_border), seam_score(image, in_overlap, in_overlap))
    assert read["gaussian"][0] > 3 and read["gaussian"][1] > 2  # both readers see GWS's seams
    assert read["feather"][0] < 0.5 * read["gaussian"][0]  # the border reader hardly sees the feathered ones
    assert read["feather"][1] > 2  # the overlap reader does


def test_the_seam_reader_follows_the_windows_that_ran_with_a_least_overlap():
    """Windows of 16 tokens over 128 (8x on the toy, 2 px a token) with an overlap of 4: a seam made on those
    windows (a colour offset each, GWS) reads on their borders, not on the minimum-overlap ones'."""
    import torch

    from analysis.metrics import seam_score
    from analysis.scoring import window_borders
    from resdit import WindowPartition

    n, w, px = 128, 16, 2
    part = WindowPartition.build((n, n), (w, w), align=2, min_overlap=4)
    values = (torch.rand(part.num_windows, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.2
    out = torch.zeros(n * n, 3).index_add_(0, part.index.reshape(-1),
                                           (part.weights[..., None] * values[:, None]).reshape(-1, 3))
    tokens = 0.4 + out.reshape(n, n, 3).permute(2, 0, 1).numpy()
    image = tokens.repeat(px, axis=1).repeat(px, axis=2)
    wide, mop = (window_borders("mop", n * px, w * px, px, 2, o) for o in (4, 1))
    assert wide != mop and len(wide) > len(mop)
    assert seam_score(image, wide, wide) > 2 * seam_score(image, mop, mop)
