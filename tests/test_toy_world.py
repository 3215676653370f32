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


# ------------------------------------------------------------------------------------- toy world v2
def test_v1_prompts_mean_the_same_in_v2_and_v1_scenes_render_as_before():
    v1, v2 = parse_prompt("a red striped circle at top left", "v1"), parse_prompt("a red striped circle at top left", "v2")
    assert (v1.objects[0].place, v1.objects[0].cell) == (v2.objects[0].place, v2.objects[0].cell)
    assert v1.ground == v2.ground == "plain"
    import math

    rng = np.random.default_rng(0)
    scene = random_scene(rng)  # the v1 sampler, unchanged: radius in v1's range, always a place
    assert scene.world == "v1" and scene.objects[0].place is not None and 0.13 <= scene.objects[0].radius <= 0.18
    out = render(scene, 32, 32)
    assert out.image.dtype == np.float32 and not math.isnan(float(out.image.sum()))


def test_v2_grammar_leaves_place_and_ground_optional_and_refuses_misplaced_grounds():
    scene = parse_prompt("a blue checkered square on tiles", "v2")
    assert scene.objects[0].place is None and scene.ground == "tiles" and scene.prompt.endswith("on tiles")
    two = parse_prompt("a red striped circle at top left and a green checkered square at right on waves", "v2")
    assert len(two.objects) == 2 and two.ground == "waves"
    for bad in ("a red striped circle on tiles at top left", "a red striped circle on carpet",
                "a red striped circle and a blue striped square"):
        with pytest.raises(PromptError):
            parse_prompt(bad, "v2")
    with pytest.raises(PromptError, match="needs a place"):
        parse_prompt("a red striped circle", "v1")


def test_v2_scenes_hold_close_ups_larger_than_the_canvas_and_textured_grounds():
    rng = np.random.default_rng(1)
    scenes = [random_scene(rng, 0.1, "v2") for _ in range(400)]
    free = [o for s in scenes for o in s.objects if o.place is None]
    assert len(free) > 100 and max(o.radius for o in free) > 0.8  # close-ups: crops of an object
    covered = [render(s, 32, 32).masks[0].mean() for s in scenes if s.objects[0].radius > 0.8]
    assert max(covered) > 0.95  # some canvases are all object: a window of a large object is in distribution
    assert {s.ground for s in scenes} == {"plain", "tiles", "waves"}
    assert 0.3 < np.mean([s.ground_named for s in scenes]) < 0.9
    assert 0.45 < np.mean([s.objects[0].place is not None for s in scenes]) < 0.8


def test_v2_textures_show_at_least_three_periods_across_a_typical_object_at_the_base_size():
    from resdit.toy.world import WORLDS, texture_period

    diameter = 2 * WORLDS["v2"].canonical_radius * 32
    assert all(diameter / texture_period(t, "v2") >= 3 for t in ("striped", "checkered"))
    assert texture_period("striped", "v1") == 4.0  # v1 unchanged


def test_grounds_have_a_fixed_pixel_period_at_any_size():
    from resdit.toy.world import GROUND_PERIOD_PX

    scene = parse_prompt("a red striped circle at top left on waves", "v2")
    for size in (32, 96):
        image = render(scene, size, size).image.mean(0)
        column = image[:, -4] - image[:, -4].mean()  # right edge: ground only
        spectrum = np.abs(np.fft.rfft(column, n=960)) ** 2
        period = 960 / (np.argmax(spectrum[1:]) + 1)
        assert period == pytest.approx(GROUND_PERIOD_PX["waves"], rel=0.08)


def test_a_v1_text_encoder_refuses_words_it_never_saw():
    from resdit.toy.text import tokenize
    from resdit.toy.world import VOCABULARY_V1

    with pytest.raises(ValueError, match="trained without the words"):
        tokenize(["a red striped circle at top left on tiles"], vocab_size=len(VOCABULARY_V1), world="v2")
    ids = tokenize(["a red striped circle at top left"], vocab_size=len(VOCABULARY_V1))
    assert int(ids.max()) < len(VOCABULARY_V1)
