import pytest
import torch

import resdit
from resdit import ResDiTConfig
from resdit.toy.model import build_scheduler, build_text_encoder, build_transformer
from resdit.toy.pipeline import ToyFluxPipeline


@pytest.fixture(scope="module")
def toy_pipe():
    torch.manual_seed(0)
    return ToyFluxPipeline(build_transformer(num_layers=1, num_single_layers=1).eval(), build_text_encoder().eval(),
                           build_scheduler(), {"base_size_px": [16, 16]})


PROMPT = "a red striped circle at top left"


def test_upscale_is_the_base_image_resized(toy_pipe):
    cfg = ResDiTConfig(base_size=(16, 16), mode="upscale")
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    up = resdit.generate(toy_pipe, PROMPT, cfg, 32, 32, num_inference_steps=3, latents=noise)
    base = toy_pipe(PROMPT, height=16, width=16, num_inference_steps=3, output_type="pt",
                    latents=torch.nn.functional.avg_pool2d(noise, 2) * 2).images
    resized = torch.nn.functional.interpolate(base, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(up, resized, atol=1e-6, rtol=0)


def test_two_stage_starts_from_the_upsampled_base_image(toy_pipe):
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    up = resdit.generate(toy_pipe, PROMPT, ResDiTConfig(base_size=(16, 16), mode="upscale"), 32, 32,
                         num_inference_steps=10, latents=noise)
    weak = resdit.generate(toy_pipe, PROMPT, ResDiTConfig(base_size=(16, 16), mode="two_stage", strength=0.1), 32, 32,
                           num_inference_steps=10, latents=noise)
    strong = resdit.generate(toy_pipe, PROMPT, ResDiTConfig(base_size=(16, 16), mode="two_stage", strength=1.0),
                             32, 32, num_inference_steps=10, latents=noise)
    assert (weak - up).abs().mean() < (strong - up).abs().mean()
    assert resdit.get_state(toy_pipe) is None


def test_img2img_with_full_strength_equals_text_to_image(toy_pipe):
    noise = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    a = toy_pipe(PROMPT, height=16, width=16, num_inference_steps=4, latents=noise, output_type="pt").images
    b = toy_pipe(PROMPT, height=16, width=16, num_inference_steps=4, latents=noise, output_type="pt",
                 image=torch.rand(1, 3, 16, 16), strength=1.0).images
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_eval_toy_runs_two_pass_modes_as_generate_does(tiny_toy):
    import numpy as np

    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import evaluate, evaluation_prompts

    pipe = load_pipeline(tiny_toy)
    seen = []
    rows = evaluate(pipe, ["two_stage", "upscale"], [2.0], n_prompts=2, steps=4, progress=False,
                    readers={"capture": lambda images, *_: seen.append(images) or {}})
    assert [r["mode"] for r in rows] == ["two_stage", "upscale"]
    prompts = evaluation_prompts(2, world=pipe.world)
    noise = torch.stack([torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(2)])
    for mode, images in zip(("two_stage", "upscale"), seen):
        cfg = ResDiTConfig(base_size=tuple(pipe.base_size), mode=mode)
        np.testing.assert_array_equal(images, resdit.generate(pipe, prompts, cfg, 64, 64, 4, latents=noise).numpy())
    assert np.abs(seen[0] - seen[1]).max() > 1e-3  # the second pass ran
