"""Shared tiny models and inputs, built offline (configs as in diffusers' own FLUX tests)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_flux(seed: int = 0, **overrides):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    config = dict(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
                  num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    config.update(overrides)
    return FluxTransformer2DModel(**config).eval()


def flux_inputs(grid, text_len: int = 5, batch: int = 1, seed: int = 0, channels: int = 4):
    from resdit.positions import extrapolated_ids

    g = torch.Generator().manual_seed(seed)
    H, W = grid
    return dict(
        hidden_states=torch.randn(batch, H * W, channels, generator=g),
        encoder_hidden_states=torch.randn(batch, text_len, 32, generator=g),
        pooled_projections=torch.randn(batch, 32, generator=g),
        timestep=torch.full((batch,), 0.5),
        img_ids=extrapolated_ids(grid),
        txt_ids=torch.zeros(text_len, 3),
    )


@pytest.fixture
def transformer():
    return tiny_flux()


@pytest.fixture(scope="module")
def tiny_toy(tmp_path_factory):
    """A one-block toy model folder (untrained, written the way train-toy writes one)."""
    from resdit.toy.model import build_text_encoder, build_transformer
    from resdit.toy.train import TrainConfig, export

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("toy") / "model"
    return export(build_transformer(num_layers=1, num_single_layers=1), build_text_encoder("v2"), path, TrainConfig(),
                  [(0, 1.0, 0.0)], 0.0)
