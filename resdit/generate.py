"""One call for every mode, including the two-pass baselines.

``generate`` applies a mode for one pipeline call and removes it; for ``two_stage`` and
``upscale`` it runs the base-size pass first:

* ``upscale``: generate at the base size, bicubic upsample (the "no better than a resize" check);
* ``two_stage``: generate at the base size, upsample, re-noise to ``strength`` and denoise
  at the target size with scaled positions (SDEdit, Meng et al. 2022: the skeleton that
  HiFlow, I-Max and DemoFusion refine). Its cost counts both passes.

Example:
    >>> images = generate(pipe, "a red striped circle at top left", ResDiTConfig(base_size=(32, 32),
    ...                   mode="two_stage"), 64, 64, num_inference_steps=20, seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .apply import enabled
from .config import ResDiTConfig, ResDiTConfigError
from .schedule import check_steps


def _noise(shape, seed: int, device) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)


def _base_latents(latents: torch.Tensor, base: tuple[int, int]) -> torch.Tensor:
    """Unit-variance noise at the base size derived from the target-size noise (area pooling x k)."""
    h, w = latents.shape[-2:]
    if h % base[0] or w % base[1]:
        return F.interpolate(latents, size=base, mode="nearest")
    kh, kw = h // base[0], w // base[1]
    return F.avg_pool2d(latents, (kh, kw)) * (kh * kw) ** 0.5


def _img2img(pipe, prompt, image, height, width, steps, strength, latents, generator):
    if hasattr(pipe, "card"):  # the toy pipeline denoises pixels directly
        return pipe(prompt=prompt, height=height, width=width, num_inference_steps=steps, image=image,
                    strength=strength, latents=latents, generator=generator, output_type="pt").images
    from .families import family_of

    second = family_of(pipe.transformer)[0].img2img_pipeline(pipe)
    return second(prompt=prompt, image=image, height=height, width=width, num_inference_steps=steps, strength=strength,
                  generator=generator, output_type="pt").images


def generate(pipe, prompt, config: ResDiTConfig, height: int, width: int, num_inference_steps: int = 35,
             seed: int | None = 0, latents: torch.Tensor | None = None, local_prompt=None, **call_kwargs) -> torch.Tensor:
    """Images ``[B, 3, height, width]`` in [0, 1] for any mode.

    Args:
        latents: the toy pipeline's noise ``[B, 3, height, width]`` (overrides ``seed``).
        seed: seeds a ``torch.Generator`` (ignored when ``latents`` is given).
        local_prompt: the local-only phase's prompt (:mod:`resdit.local_prompt`; a schedule with that phase).
    """
    from .apply import check_request, pixels_per_token

    if local_prompt is not None:
        from .local_prompt import check_mode

        check_mode(config)

    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ResDiTConfigError(f"num_inference_steps={num_inference_steps!r} must be a whole number >= 1.")
    check_steps(config, num_inference_steps)
    check_request(config, None, height, width, pixels_per_token(pipe))  # before any denoising
    spec = config.spec
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    common = dict(num_inference_steps=num_inference_steps, output_type="pt", **call_kwargs)
    if latents is not None:
        common["latents"] = latents
    elif generator is not None:
        common["generator"] = generator
    if spec.two_pass is None:
        with enabled(pipe, config, local_prompt=local_prompt):
            return pipe(prompt=prompt, height=height, width=width, **common).images
    if config.base_size is None:
        raise ResDiTConfigError(f"Mode {config.mode!r} needs ResDiTConfig(base_size=...).")
    if spec.two_pass != "upscale" and not hasattr(pipe, "card"):
        from .families import family_of

        family_of(pipe.transformer)[0].check_img2img()  # before the first pass
    base = config.base_size
    first_kwargs = dict(common)
    if latents is not None:
        first_kwargs["latents"] = _base_latents(latents, base)
    elif seed is not None:
        first_kwargs["generator"] = torch.Generator().manual_seed(seed)
    first = pipe(prompt=prompt, height=base[0], width=base[1], **first_kwargs).images
    upsampled = F.interpolate(first.float(), size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    if spec.two_pass == "upscale":
        return upsampled
    second = ResDiTConfig(base_size=base, mode="scaled_pe", proportional_attention=config.proportional_attention,
                          mu=config.mu)  # the first pass ran at the base size, where the shift is the base one
    noise = latents if latents is not None else (None if seed is None else _noise(
        (upsampled.shape[0], 3, height, width), seed + 1, upsampled.device))
    with enabled(pipe, second):
        gen = None if seed is None else torch.Generator().manual_seed(seed + 1)
        return _img2img(pipe, prompt, upsampled, height, width, num_inference_steps, config.strength,
                        noise if hasattr(pipe, "card") else None, gen)
