"""A diffusers-style pipeline for the toy model: FLUX's sampling loop with pixels as latents.

It samples exactly as ``FluxPipeline`` does (flow-matching Euler scheduler, FLUX's
resolution-dependent shift, 2x2 packing, ``img_ids``/``txt_ids``, ``timestep = t / 1000``),
so :func:`resdit.apply_resdit` works on it unchanged.

Example:
    >>> from resdit.toy import load_pipeline
    >>> pipe = load_pipeline()
    >>> image = pipe("a red striped circle at top left", height=64, width=64,
    ...              generator=torch.Generator().manual_seed(0)).images[0]   # doctest: +SKIP
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.pipelines.flux.pipeline_flux import retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor

from . import model as toy
from .text import tokenize


@dataclass
class ToyPipelineOutput:
    """``images``: PIL images, ``[B, H, W, 3]`` numpy or ``[B, 3, H, W]`` torch, all in [0, 1]."""

    images: object


class ToyFluxPipeline:
    """Text -> RGB image with the toy ``FluxTransformer2DModel``.

    Args:
        transformer: a ``FluxTransformer2DModel`` with ``in_channels=12``.
        text_encoder: a :class:`~resdit.toy.text.ToyTextEncoder`.
        scheduler: a ``FlowMatchEulerDiscreteScheduler`` with dynamic shifting.
        card: the model's ``config.json`` (base size etc.).
    """

    vae_scale_factor = 1  # pixels are the latents: 2 px per token after 2x2 packing

    def __init__(self, transformer, text_encoder, scheduler, card: dict | None = None):
        self.transformer, self.text_encoder, self.scheduler = transformer, text_encoder, scheduler
        self.card = card or {}
        self._progress = {"disable": True}

    @property
    def base_size(self) -> tuple[int, int]:
        """Largest training canvas in pixels."""
        return tuple(self.card.get("base_size_px", toy.BASE_SIZE_PX))

    @property
    def world(self) -> str:
        """The toy world the model was trained on (cards written before v2: ``"v1"``)."""
        return self.card.get("world", "v1")

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def to(self, device) -> "ToyFluxPipeline":
        self.transformer.to(device)
        self.text_encoder.to(device)
        return self

    def set_progress_bar_config(self, **kwargs) -> None:
        self._progress.update(kwargs)

    @staticmethod
    def _prepare_latent_image_ids(batch_size, height, width, device, dtype):
        """Same signature and result as ``FluxPipeline._prepare_latent_image_ids``."""
        return toy.image_ids(height, width, device).to(dtype)

    def check_inputs(self, prompt, height: int, width: int) -> None:
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value % toy.PIXELS_PER_TOKEN or (
                    value < 2 * toy.PIXELS_PER_TOKEN):
                raise ValueError(f"{name}={value} must be an even number of pixels >= 4 (2x2 pixels per token).")
        c = self.text_encoder.config  # clear error for unknown words, or words this model never saw
        tokenize([prompt] if isinstance(prompt, str) else list(prompt), c["max_tokens"], c["vocab_size"], self.world)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], height: int | None = None, width: int | None = None,
                 num_inference_steps: int = 35, generator: torch.Generator | None = None,
                 latents: torch.Tensor | None = None, output_type: str = "pil", image: torch.Tensor | None = None,
                 strength: float = 1.0) -> ToyPipelineOutput:
        """Sample images; with ``image`` (``[B, 3, H, W]`` in [0, 1]) and ``strength < 1``, denoise it
        from the noise level of step ``T * (1 - strength)`` (img2img, as ``FluxImg2ImgPipeline``).

        ``latents`` (``[B, 3, H, W]``) replaces the sampled noise.
        """
        height = self.base_size[0] if height is None else height
        width = self.base_size[1] if width is None else width
        self.check_inputs(prompt, height, width)
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength={strength} must lie in (0, 1].")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        device, batch = self.device, len(prompts)
        states, pooled = self.text_encoder.encode(prompts)
        if latents is None:
            latents = randn_tensor((batch, 3, height, width), generator=generator, device=device, dtype=torch.float32)
        noise = toy.pack(latents.to(device))
        img_ids = self._prepare_latent_image_ids(batch, height // 2, width // 2, device, torch.float32)
        txt_ids = torch.zeros(states.shape[1], 3, device=device)
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device, sigmas=sigmas,
                                          mu=toy.shift_mu(noise.shape[1]))
        start = 0 if image is None else int(max(num_inference_steps - min(num_inference_steps * strength,
                                                                           num_inference_steps), 0))
        timesteps = timesteps[start:]
        self.scheduler.set_begin_index(start)
        latents = noise
        if image is not None:
            clean = toy.pack(image.to(device, torch.float32) * 2 - 1)
            latents = self.scheduler.scale_noise(clean, timesteps[:1].repeat(batch), noise)
        from tqdm.auto import tqdm

        for t in tqdm(timesteps, **self._progress):
            with self.transformer.cache_context("cond"):  # as FluxPipeline: hooks know which call this is
                velocity = self.transformer(
                    hidden_states=latents, encoder_hidden_states=states, pooled_projections=pooled,
                    timestep=(t.expand(batch) / 1000).to(latents.dtype), img_ids=img_ids, txt_ids=txt_ids,
                ).sample
            latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
        images = ((toy.unpack(latents, height, width) + 1) / 2).clamp(0, 1).cpu()
        if output_type == "pt":
            return ToyPipelineOutput(images)
        array = images.permute(0, 2, 3, 1).numpy()
        if output_type == "np":
            return ToyPipelineOutput(array)
        if output_type != "pil":
            raise ValueError(f"output_type={output_type!r}; use 'pil', 'np' or 'pt'.")
        from PIL import Image

        return ToyPipelineOutput([Image.fromarray((a * 255).round().astype(np.uint8)) for a in array])


def load_pipeline(path=None, device: str | torch.device = "cpu") -> ToyFluxPipeline:
    """The toy pipeline with the shipped weights (or those in ``path``)."""
    transformer, text_encoder, card = toy.load_weights(path or toy.WEIGHTS_DIR)
    return ToyFluxPipeline(transformer, text_encoder, toy.build_scheduler(), card).to(device)
