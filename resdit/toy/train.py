"""Train the toy model: rectified flow on procedural scenes at several sizes up to the base size.

Like FLUX and SD3, the model sees many canvas sizes and aspect ratios, all at or below its
base size (16 to 32 px a side = 8 to 16 tokens), never above. Every step draws one canvas
size for the whole batch; timesteps are logit-normal and shifted by FLUX's resolution rule.

Data and noise of step ``i`` depend only on ``(seed, i)``, so a run resumed from its last
checkpoint continues exactly where it stopped.

Usage:
    resdit train-toy --out runs/toy --steps 4500 --seed 0
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io import atomic_write
from . import model as toy
from .world import random_scene, render


@dataclass
class TrainConfig:
    out: str = "runs/toy"
    steps: int = 4500
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    ema: float = 0.999
    seed: int = 0
    p_two: float = 0.1  # fraction of scenes with a second object
    p_square: float = 0.5  # fraction of batches on square canvases
    checkpoint_every: int = 250
    max_minutes: float = 60.0
    threads: int = 2
    world: str = "v2"  # toy world (resdit.toy.world.WORLDS); the v1 weights were trained with "v1"


def sample_canvas(rng: np.random.Generator, p_square: float) -> tuple[int, int]:
    """A canvas size in pixels, both sides even, within [MIN_SIDE_PX, BASE_SIZE_PX]."""
    lo = toy.MIN_SIDE_PX // 2
    hi_h, hi_w = (s // 2 for s in toy.BASE_SIZE_PX)
    if rng.random() < p_square:
        side = int(rng.integers(lo, min(hi_h, hi_w) + 1))
        return 2 * side, 2 * side
    return 2 * int(rng.integers(lo, hi_h + 1)), 2 * int(rng.integers(lo, hi_w + 1))


def make_batch(cfg: TrainConfig, step: int) -> tuple[torch.Tensor, list[str]]:
    """Images ``[B, 3, H, W]`` in [-1, 1] and their prompts; a pure function of (seed, step)."""
    rng = np.random.default_rng([cfg.seed, step])
    h, w = sample_canvas(rng, cfg.p_square)
    scenes = [random_scene(rng, cfg.p_two, cfg.world) for _ in range(cfg.batch)]
    images = np.stack([render(s, h, w).image for s in scenes]) * 2.0 - 1.0
    return torch.from_numpy(images), [s.prompt for s in scenes]


def sample_sigmas(gen: torch.Generator, n: int, tokens: int) -> torch.Tensor:
    """Logit-normal sigmas, shifted as FLUX's scheduler shifts them for this token count."""
    u = torch.sigmoid(torch.randn(n, generator=gen))
    mu = toy.shift_mu(tokens)
    return math.exp(mu) / (math.exp(mu) + (1.0 / u - 1.0))


def learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def loss_at(transformer, text_encoder, images: torch.Tensor, prompts: list[str], gen: torch.Generator) -> torch.Tensor:
    b, _, h, w = images.shape
    x0 = toy.pack(images)
    noise = torch.randn(x0.shape, generator=gen)
    sigma = sample_sigmas(gen, b, x0.shape[1]).view(b, 1, 1)
    xt = (1 - sigma) * x0 + sigma * noise
    states, pooled = text_encoder.encode(prompts)
    pred = transformer(
        hidden_states=xt, encoder_hidden_states=states, pooled_projections=pooled, timestep=sigma.view(b),
        img_ids=toy.image_ids(h // 2, w // 2), txt_ids=torch.zeros(states.shape[1], 3),
    ).sample
    return F.mse_loss(pred, noise - x0)


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) and export the EMA weights to ``cfg.out/model``. Returns that folder."""
    from tqdm.auto import tqdm

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    transformer, text_encoder = toy.build_transformer(), toy.build_text_encoder(cfg.world)
    params = list(transformer.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    ema = [copy.deepcopy(transformer).requires_grad_(False), copy.deepcopy(text_encoder).requires_grad_(False)]
    start, log, elapsed = 0, [], 0.0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        written = {"world": "v1", **state["config"]}
        if any(written[k] != getattr(cfg, k) for k in ("seed", "steps", "world")):
            raise ValueError(f"{ckpt_path} was written with another seed, step count or world; use another --out.")
        transformer.load_state_dict(state["transformer"])
        text_encoder.load_state_dict(state["text_encoder"])
        ema[0].load_state_dict(state["ema_transformer"])
        ema[1].load_state_dict(state["ema_text_encoder"])
        opt.load_state_dict(state["optimizer"])
        start, log, elapsed = state["step"], state["log"], state["elapsed"]

    def save(step: int):
        state = dict(step=step, log=log, elapsed=elapsed, config=asdict(cfg), transformer=transformer.state_dict(),
                     text_encoder=text_encoder.state_dict(), ema_transformer=ema[0].state_dict(),
                     ema_text_encoder=ema[1].state_dict(), optimizer=opt.state_dict())
        with atomic_write(ckpt_path, binary=True) as f:
            torch.save(state, f)

    t0 = time.time() - elapsed
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train-toy")
    running = None
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        images, prompts = make_batch(cfg, step)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        loss = loss_at(transformer, text_encoder, images, prompts, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for shadow, live in zip(ema, (transformer, text_encoder)):
                for ps, pl in zip(shadow.parameters(), live.parameters()):
                    ps.lerp_(pl, 1 - cfg.ema)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        elapsed = time.time() - t0
        if step % 10 == 0:
            log.append((step, float(loss.item()), elapsed))
            bar.set_postfix(loss=f"{running:.4f}", size=f"{images.shape[2]}x{images.shape[3]}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save(step + 1)
        if elapsed > cfg.max_minutes * 60:
            save(step + 1)
            raise TimeoutError(f"Stopped after {cfg.max_minutes} minutes at step {step + 1}; run again to resume.")
    save(cfg.steps)
    return export(ema[0], ema[1], out / "model", cfg, log, elapsed)


def export(transformer, text_encoder, directory: Path, cfg: TrainConfig, log, elapsed: float) -> Path:
    """Write ``transformer.safetensors``, ``text_encoder.safetensors``, ``config.json`` and ``train_log.json``."""
    from safetensors.torch import save_file

    if text_encoder.config.get("world", cfg.world) != cfg.world:
        raise ValueError(f"The text encoder was built for toy world {text_encoder.config['world']}, the run for "
                         f"{cfg.world}; build it with build_text_encoder({cfg.world!r}).")
    directory.mkdir(parents=True, exist_ok=True)
    for name, module in (("transformer", transformer), ("text_encoder", text_encoder)):
        tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        tmp = directory / f".{name}.safetensors.tmp"
        save_file(tensors, str(tmp))
        os.replace(tmp, directory / f"{name}.safetensors")
    card = dict(
        transformer={k: (list(v) if isinstance(v, tuple) else v) for k, v in transformer.config.items()
                     if not k.startswith("_")},
        text_encoder={k: v for k, v in text_encoder.config.items() if k in ("dim", "pooled_dim", "max_tokens", "heads", "vocab_size")},
        scheduler=toy.SCHEDULER_CONFIG, world=cfg.world,
        base_size_px=list(toy.BASE_SIZE_PX), min_side_px=toy.MIN_SIDE_PX, pixels_per_token=toy.PIXELS_PER_TOKEN,
        train=asdict(cfg), train_minutes=round(elapsed / 60, 1),
        parameters=sum(p.numel() for p in transformer.parameters()) + sum(p.numel() for p in text_encoder.parameters()),
    )
    with atomic_write(directory / "config.json") as f:
        json.dump(card, f, indent=2)
    with atomic_write(directory / "train_log.json") as f:
        json.dump({"columns": ["step", "loss", "seconds"], "rows": log}, f)
    return directory
