import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from analysis.metrics import (RandomFeatures, base_size_crops, border_lines, detail_score, kid, layout_score,
                              seam_score, texture_period)
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
        assert texture_period(out.image, out.masks[0]) == pytest.approx(4.0, rel=0.08)


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
