"""The ``resdit`` command line.

    resdit generate --prompt P --height H --width W [--mode resdit] [--seed S] [--steps T] --out F
    resdit train-toy --out DIR [--steps N] [--seed S]
    resdit eval-toy [--scales 1 2 4] [--prompts 64] [--modes ...] --out FILE
    resdit study --out DIR [--scales 2 4] [--seeds N] [--smoke]
    resdit bench [--scales 2 4 8] [--steps T] [--json]
    resdit report [--smoke] --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import MODES, ResDiTConfig, ResDiTConfigError

FLUX_BASE_SIZE = (1024, 1024)


class ModelLoadError(ValueError):
    """Weights missing, gated or unreachable."""


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _chunk(text: str):
    return text if text == "auto" else int(text)


def _mu(text: str):
    return text if text == "base" else float(text)


def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", default="resdit", choices=sorted(MODES))
    p.add_argument("--cutoff", type=float, default=0.2)
    p.add_argument("--sigma", type=float, default=0.5)
    p.add_argument("--global-steps", type=int, default=None)
    p.add_argument("--local-steps", type=int, default=None)
    p.add_argument("--proportional-attention", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--mu", type=_mu, default=None,
                   help="scheduler shift instead of the pipeline's: a number, or 'base' (the base size's)")
    p.add_argument("--window-chunk", type=_chunk, default=None,
                   help="windows per local-branch call: a number, or 'auto' (sized from free memory)")
    p.add_argument("--strength", type=float, default=0.6, help="two_stage: re-noising strength")


def config_from_args(args, base_size) -> ResDiTConfig:
    return ResDiTConfig(base_size=base_size, mode=args.mode, cutoff=args.cutoff, sigma=args.sigma,
                        global_steps=args.global_steps, local_steps=args.local_steps,
                        proportional_attention=args.proportional_attention, mu=args.mu,
                        window_chunk=args.window_chunk, strength=args.strength)


def base_size_of(pipe, override=None) -> tuple[int, int]:
    """Training size in pixels: ``override``, the toy model's card, SD3's ``sample_size`` x the VAE
    factor (1024x1024 for SD3 and SD3.5), or FLUX.1's 1024x1024."""
    if override is not None:
        return tuple(int(x) for x in override)
    if hasattr(pipe, "base_size"):
        return tuple(pipe.base_size)
    from .apply import _supported_classes

    transformer = getattr(pipe, "transformer", None)
    if _supported_classes().get(type(transformer)) == "sd3":
        side = int(transformer.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
        return side, side
    return FLUX_BASE_SIZE


def load_any_pipeline(model: str | None, device: str = "cpu", offload: bool = False):
    """The toy pipeline (``model`` None or a toy weights folder) or a diffusers FLUX / SD3 pipeline."""
    from .toy.model import WEIGHTS_DIR

    if model is None or (Path(model) / "transformer.safetensors").exists():
        from .toy import load_pipeline

        return load_pipeline(model or WEIGHTS_DIR, device=device)
    import torch
    from diffusers import DiffusionPipeline

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        pipe = DiffusionPipeline.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not load {model!r} ({err}). Pass a local folder in the diffusers layout, or a hub id you can "
            "reach; for a gated model (FLUX.1-dev) accept its licence on the hub and log in (`hf auth login`)."
        ) from err
    from .apply import family

    try:
        family(getattr(pipe, "transformer", None))
    except TypeError as err:
        raise ModelLoadError(f"{model!r} loads as {type(pipe).__name__}: {err}") from err
    if offload:
        pipe.enable_model_cpu_offload(device=device)  # models wait on the CPU, run on `device`
    else:
        pipe.to(device)
    return pipe


def cmd_generate(args) -> int:
    from PIL import Image

    from .generate import generate
    from .io import atomic_write

    pipe = load_any_pipeline(args.model, args.device, getattr(args, "offload", False))
    base = base_size_of(pipe, _size(args.base_size) if args.base_size else None)
    cfg = config_from_args(args, base)
    pipe.set_progress_bar_config(disable=args.json)
    start = time.perf_counter()
    images = generate(pipe, args.prompt, cfg, args.height, args.width, num_inference_steps=args.steps, seed=args.seed)
    seconds = time.perf_counter() - start
    array = (images[0].permute(1, 2, 0).float().cpu().numpy() * 255).round().clip(0, 255).astype("uint8")
    out = Path(args.out)
    with atomic_write(out, binary=True) as f:
        Image.fromarray(array).save(f, format=(out.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    record = {"path": str(out), "size": [args.height, args.width], "mode": args.mode, "steps": args.steps,
              "seconds": round(seconds, 3), "seed": args.seed, "base_size": list(base)}
    print(json.dumps(record) if args.json else f"wrote {out} ({args.height}x{args.width}, {args.mode}, {seconds:.1f} s)")
    return 0


def cmd_train_toy(args) -> int:
    from .toy.train import TrainConfig, train

    cfg = TrainConfig(out=args.out, steps=args.steps, seed=args.seed, batch=args.batch, threads=args.threads,
                      max_minutes=args.max_minutes)
    print(f"model written to {train(cfg)}")
    return 0


def cmd_eval_toy(args) -> int:
    from .toy.evaluate import evaluate_cli

    return evaluate_cli(args)


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def cmd_report(args) -> int:
    from analysis.report import main as report_main

    return report_main(args)


def cmd_study(args) -> int:
    # The CLI is the composition root: the library never imports analysis, only this command does.
    from analysis.study import main as study_main

    return study_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resdit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate one image")
    g.add_argument("--prompt", required=True)
    g.add_argument("--height", type=int, required=True)
    g.add_argument("--width", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int, default=35)
    g.add_argument("--out", required=True)
    g.add_argument("--model", default=None, help="diffusers FLUX model id or folder; default: the shipped toy model")
    g.add_argument("--base-size", default=None, help="training size HxW in pixels (default: from the model)")
    g.add_argument("--device", default="cpu")
    g.add_argument("--offload", action="store_true", help="enable_model_cpu_offload() for real models")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    _add_method_args(g)
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train-toy", help="train the toy model (resumable)")
    t.add_argument("--out", default="runs/toy")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--max-minutes", type=float, default=60.0)
    t.set_defaults(func=cmd_train_toy)

    e = sub.add_parser("eval-toy", help="score the toy model: prompt accuracy per mode and scale")
    e.add_argument("--model", default=None)
    e.add_argument("--scales", type=float, nargs="+", default=[1, 2, 4])
    e.add_argument("--modes", nargs="+", default=["direct", "scaled_pe", "resdit"])
    e.add_argument("--prompts", type=int, default=64)
    e.add_argument("--steps", type=int, default=20)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--proportional-attention", action=argparse.BooleanOptionalAction, default=False)
    e.add_argument("--out", default=None, help="JSON file for the results")
    e.set_defaults(func=cmd_eval_toy)

    s = sub.add_parser("study", help="the intervention study, ablations and baselines on the toy model")
    s.add_argument("--out", required=True)
    s.add_argument("--scales", type=float, nargs="+", default=[2.0, 4.0])
    s.add_argument("--prompts", type=int, default=16)
    s.add_argument("--seeds", type=int, default=2)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--conditions", nargs="+", default=None)
    s.add_argument("--model", default=None)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--shift", choices=["base", "pipeline"], default="base",
                   help="scheduler shift of every condition: the base size's (default) or the pipeline's own")
    s.add_argument("--shard", default=None, help="i/n: run every n-th group starting at i")
    s.add_argument("--smoke", action="store_true", help="2 prompts, 1 seed, 6 steps, scale 2, core conditions")
    s.add_argument("--summarize", action="store_true", help="merge shard results and write summary.json")
    s.set_defaults(func=cmd_study)

    b = sub.add_parser("bench", help="time modes and phases against direct inference on the toy model")
    b.add_argument("--scales", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    b.add_argument("--steps", type=int, default=35)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--no-memory", action="store_true", help="skip the profiler's peak-memory pass")
    b.add_argument("--config", choices=["toy", "flux-dev"], default="toy",
                   help="the shipped toy model, or a random full-size FLUX.1-dev transformer (for a GPU)")
    b.add_argument("--device", default="cpu")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    r = sub.add_parser("report", help="execute every notebook headless and write an HTML report")
    r.add_argument("--out", required=True)
    r.add_argument("--smoke", action="store_true", help="small parameters (CI)")
    r.add_argument("--only", nargs="+", default=None, help="run only notebooks whose names contain these")
    r.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ResDiTConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
