"""Tiny FLUX pipelines built offline: random weights, tokenizers constructed in memory."""

from __future__ import annotations

import torch
from conftest import tiny_flux


def _byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest above 255."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    symbols, extra = [], 0
    for b in range(256):
        if b in printable:
            symbols.append(chr(b))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def clip_tokenizer():
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer():
    from transformers import T5Tokenizer

    chars = [chr(c) for c in range(32, 127)]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in chars] + [("\u2581" + c, -1.5) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=100, model_max_length=512)


def tiny_flux_pipeline(seed: int = 0):
    """A FluxPipeline with the configs of diffusers' own FLUX pipeline tests; VAE scale 1."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = tiny_flux(seed)
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
                                        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5,
                                        pad_token_id=1, vocab_size=1000, hidden_act="gelu", projection_dim=32))
    t5 = T5EncoderModel(T5Config(vocab_size=1000, d_model=32, d_ff=37, d_kv=8, num_layers=5, num_heads=4,
                                 relative_attention_num_buckets=8))
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    # FLUX.1-dev's scheduler config: a shift that grows with the token count.
    scheduler = FlowMatchEulerDiscreteScheduler(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                                                max_shift=1.15, shift=3.0, use_dynamic_shifting=True)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip,
                        tokenizer=clip_tokenizer(), text_encoder_2=t5, tokenizer_2=t5_tokenizer(),
                        transformer=transformer)
    for module in (clip, t5, vae, transformer):
        module.eval()  # T5's dropout would make two calls differ
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _clip_config():
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
                          num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=1000,
                          hidden_act="gelu", projection_dim=32)


def _t5():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=1000, d_model=32, d_ff=37, d_kv=8, num_layers=5, num_heads=4,
                                   relative_attention_num_buckets=8))


def _vae(latent_channels: int):
    from diffusers import AutoencoderKL

    return AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=1, use_quant_conv=False,
                         use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)


def _flux_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096,
                                           max_shift=1.15, shift=3.0, use_dynamic_shifting=True)


def _finish(pipe):
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "vae", "transformer", "controlnet"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.eval()  # T5's dropout would make two calls differ
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sd3(seed: int = 0, **overrides):
    """SD3Transformer2DModel with the config of diffusers' own SD3 pipeline tests (table of 96 x 96 positions)."""
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(seed)
    config = dict(sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                  num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64,
                  out_channels=4)
    config.update(overrides)
    return SD3Transformer2DModel(**config).eval()


def tiny_sd3_pipeline(seed: int = 0, controlnet: bool = False):
    """A StableDiffusion3Pipeline (or its ControlNet pipeline) as in diffusers' tests; VAE scale 1, base 32x32 px."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3ControlNetModel,
        StableDiffusion3ControlNetPipeline,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    transformer = tiny_sd3(seed)
    parts = dict(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                 vae=_vae(4), text_encoder=CLIPTextModelWithProjection(_clip_config()), tokenizer=clip_tokenizer(),
                 text_encoder_2=CLIPTextModelWithProjection(_clip_config()), tokenizer_2=clip_tokenizer(),
                 text_encoder_3=_t5(), tokenizer_3=t5_tokenizer())
    if not controlnet:
        return _finish(StableDiffusion3Pipeline(**parts))
    net = SD3ControlNetModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                             num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
                             pooled_projection_dim=64, out_channels=4)
    return _finish(StableDiffusion3ControlNetPipeline(**parts, controlnet=net))


def tiny_flux_controlnet_pipeline(seed: int = 0):
    """A FluxControlNetPipeline as in diffusers' tests: the control image goes through the VAE."""
    from diffusers import FluxControlNetModel, FluxControlNetPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    transformer = tiny_flux(seed)
    net = FluxControlNetModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
                              num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                              axes_dims_rope=[4, 4, 8])
    pipe = FluxControlNetPipeline(scheduler=_flux_scheduler(), vae=_vae(1), text_encoder=CLIPTextModel(_clip_config()),
                                  tokenizer=clip_tokenizer(), text_encoder_2=_t5(), tokenizer_2=t5_tokenizer(),
                                  transformer=transformer, controlnet=net)
    return _finish(pipe)


def tiny_chroma(seed: int = 0, **overrides):
    """ChromaTransformer2DModel with the config of diffusers' own Chroma tests (FLUX's RoPE axes 4/4/8)."""
    from diffusers import ChromaTransformer2DModel

    torch.manual_seed(seed)
    config = dict(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
                  num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=(4, 4, 8), approximator_num_channels=8,
                  approximator_hidden_dim=16, approximator_layers=1)
    config.update(overrides)
    return ChromaTransformer2DModel(**config).eval()


def tiny_chroma_pipeline(seed: int = 0):
    """A ChromaPipeline (T5 only; the prompt's padding is masked in every attention) with FLUX's scheduler."""
    from diffusers import ChromaPipeline

    torch.manual_seed(seed)
    pipe = ChromaPipeline(scheduler=_flux_scheduler(), vae=_vae(1), text_encoder=_t5(), tokenizer=t5_tokenizer(),
                          transformer=tiny_chroma(seed))
    return _finish(pipe)


def qwen_tokenizer():
    """A byte-level BPE tokenizer in Qwen2's form (no merges) with Qwen's chat markers and a minimal chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    vocab = {s: i for i, s in enumerate(_byte_symbols())}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = Qwen2TokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tokenizer


def tiny_flux2(seed: int = 0, **overrides):
    """Flux2Transformer2DModel with the config of diffusers' own FLUX.2 tests (four RoPE axes of 4)."""
    from diffusers import Flux2Transformer2DModel

    torch.manual_seed(seed)
    config = dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                  num_attention_heads=2, joint_attention_dim=48, timestep_guidance_channels=32,
                  axes_dims_rope=(4, 4, 4, 4))
    config.update(overrides)
    return Flux2Transformer2DModel(**config).eval()


def tiny_flux2_pipeline(seed: int = 0):
    """A Flux2KleinPipeline: a 28-layer Qwen3 of width 16 (the pipeline reads its layers 9, 18 and 27), FLUX.2's
    VAE with one block (scale 1; latents patchified 2x2 to the transformer's 16 channels)."""
    from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    text_encoder = Qwen3ForCausalLM(Qwen3Config(vocab_size=300, hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=28, num_attention_heads=2, num_key_value_heads=2,
                                                head_dim=8, max_position_embeddings=600))
    vae = AutoencoderKLFlux2(sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
                             up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,), layers_per_block=1,
                             latent_channels=4, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False)
    pipe = Flux2KleinPipeline(scheduler=_flux_scheduler(), vae=vae, text_encoder=text_encoder,
                              tokenizer=qwen_tokenizer(), transformer=tiny_flux2(seed))
    return _finish(pipe)


def tiny_qwenimage(seed: int = 0, **overrides):
    """QwenImageTransformer2DModel with the config of diffusers' own Qwen-Image tests (axes 8/4/4, packed 2x2)."""
    from diffusers import QwenImageTransformer2DModel

    torch.manual_seed(seed)
    config = dict(patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
                  num_attention_heads=3, joint_attention_dim=16, axes_dims_rope=(8, 4, 4))
    config.update(overrides)
    return QwenImageTransformer2DModel(**config).eval()


def tiny_qwenimage_pipeline(seed: int = 0):
    """A QwenImagePipeline: a two-layer Qwen2.5-VL of width 16 (its vision tower unused), Qwen-Image's VAE with
    three levels (scale 4: 8 pixels per token)."""
    from diffusers import AutoencoderKLQwenImage, QwenImagePipeline
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    ids = dict(bos_token_id=0, eos_token_id=1)
    text = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                rope_theta=1e6, vocab_size=300, **ids)
    vision = dict(depth=2, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=16)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, hidden_size=16, vocab_size=300,
                              vision_start_token_id=296, vision_end_token_id=297, vision_token_id=298,
                              image_token_id=299, video_token_id=295, **ids)
    vae = AutoencoderKLQwenImage(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    pipe = QwenImagePipeline(scheduler=_flux_scheduler(), vae=vae, text_encoder=text_encoder,
                             tokenizer=qwen_tokenizer(), transformer=tiny_qwenimage(seed))
    return _finish(pipe)


def tiny_zimage(seed: int = 0, **overrides):
    """ZImageTransformer2DModel with the config of diffusers' own Z-Image tests (theta 256, axes 8/4/4)."""
    from diffusers import ZImageTransformer2DModel

    torch.manual_seed(seed)
    config = dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
                  n_heads=2, n_kv_heads=2, cap_feat_dim=16, axes_dims=[8, 4, 4], axes_lens=[256, 64, 64])
    config.update(overrides)
    return ZImageTransformer2DModel(**config).eval()


def tiny_zimage_pipeline(seed: int = 0):
    """A ZImagePipeline: a two-layer Qwen3 of width 16 (the pipeline reads its second-to-last hidden states) and a
    one-block VAE with 16 latent channels (scale 1; the transformer patchifies 2x2)."""
    from diffusers import ZImagePipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    text_encoder = Qwen3ForCausalLM(Qwen3Config(vocab_size=300, hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                                head_dim=8, max_position_embeddings=600))
    pipe = ZImagePipeline(scheduler=_flux_scheduler(), vae=_vae(16), text_encoder=text_encoder,
                          tokenizer=qwen_tokenizer(), transformer=tiny_zimage(seed))
    return _finish(pipe)


def tiny_zimage_controlnet_pipeline(seed: int = 0):
    """A ZImageControlNetPipeline: the tiny Z-Image pipeline's parts and a ControlNet of one control layer (at the
    first joint layer) and its own image refiner, of the transformer's width (it shares the transformer's embedders
    and refiners, as ``from_transformer`` sets it up)."""
    from diffusers import ZImageControlNetModel, ZImageControlNetPipeline

    base = tiny_zimage_pipeline(seed)
    torch.manual_seed(seed + 1)
    net = ZImageControlNetModel(control_layers_places=[0], control_in_dim=16, all_patch_size=(2,),
                                all_f_patch_size=(1,), dim=32, n_refiner_layers=1, n_heads=2, n_kv_heads=2)
    for p in net.parameters():  # zero-initialised projections would make the control branch a no-op
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 and not p.abs().sum() else None
    pipe = ZImageControlNetPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=base.text_encoder,
                                    tokenizer=base.tokenizer, transformer=base.transformer, controlnet=net)
    return _finish(pipe)


def tiny_qwenimage_controlnet_pipeline(seed: int = 0):
    """A QwenImageControlNetPipeline: the tiny Qwen-Image pipeline's parts and a one-layer ControlNet of the same
    width (its control image goes through the VAE)."""
    from diffusers import QwenImageControlNetModel, QwenImageControlNetPipeline

    base = tiny_qwenimage_pipeline(seed)
    torch.manual_seed(seed + 1)
    net = QwenImageControlNetModel(patch_size=2, in_channels=16, out_channels=4, num_layers=1, attention_head_dim=16,
                                   num_attention_heads=3, joint_attention_dim=16, axes_dims_rope=(8, 4, 4))
    pipe = QwenImageControlNetPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=base.text_encoder,
                                       tokenizer=base.tokenizer, transformer=base.transformer, controlnet=net)
    return _finish(pipe)
