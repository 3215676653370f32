"""The ``resdit`` command line.

    resdit generate --prompt P --height H --width W [--mode resdit] [--seed S] [--steps T] --out F
    resdit train-toy --out DIR [--steps N] [--seed S]
    resdit eval-toy [--scales 1 2 4] [--prompts 64] [--modes ...] --out FILE
    resdit study --out DIR [--scales 2 4] [--seeds N] [--smoke]     (from the analysis package)
    resdit bench [--scales 2 4 8] [--steps T] [--json]
    resdit report [--smoke] --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from .args import Parser, chunk, run_command, finite_float, mu, non_negative_int, overlap_rule, positive_float, positive_int, size
from .config import MODES, ResDiTConfig, check_size
from .families import by_name
from .io import check_writable
from .loading import base_size_of, check_folder, load_any_pipeline, peek
from .schedule import check_steps

#: entry-point group through which other packages add subcommands (``analysis`` adds ``study`` and ``report``)
COMMANDS_GROUP = "resdit.commands"
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                  ".tiff": "TIFF"}


def _add_method_args(p: argparse.ArgumentParser) -> None:
    # Defaults are None: ResDiTConfig's own defaults apply (one place states them).
    p.add_argument("--mode", default="resdit", choices=sorted(MODES), help="what to run (README: the mode table)")
    p.add_argument("--cutoff", type=finite_float, default=None,
                   help="PSF cutoff, normalised radial frequency in [0, sqrt(2)] (default 0.2)")
    p.add_argument("--splice-width", "--sigma", dest="splice_width", type=finite_float, default=None,
                   help="Gaussian splice width in window units, >= 0.01 (default 0.5; --sigma: its old name)")
    p.add_argument("--splice", choices=["gaussian", "uniform", "feather"], default=None,
                   help="splice weights of the windows (default: the mode's; feather: no weight step at a border)")
    p.add_argument("--global-steps", type=non_negative_int, default=None,
                   help="steps of the global-only phase (default: 10/35 of the steps)")
    p.add_argument("--local-steps", type=non_negative_int, default=None,
                   help="steps of the local-only phase (default: 15/35 of the steps)")
    p.add_argument("--phase-by", choices=["steps", "sigma"], default=None,
                   help="phases as step counts (default) or at the base schedule's noise levels of steps 10 and 20 of 35")
    p.add_argument("--proportional-attention", action=argparse.BooleanOptionalAction, default=None,
                   help="scale global logits by sqrt(log N / log n) (default: the mode's own, on for resdit)")
    p.add_argument("--mu", type=mu, default=None,
                   help="scheduler shift: 'base' (the base size's; default for every mode but direct), "
                        "'pipeline' (the pipeline's own rule; direct's default) or a number")
    p.add_argument("--window-chunk", type=chunk, default=None,
                   help="windows per local-branch call: a number, or 'auto' (sized from free memory)")
    p.add_argument("--strength", type=finite_float, default=None, help="two_stage: re-noising strength in (0, 1]")
    p.add_argument("--global-tokens", choices=["full", "base"], default=None,
                   help="global branch over every token or on blocks at the training token count (resdit: base)")
    p.add_argument("--upsampler", choices=["bilinear", "fft"], default=None,
                   help="how a pooled global branch returns to the token grid (default: fft for base tokens)")
    p.add_argument("--key-bias", action=argparse.BooleanOptionalAction, default=None,
                   help="log(tokens per block) on pooled keys (default: off for base tokens, on for resdit_fast)")
    p.add_argument("--pool-phases", choices=["all", "fused"], default=None,
                   help="phases whose global branch is pooled (default: all for base tokens)")
    p.add_argument("--nyquist-cutoff", action=argparse.BooleanOptionalAction, default=None,
                   help="lower PSF's cutoff to the pooled blocks' Nyquist limit 1/p where p > 1/cutoff (8x8 blocks)")
    p.add_argument("--window-align", type=positive_int, default=None,
                   help="local windows start on multiples of this many tokens (default: 2 for resdit and "
                        "resdit_fast, 1 elsewhere)")
    p.add_argument("--window-overlap", type=overlap_rule, default=None,
                   help="neighbouring local windows (or tiles) overlap by at least this many tokens, or by a quarter "
                        "of the window ('quarter'; the default for resdit, 1 elsewhere: the minimum-overlap partition)")


def config_from_args(args, base_size) -> ResDiTConfig:
    """A :class:`ResDiTConfig` from the method options that were given (the rest keep its defaults)."""
    names = ("cutoff", "splice_width", "global_steps", "local_steps", "phase_by", "proportional_attention", "mu",
             "window_chunk", "strength", "global_tokens", "upsampler", "key_bias", "pool_phases",
             "nyquist_cutoff", "window_align", "window_overlap", "splice")
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return ResDiTConfig(base_size=base_size, mode=args.mode, **given)


def check_generate_args(args) -> None:
    """Every check that needs no weights, before any model is loaded.

    Raises:
        ResDiTConfigError / ModelLoadError / ValueError: with a message that says what to change.
    """
    cfg = config_from_args(args, None)  # option ranges
    suffix = Path(args.out).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"--out {args.out!r}: use one of {sorted(IMAGE_SUFFIXES)} (the image format follows it).")
    check_steps(cfg, args.steps)
    if args.local_prompt is not None:
        from .local_prompt import check_mode

        check_mode(cfg)
    check_writable(args.out)
    check_folder(args.model)
    info = peek(args.model)
    if info.family is not None:
        family = by_name(info.family)
        family.check_mode(args.mode)
        if args.local_prompt is not None:
            from .local_prompt import check_family

            check_family(family)
    if info.pixels_per_token is not None:
        check_size(args.height, args.width, info.pixels_per_token)
        if not args.force_size:
            from .memory import check_memory

            check_memory(args.height, args.width, info.pixels_per_token, info.hidden, args.device,
                         2 if args.device.startswith("cuda") else 4)
    if info.is_toy:
        from .toy.world import parse_prompt

        parse_prompt(args.prompt, info.world)
        if args.local_prompt is not None:
            parse_prompt(args.local_prompt, info.world)


def cmd_generate(args) -> int:
    check_generate_args(args)
    from PIL import Image

    from .generate import generate
    from .io import atomic_write, dumps_strict

    pipe = load_any_pipeline(args.model, args.device, getattr(args, "offload", False))
    base = base_size_of(pipe, args.base_size)
    cfg = config_from_args(args, base)
    pipe.set_progress_bar_config(disable=args.json)
    start = time.perf_counter()
    images = generate(pipe, args.prompt, cfg, args.height, args.width, num_inference_steps=args.steps, seed=args.seed,
                      local_prompt=args.local_prompt)
    seconds = time.perf_counter() - start
    array = (images[0].permute(1, 2, 0).float().cpu().numpy() * 255).round().clip(0, 255).astype("uint8")
    out = Path(args.out)
    with atomic_write(out, binary=True) as f:
        Image.fromarray(array).save(f, format=IMAGE_SUFFIXES[out.suffix.lower()])
    record = {"path": str(out), "size": [args.height, args.width], "mode": args.mode, "steps": args.steps,
              "seconds": round(seconds, 3), "seed": args.seed, "base_size": list(base), "local_prompt": args.local_prompt}
    print(dumps_strict(record) if args.json else f"wrote {out} ({args.height}x{args.width}, {args.mode}, {seconds:.1f} s)")
    return 0


def cmd_train_toy(args) -> int:
    from .toy.train import TrainConfig, train

    check_writable(args.out, directory=True)
    cfg = TrainConfig(out=args.out, steps=args.steps, seed=args.seed, batch=args.batch, threads=args.threads,
                      max_minutes=args.max_minutes, world=args.world)
    print(f"model written to {train(cfg)}")
    return 0


def cmd_eval_toy(args) -> int:
    from .toy.evaluate import evaluate_cli

    return evaluate_cli(args)


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    if args.out:
        check_writable(args.out)
    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="resdit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    g = sub.add_parser("generate", help="generate one image")
    g.add_argument("--prompt", required=True, help="the text prompt (toy model: its grammar, see README)")
    g.add_argument("--height", type=positive_int, required=True, help="image height in pixels")
    g.add_argument("--width", type=positive_int, required=True, help="image width in pixels")
    g.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator for the initial noise")
    g.add_argument("--local-prompt", default=None,
                   help="the text of the local-only phase (with --local-steps N; e.g. the prompt without where things "
                        "stand: docs/decisions.md, 'A prompt for the local-only phase')")
    g.add_argument("--steps", type=positive_int, default=35, help="denoising steps")
    g.add_argument("--out", required=True, help="image file to write (.png, .jpg, ...; never half-written)")
    g.add_argument("--model", default=None, help="diffusers FLUX model id or folder; default: the shipped toy model")
    g.add_argument("--base-size", type=size, default=None,
                   help="training size HxW in pixels (default: from the model)")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, mps)")
    g.add_argument("--offload", action="store_true", help="enable_model_cpu_offload() for real models")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.add_argument("--force-size", action="store_true",
                   help="skip the up-front memory estimate that refuses sizes larger than the machine")
    _add_method_args(g)
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train-toy", help="train the toy model (resumable)")
    t.add_argument("--out", default="runs/toy", help="run folder (checkpoint; the model lands in OUT/model)")
    t.add_argument("--steps", type=positive_int, default=5000,
                   help="optimiser steps (fixes the LR schedule; the shipped v2 model: 5000, v1: 4000)")
    t.add_argument("--seed", type=int, default=0, help="seed of data, noise and initialisation")
    t.add_argument("--batch", type=positive_int, default=32, help="images per step")
    t.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads (float sums, so the weights, depend on it; shipped v2: 1, v1: 2)")
    t.add_argument("--max-minutes", type=positive_float, default=120.0,
                   help="stop (resumably) after this many minutes; run again to continue")
    t.add_argument("--world", choices=["v1", "v2"], default="v2",
                   help="toy world to train on (the shipped v1 weights: --world v1 --steps 4000)")
    t.set_defaults(func=cmd_train_toy)

    e = sub.add_parser("eval-toy", help="score the toy model: prompt accuracy per mode and scale")
    e.add_argument("--model", default=None, help="toy weights folder (default: the shipped model)")
    e.add_argument("--scales", type=positive_float, nargs="+", default=[1, 2, 4], help="side scale factors (> 0)")
    e.add_argument("--modes", nargs="+", default=["direct", "scaled_pe", "resdit"], choices=sorted(MODES),
                   help="modes to score")
    e.add_argument("--prompts", type=positive_int, default=64, help="prompts (balanced over places and colours)")
    e.add_argument("--steps", type=positive_int, default=20, help="denoising steps")
    e.add_argument("--seed", type=int, default=0, help="first noise seed (sample i uses seed + i)")
    e.add_argument("--proportional-attention", action=argparse.BooleanOptionalAction, default=None,
                   help="force proportional attention on or off (default: each mode's own)")
    e.add_argument("--mu", type=mu, default=None,
                   help="scheduler shift: 'base', 'pipeline' or a number (default: each mode's own)")
    e.add_argument("--local-steps", type=non_negative_int, default=None,
                   help="last steps that run the windows alone (default: each mode's own)")
    e.add_argument("--global-steps", type=non_negative_int, default=None,
                   help="first steps that run the global branch alone (default: each mode's own)")
    e.add_argument("--window-prompts", action="store_true",
                   help="run each image's local-only phase under its prompt without the place (local_prompt)")
    e.add_argument("--splice", choices=["gaussian", "uniform", "feather"], default=None,
                   help="splice weights of the modes with windows (default: each mode's; feather with --local-steps)")
    e.add_argument("--window-overlap", type=overlap_rule, default=None,
                   help="least overlap in tokens (or 'quarter' of the window) of the modes' local windows (default: "
                        "each mode's; 1 is the minimum-overlap partition)")
    e.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads")
    e.add_argument("--out", default=None, help="JSON file for the results")
    e.set_defaults(func=cmd_eval_toy)

    b = sub.add_parser("bench", help="time modes and phases against direct inference on the toy model")
    b.add_argument("--scales", type=positive_float, nargs="+", default=[2.0, 4.0, 8.0],
                   help="side scale factors (> 0)")
    b.add_argument("--steps", type=positive_int, default=35, help="steps of the whole-generation rows")
    b.add_argument("--repeats", type=positive_int, default=3, help="timed repeats (median reported)")
    b.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads")
    b.add_argument("--no-memory", action="store_true", help="skip the profiler's peak-memory pass")
    b.add_argument("--config", choices=["toy", "flux-dev"], default="toy",
                   help="the shipped toy model, or a random full-size FLUX.1-dev transformer (for a GPU)")
    b.add_argument("--device", default="cpu", help="torch device")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--generations", action="store_true",
                   help="time whole generations end to end (toy pipeline; direct, the defaults, the full-size "
                        "global branch, resdit_fast, two-stage, tiling), interleaved")
    b.add_argument("--cases", nargs="+", default=None, metavar="CASE",
                   help="with --generations: time only these cases (of direct, resdit, resdit+full_tokens, "
                        "resdit_fast, two_stage, tiling; keep direct and two_stage for the ratios)")
    b.add_argument("--out", default=None, help="with --generations: JSON file for the results")
    b.set_defaults(func=cmd_bench)

    for command in entry_points(group=COMMANDS_GROUP):  # e.g. `study` and `report` from the analysis package
        command.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .provenance import set_command

    set_command(["resdit", *(sys.argv[1:] if argv is None else argv)])
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
