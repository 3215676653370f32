import numpy as np
import pytest

from resdit.toy.text import tokenize
from resdit.toy.world import (TEXTURE_PERIOD_PX, PromptError, detect, parse_prompt, prompt_correct, random_scene,
                              render)


def _levels_by_phase(image, mask, period):
    """Brightness of interior object pixels grouped by x mod period: (means, largest spread in a group)."""
    from scipy.ndimage import binary_erosion

    inner = binary_erosion(mask, iterations=1)
    ys, xs = np.nonzero(inner)
    values = image.mean(0)[ys, xs]
    groups = [values[xs % period == k] for k in range(period)]
    return np.array([g.mean() for g in groups]), max(np.ptp(g) for g in groups)


def test_object_geometry_scales_with_the_canvas_and_texture_period_does_not():
    scene = parse_prompt("a red striped square at center")
    small, large = render(scene, 32, 32), render(scene, 128, 128)
    for out, size in ((small, 32), (large, 128)):
        ys, xs = np.nonzero(out.masks[0])
        assert xs.mean() / size == pytest.approx(0.5, abs=0.02) and ys.mean() / size == pytest.approx(0.5, abs=0.02)
        side = scene.objects[0].radius * 0.886 * 2  # canvas fraction
        # extents agree with the analytic side to one pixel at either size
        assert (xs.max() - xs.min() + 1) / size == pytest.approx(side, abs=1 / size)
    assert large.masks[0].sum() / small.masks[0].sum() == pytest.approx(16, rel=0.3)
    # Striped texture depends on x mod 4 px only, at both sizes, with the same levels.
    period = int(TEXTURE_PERIOD_PX["striped"])
    small_levels, small_spread = _levels_by_phase(small.image, small.masks[0], period)
    large_levels, large_spread = _levels_by_phase(large.image, large.masks[0], period)
    assert small_spread < 1e-5 and large_spread < 1e-5
    np.testing.assert_allclose(small_levels, large_levels, atol=1e-5)
    assert np.ptp(large_levels) > 0.1


def test_detector_finds_ground_truth_objects():
    rng = np.random.default_rng(1)
    sizes = [(16, 16), (32, 32), (24, 32), (64, 64), (128, 96)]
    hits = [prompt_correct(render(s, *sizes[i % 5]).image, s.objects[0])
            for i, s in enumerate(random_scene(rng) for _ in range(100))]
    assert np.mean(hits) >= 0.98


def test_detector_counts_two_objects_of_one_colour():
    scene = parse_prompt("a blue striped circle at top left and a blue checkered square at bottom right")
    assert detect(render(scene, 64, 64).image, "blue").count == 2
    assert detect(render(scene, 64, 64).image, "red").count == 0


def test_background_alone_has_no_objects():
    scene = random_scene(np.random.default_rng(3))
    empty = type(scene)((), scene.background, scene.background_angle)
    image = render(empty, 64, 64).image
    assert all(detect(image, c).count == 0 for c in ("red", "green", "blue", "yellow"))


@pytest.mark.parametrize("prompt,match", [
    ("a purple striped circle at top left", "purple"),
    ("a red striped circle at the top", "the"),
    ("a red circle at top", "Cannot parse"),
    ("a red striped circle at top and a blue striped circle at top", "different places"),
])
def test_bad_prompts_get_clear_errors(prompt, match):
    with pytest.raises(PromptError, match=match):
        parse_prompt(prompt)


def test_tokenizer_rejects_unknown_words_with_the_vocabulary():
    with pytest.raises(PromptError, match="toy world knows"):
        tokenize(["a magenta striped circle at top"])


def test_prompt_round_trips_through_the_parser():
    scene = random_scene(np.random.default_rng(5), p_two=1.0)
    assert parse_prompt(scene.prompt).prompt == scene.prompt
