"""Time ResDiT on FLUX.1-dev's real geometry with random weights, through the stock ``FluxPipeline``.

Timing needs no trained weights: a randomly initialised transformer of FLUX.1-dev's shape (d = 3072, 24 heads x
128, RoPE axes 16/56/56, 512 text tokens), FLUX.1's VAE config (random weights, tiled decoding above 2048^2) and
small random text encoders of the right output widths (T5 4096, CLIP pooled 768), tokenizers built offline.

On a GPU (the full 19 + 38 blocks, bf16)::

    python scripts/flux_geometry.py --device cuda --sizes 1024 2048 3072 4096 --modes direct two_stage resdit \
        --steps 35 --out results/bench/flux-geometry-gpu.json

On a CPU (one joint and one single block, float32: the geometry runs end to end; absolute times are not FLUX's)::

    OMP_WAIT_POLICY=PASSIVE python scripts/flux_geometry.py --blocks 1 1 --sizes 2048 --modes resdit --steps 2 --threads 2 \
        --out results/bench/flux-geometry-cpu.json

Each row: mode, size, seconds of the whole generation (denoising and decoding), the transformer's share, and the
peak memory (CUDA: ``max_memory_allocated``; CPU: the process's peak resident set).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

FLUX_VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                latent_channels=16, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False, force_upcast=True)
FLUX_SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15, shift=3.0,
                      use_dynamic_shifting=True)


def build(blocks: tuple[int, int], device: str, dtype):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from tiny_pipelines import clip_tokenizer, t5_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from resdit.bench import FLUX_DEV_CONFIG

    torch.manual_seed(0)
    with torch.device(device):
        transformer = FluxTransformer2DModel(**{**FLUX_DEV_CONFIG, "num_layers": blocks[0],
                                                "num_single_layers": blocks[1]}).to(dtype)
        vae = AutoencoderKL(**FLUX_VAE).to(dtype)
        clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=64, num_attention_heads=2,
                                            num_hidden_layers=1, vocab_size=1000, bos_token_id=0, eos_token_id=2,
                                            pad_token_id=1, projection_dim=768)).to(dtype)
        t5 = T5EncoderModel(T5Config(vocab_size=1000, d_model=4096, d_ff=64, d_kv=64, num_layers=1, num_heads=2,
                                     relative_attention_num_buckets=8)).to(dtype)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER), vae=vae, text_encoder=clip,
                        tokenizer=clip_tokenizer(), text_encoder_2=t5, tokenizer_2=t5_tokenizer(),
                        transformer=transformer)
    for m in (transformer, vae, clip, t5):
        m.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--blocks", type=int, nargs=2, default=None, help="joint and single blocks (default: 19 38)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 3072, 4096])
    p.add_argument("--modes", nargs="+", default=["direct", "two_stage", "resdit"])
    p.add_argument("--steps", type=int, default=35)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    from resdit import ResDiTConfig, generate
    from resdit.io import atomic_write, check_writable, dumps_strict
    from resdit.provenance import provenance

    check_writable(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    blocks = tuple(args.blocks or (19, 38))
    pipe = build(blocks, args.device, dtype)
    transformer_seconds, phases_ran = [], []

    def timed_forward(module, inputs):
        transformer_seconds.append(time.perf_counter())

    def timed_done(module, inputs, output):
        if cuda:
            torch.cuda.synchronize()
        transformer_seconds[-1] = time.perf_counter() - transformer_seconds[-1]
        state = getattr(next(iter(module.attn_processors.values())), "state", None)  # None: stock attention
        phases_ran.append(None if state is None else state.phase)  # the phase this call ran

    pipe.transformer.register_forward_pre_hook(timed_forward)
    pipe.transformer.register_forward_hook(timed_done)
    rows = []
    for size in args.sizes:
        for mode in args.modes:
            cfg = ResDiTConfig(base_size=(1024, 1024), mode=mode)
            transformer_seconds.clear(), phases_ran.clear()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            images = generate(pipe, "a photo of a mountain lake", cfg, size, size, args.steps, seed=0,
                              max_sequence_length=512, guidance_scale=3.5)
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            row = dict(mode=mode, size=size, steps=args.steps, phases=dict(Counter(p for p in phases_ran if p)) or None,
                       blocks=list(blocks), seconds=seconds,
                       transformer_seconds=sum(transformer_seconds), transformer_calls=len(transformer_seconds),
                       peak_gib=peak_bytes(args.device) / 2**30, finite=bool(torch.isfinite(images).all()),
                       image_shape=list(images.shape))
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"provenance": provenance(config=vars(args) | {"out": str(args.out)}, model="random:flux-dev-geometry",
                                       device=args.device), "results": rows}
    with atomic_write(args.out) as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
