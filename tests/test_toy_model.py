"""The shipped toy model: quality at its base size, and ResDiT's identity there."""

import numpy as np
import pytest
import torch
from PIL import Image

from resdit.cli import main
from resdit.toy import load_pipeline
from resdit.toy.evaluate import evaluation_prompts, generate_batch, score


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline()


def test_shipped_model_draws_the_prompted_object_at_its_base_size(pipe):
    prompts = evaluation_prompts(64, seed=0)
    images = generate_batch(pipe, prompts, *pipe.base_size, steps=20, seed=0)
    result = score(images, prompts)
    assert result["accuracy"] >= 0.90, result


def test_shipped_model_was_trained_up_to_its_base_size_only(pipe):
    """The training sampler, with the shipped run's seed and square share, draws canvases up to the base size and
    never beyond it (so every scale above 1 is out of distribution)."""
    import numpy as np

    from resdit.toy.train import sample_canvas

    card = pipe.card
    rng = np.random.default_rng(card["train"]["seed"])
    sizes = np.array([sample_canvas(rng, card["train"]["p_square"]) for _ in range(5000)])
    assert sizes.max() == card["base_size_px"][0] == 32 and sizes.min() >= card["min_side_px"]
    assert (sizes % 2 == 0).all() and len({tuple(s) for s in sizes}) > 10  # many sizes, all at most the base


def test_resdit_and_direct_give_identical_images_at_base_size(tmp_path):
    paths = {}
    for mode in ("resdit", "direct"):
        paths[mode] = tmp_path / f"{mode}.png"
        assert main(["generate", "--prompt", "a green checkered triangle at bottom left", "--height", "32", "--width",
                     "32", "--mode", mode, "--seed", "3", "--steps", "12", "--out", str(paths[mode])]) == 0
    a, b = (np.asarray(Image.open(paths[m])) for m in ("resdit", "direct"))
    assert a.shape == (32, 32, 3) and np.array_equal(a, b)


def test_same_seed_same_image_other_seed_other_image(pipe):
    def sample(seed):
        return pipe("a red striped circle at center", num_inference_steps=8, output_type="np",
                    generator=torch.Generator().manual_seed(seed)).images

    assert np.array_equal(sample(1), sample(1)) and not np.array_equal(sample(1), sample(2))
