"""Score the toy model from its images: is the prompted object there, once, in its cell?

Used for the model card (quality at base size; behaviour at 2x and 4x) and by the study.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from ..io import dumps_strict
from .world import COLOURS, GROUNDS, PLACES, SHAPES, TEXTURES, SceneObject, detect, parse_prompt, prompt_correct


def canvas_size(base, scale: float) -> tuple[int, int]:
    """``(height, width)``: ``scale`` x the base size, rounded to even pixels (FLUX packs 2x2 latent patches)."""
    h, w = (2 * int(round(s * scale / 2)) for s in base)
    return h, w


def evaluation_prompts(n: int, seed: int = 0, world: str | None = None) -> list[str]:
    """``n`` single-object prompts, balanced over places and colours, shuffled by ``seed``. In toy world v2 they
    alternate between the textured grounds (``on tiles``, ``on waves``), so ground detail can be read."""
    combos = list(itertools.product(COLOURS, TEXTURES, SHAPES, PLACES))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(combos))
    # Take places round-robin so every place appears about n/9 times.
    by_place: dict[str, list] = {p: [] for p in PLACES}
    for i in order:
        by_place[combos[i][3]].append(combos[i])
    picked = [by_place[p][k] for k in range(len(combos)) for p in PLACES if k < len(by_place[p])][:n]
    prompts = [f"a {c} {t} {s} at {p}" for c, t, s, p in picked]
    if world in (None, "v1"):
        return prompts
    grounds = [g for g in GROUNDS if g != "plain"]
    return [f"{p} on {grounds[i % len(grounds)]}" for i, p in enumerate(prompts)]


#: images per pipeline call of :func:`generate_batch`
BATCH = 16


def generate_batch(pipe, prompts: list[str], height: int, width: int, steps: int, seed: int,
                   batch: int | None = None, config=None, local_prompts: list[str] | None = None) -> np.ndarray:
    """Images ``[n, 3, H, W]`` in [0, 1]; sample i uses the noise of ``seed + i`` whatever the batching.

    ``config``: a :class:`~resdit.ResDiTConfig` to run every batch through :func:`resdit.generate` (two-pass modes
    included); None: the pipeline as it is. ``local_prompts``: the local-only phase's prompt per image.
    ``batch``: images per call (None: :data:`BATCH`)."""
    batch = BATCH if batch is None else batch
    out = []
    for lo in range(0, len(prompts), batch):
        chunk = prompts[lo:lo + batch]
        noise = torch.stack([torch.randn(3, height, width, generator=torch.Generator().manual_seed(seed + lo + i))
                             for i in range(len(chunk))])
        if config is None:
            images = pipe(chunk, height=height, width=width, num_inference_steps=steps, latents=noise,
                          output_type="pt").images
        else:
            from ..generate import generate

            images = generate(pipe, chunk, config, height, width, steps, latents=noise,
                              local_prompt=None if local_prompts is None else local_prompts[lo:lo + batch])
        out.append(images.numpy())
    return np.concatenate(out)


def score(images: np.ndarray, prompts: list[str], world: str | None = None) -> dict:
    """Accuracy (one object, prompted colour, prompted cell) and mean object count."""
    objects: list[SceneObject] = [parse_prompt(p, world).objects[0] for p in prompts]
    correct = [prompt_correct(im, o, world) for im, o in zip(images, objects)]
    counts = [detect(im, o.colour, world=world).count for im, o in zip(images, objects)]
    from scipy.stats import binomtest

    k, n = int(np.sum(correct)), len(prompts)
    ci = binomtest(k, n).proportion_ci(method="exact")  # Clopper-Pearson 95 %
    return {"accuracy": float(np.mean(correct)), "correct": k, "n": n, "ci95_exact": [float(ci.low), float(ci.high)],
            "mean_count": float(np.mean(counts)), "objects_above_1": int(np.sum(np.array(counts) > 1))}


#: entry-point group of image readers that ``eval-toy`` runs beside its layout score (``analysis`` adds ``detail``,
#: the study's drawn-object detail); each is ``read(images, prompts, base, world) -> dict`` of JSON values
READERS_GROUP = "resdit.toy_readers"


def installed_readers() -> dict:
    """The image readers other packages register under :data:`READERS_GROUP`, by name."""
    from importlib.metadata import entry_points

    return {ep.name: ep.load() for ep in entry_points(group=READERS_GROUP)}


def global_phase(cfg, steps: int) -> int | None:
    """The global-only phase's steps of ``cfg`` over ``steps`` steps (None: no phased schedule, or phases set by noise
    level)."""
    from ..schedule import phase_lengths

    if not cfg.spec.patched or cfg.spec.schedule != "phased" or cfg.phase_by != "steps":
        return None
    return phase_lengths(steps, cfg.global_steps, cfg.local_steps, cfg.local_fraction)[0]


def evaluate(pipe, modes: list[str], scales: list[float], n_prompts: int = 64, steps: int = 20, seed: int = 0,
             proportional_attention: bool | None = None, progress: bool = True, mu=None,
             readers: dict | None = None, local_steps: int | None = None, global_steps: int | None = None,
             window_prompts: bool = False, splice: str | None = None,
             window_overlap: int | None = None) -> list[dict]:
    """Accuracy per (mode, scale) on square canvases of ``scale x`` the base side.

    ``proportional_attention``, ``mu``, ``local_steps`` and ``global_steps`` as in :class:`ResDiTConfig` (None: each
    mode's own default); every row records the values that ran. ``window_prompts``: the local-only phase of each image runs
    under its prompt's :func:`~resdit.toy.world.window_prompt` (``local_prompt``; modes with windows and a
    local-only phase, above the base size, where the mode is direct; modes without windows run as they are, and
    each row says whether it ran: ``local_prompt``). ``splice``: the local windows' splice weights
    (:class:`ResDiTConfig`'s ``splice``) of the modes with a local branch; the others keep theirs (tiling's tiles).
    ``window_overlap``: the same for the windows' least overlap in tokens (``ResDiTConfig.window_overlap``).
    ``readers``: name -> ``read(images, prompts, base, world)``, whose values join each row (None:
    :func:`installed_readers`); the row lists the readers that ran."""
    from ..config import ResDiTConfig, ResDiTConfigError
    from ..local_prompt import check_mode, has_local_branch
    from .world import window_prompt

    readers = installed_readers() if readers is None else readers
    def config(mode, **more):
        return ResDiTConfig(base_size=pipe.base_size, mode=mode, proportional_attention=proportional_attention, mu=mu,
                            **({} if local_steps is None else {"local_steps": local_steps}),
                            **({} if global_steps is None else {"global_steps": global_steps}), **more)

    configs = {mode: config(mode) for mode in modes}
    def windows(cfg) -> dict:  # the windows' splice and overlap; a mode without windows (tiling's tiles) keeps its own
        if not has_local_branch(cfg):
            return {}
        given = {"splice": splice, "window_overlap": window_overlap if cfg.spec.overlapping_windows else None}
        return {k: v for k, v in given.items() if v is not None}

    configs = {mode: config(mode, **changes) if (changes := windows(cfg)) else cfg for mode, cfg in configs.items()}
    windowed = {mode for mode, cfg in configs.items() if window_prompts and has_local_branch(cfg)}
    if window_prompts:  # refused before any image: no mode to apply it to, or a schedule without a local-only phase
        if not windowed:
            raise ResDiTConfigError(f"window_prompts acts in a local branch, and none of modes {modes} has one: add "
                                    "resdit, resdit_fast or resdit_paper.")
        for mode in sorted(windowed):
            check_mode(configs[mode])

    prompts = evaluation_prompts(n_prompts, seed, getattr(pipe, "world", None))
    base = pipe.base_size
    rows = []
    for scale in scales:
        h, w = canvas_size(base, scale)
        for mode in modes:
            start = time.perf_counter()
            cfg = configs[mode]
            local = mode in windowed and (h, w) != tuple(base)
            images = generate_batch(pipe, prompts, h, w, steps, seed, config=cfg,
                                    local_prompts=[window_prompt(p, pipe.world) for p in prompts] if local else None)
            row = {"mode": mode, "scale": scale, "size": [h, w], "steps": steps,
                   "proportional_attention": cfg.uses_proportional_attention, "mu": cfg.shift,
                   "local_steps": cfg.local_steps if has_local_branch(cfg) else None,  # None where it cannot act
                   "global_steps": global_phase(cfg, steps),  # the count that ran; None where there is none
                   "local_prompt": "window_prompt" if local else None,
                   "splice": cfg.weighting if has_local_branch(cfg) else None,
                   "window_overlap": cfg.overlap if has_local_branch(cfg) else None,
                   **score(images, prompts, getattr(pipe, "world", None)),
                   "seconds": round(time.perf_counter() - start, 1), "readers": sorted(readers)}
            for name in sorted(readers):
                row.update(readers[name](images, prompts, tuple(base), getattr(pipe, "world", None)))
            rows.append(row)
            if progress:
                print(dumps_strict(row), flush=True)
    return rows


def evaluate_cli(args) -> int:
    from ..io import atomic_write
    from .pipeline import load_pipeline

    from ..io import check_writable
    from ..loading import check_folder

    if args.out:
        check_writable(args.out)
    check_folder(args.model)
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    rows = evaluate(pipe, args.modes, args.scales, args.prompts, args.steps, args.seed, args.proportional_attention,
                    mu=args.mu, local_steps=args.local_steps, global_steps=args.global_steps,
                    window_prompts=args.window_prompts, splice=args.splice,
                    window_overlap=args.window_overlap)
    if args.out:
        from ..provenance import provenance

        seeds = {"first": args.seed, "rule": "sample i uses the noise of seed + i"}
        record = {"provenance": provenance(model=args.model, seeds=seeds,
                                           config={"modes": args.modes, "scales": args.scales, "prompts": args.prompts,
                                                   "steps": args.steps, "mu": args.mu,
                                                   "proportional_attention": args.proportional_attention,
                                                   "local_steps": args.local_steps,
                                                   "global_steps": args.global_steps,
                                                   "window_prompts": args.window_prompts,
                                                   "splice": args.splice,
                                                   "window_overlap": args.window_overlap}),
                  "rows": rows}
        with atomic_write(args.out) as f:
            f.write(dumps_strict(record, indent=1))
    return 0
