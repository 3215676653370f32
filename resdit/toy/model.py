"""The toy model: a small ``diffusers.FluxTransformer2DModel`` over RGB pixels, and its scheduler.

Pixels stand in for latents (no VAE): an RGB canvas is packed into 2x2 patches exactly as
FLUX packs its 16-channel latents, so one token covers 2x2 pixels and carries 12 channels.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

from .text import ToyTextEncoder

WEIGHTS_DIR = Path(__file__).parent / "weights"  # the shipped model (toy world v2)
PIXELS_PER_TOKEN = 2  # FLUX's 2x2 packing with no VAE
BASE_SIZE_PX = (32, 32)  # the largest canvas the toy model was trained on
MIN_SIDE_PX = 16

TRANSFORMER_CONFIG = dict(
    patch_size=1,
    in_channels=12,  # 3 RGB channels x 2 x 2 pixels
    num_layers=2,
    num_single_layers=4,
    attention_head_dim=32,
    num_attention_heads=4,
    joint_attention_dim=64,
    pooled_projection_dim=64,
    guidance_embeds=False,
    axes_dims_rope=(8, 12, 12),
)
TEXT_CONFIG = dict(dim=64, pooled_dim=64)
# FLUX's resolution-dependent shift, with the toy's own token counts standing in for FLUX's
# 256 (256 px) and 4096 (1024 px, its base): 64 tokens = 16 px, 256 tokens = 32 px (base).
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    shift=1.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=64,
    max_image_seq_len=256,
)


def build_transformer(**overrides) -> FluxTransformer2DModel:
    return FluxTransformer2DModel(**{**TRANSFORMER_CONFIG, **overrides})


def build_text_encoder(world: str = "v1") -> ToyTextEncoder:
    """v1 keeps v1's vocabulary (and so its parameter count and initial weights); v2 adds its words."""
    from .world import VOCABULARY, VOCABULARY_V1

    vocab = VOCABULARY_V1 if world == "v1" else VOCABULARY
    return ToyTextEncoder(**TEXT_CONFIG, vocab_size=len(vocab), world=world)


def build_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG)


def shift_mu(image_tokens: int) -> float:
    """FLUX's linear, unclamped shift parameter for a given image token count (toy constants)."""
    c = SCHEDULER_CONFIG
    slope = (c["max_shift"] - c["base_shift"]) / (c["max_image_seq_len"] - c["base_image_seq_len"])
    return c["base_shift"] + slope * (image_tokens - c["base_image_seq_len"])


def load_weights(directory: str | Path = WEIGHTS_DIR) -> tuple[FluxTransformer2DModel, ToyTextEncoder, dict]:
    """Load the shipped (or a freshly trained) toy transformer and text encoder.

    Returns:
        (transformer, text_encoder, card) where card is the model's ``config.json``.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(
            f"No toy model at {directory}. Train one with `resdit train-toy --out DIR` "
            "or reinstall resdit, which ships the trained weights."
        )
    card = json.loads(config_path.read_text())
    transformer = build_transformer(**card.get("transformer", {}))
    transformer.load_state_dict(load_file(directory / "transformer.safetensors"))
    world = card.get("world", "v1")  # cards written before toy world v2 are v1
    text_encoder = ToyTextEncoder(**{**card.get("text_encoder", TEXT_CONFIG), "world": world})
    text_encoder.load_state_dict(load_file(directory / "text_encoder.safetensors"))
    return transformer.eval(), text_encoder.eval(), card


def pack(images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` -> ``[B, H/2 * W/2, 12]`` (FLUX's 2x2 packing)."""
    b, c, h, w = images.shape
    x = images.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack`."""
    b, _, ch = tokens.shape
    x = tokens.view(b, height // 2, width // 2, ch // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, ch // 4, height, width)


def image_ids(grid_h: int, grid_w: int, device=None) -> torch.Tensor:
    """FLUX image position ids ``[grid_h * grid_w, 3]`` (axis 0 zero, then row, col), float32."""
    ids = torch.zeros(grid_h, grid_w, 3)
    ids[..., 1] = torch.arange(grid_h, dtype=torch.float32)[:, None]
    ids[..., 2] = torch.arange(grid_w, dtype=torch.float32)[None, :]
    return ids.reshape(-1, 3).to(device)
