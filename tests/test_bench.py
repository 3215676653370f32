"""The benchmark's pieces that can be checked without timing anything."""

import torch

from resdit.bench import FLUX_DEV_CONFIG, _inputs, build_model


def test_flux_dev_config_is_the_12b_transformer():
    model, base, text = build_model("flux-dev", "meta")  # no memory: parameters on the meta device
    assert sum(p.numel() for p in model.parameters()) == 11_901_408_320
    assert base == (64, 64) and text == 512  # 1024^2 px and T5's 512 tokens


def test_inputs_carry_guidance_only_for_guidance_distilled_models():
    toy = dict(in_channels=12, joint_attention_dim=64, pooled_projection_dim=64)
    assert _inputs(toy, (4, 4), "cpu")["guidance"] is None
    dev = _inputs(FLUX_DEV_CONFIG, (2, 3), "cpu", text_tokens=7, dtype=torch.bfloat16)
    assert dev["guidance"].dtype == torch.bfloat16 and dev["hidden_states"].shape == (1, 6, 64)
    assert dev["txt_ids"].shape == (7, 3) and dev["img_ids"].dtype == torch.float32
