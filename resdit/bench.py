"""``resdit bench``: time each mode and phase of the toy model against direct inference.

Per scale, one transformer forward per case is timed, cases interleaved and repeated
(median): ``direct`` (stock processors), ``scaled_pe`` (global branch through the ResDiT
processor), the three ResDiT phases (``global``, ``fused``, ``local``), one ``tiling`` step and
``direct`` while recording 16 probes. Whole generations are composed from the phase medians
along the schedule (``resdit``: 10/10/15 of 35; ``two_stage``: a base-size generation, timed with
the base grid's direct step, plus the re-noised steps at the target size with scaled PE). Each ratio is to
direct at the same size, printed next to the cost model's prediction. Peak memory is the
highest total of live CPU tensor bytes during one forward (``torch.profiler``), or CUDA's
``max_memory_allocated`` on a GPU.

Time with ``OMP_WAIT_POLICY=PASSIVE``: with OpenMP's default spinning, a second busy process on
a 2-core machine made a forward pass 70x slower.
"""

from __future__ import annotations

import statistics
import time

import torch

from .apply import enabled, set_step
from .config import MODES, ResDiTConfig
from .io import dumps_strict
from .cost import FLUX_DEV_CONFIG, TimeModel, generation_flops, step_flops, two_stage_steps
from .schedule import FUSED, GLOBAL, LOCAL, phase_lengths

TEXT_TOKENS = 20
PHASE_STEPS = {"global": 0, "fused": 15, "local": 30}  # steps of a 35-step schedule in each phase


def _inputs(config, grid, device, text_tokens: int = TEXT_TOKENS, dtype=torch.float32):
    from .positions import extrapolated_ids

    g = torch.Generator().manual_seed(0)
    c = dict(config)
    return dict(
        hidden_states=torch.randn(1, grid[0] * grid[1], c["in_channels"], generator=g).to(device, dtype),
        encoder_hidden_states=torch.randn(1, text_tokens, c["joint_attention_dim"], generator=g).to(device, dtype),
        pooled_projections=torch.randn(1, c["pooled_projection_dim"], generator=g).to(device, dtype),
        timestep=torch.full((1,), 0.5, device=device, dtype=dtype),
        img_ids=extrapolated_ids(grid).to(device), txt_ids=torch.zeros(text_tokens, 3, device=device),
        guidance=torch.full((1,), 3.5, device=device, dtype=dtype) if c.get("guidance_embeds") else None,
    )


def _peak_bytes(fn) -> int:
    """Peak live bytes allocated while ``fn`` runs."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Allocations are charged to the op that made them (self usage), frees to "[memory]" events.
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:
        live += e.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def _cases(model, base_grid):
    """name -> (context factory, step to set)."""
    from .record import record

    def mode(name, **kw):
        return lambda: enabled(model, ResDiTConfig(mode=name, **kw), base_grid=base_grid)

    return {
        ("direct", "all"): (None, None),
        ("scaled_pe", "all"): (mode("scaled_pe"), None),
        ("resdit", "global"): (mode("resdit"), PHASE_STEPS["global"]),
        ("resdit", "fused"): (mode("resdit"), PHASE_STEPS["fused"]),
        ("resdit", "local"): (mode("resdit"), PHASE_STEPS["local"]),
        ("resdit_fast", "fused"): (mode("resdit_fast"), PHASE_STEPS["fused"]),
        ("tiling", "all"): (mode("tiling"), None),
        ("direct+record16", "all"): (lambda: record(model, points=["probs"], probes=[(i / 16, i / 16)
                                                                                   for i in range(16)]), None),
    }


#: the cost model's phase of every timed case
COST_PHASE = {("direct", "all"): GLOBAL, ("scaled_pe", "all"): GLOBAL, ("direct+record16", "all"): GLOBAL,
              ("resdit", "global"): GLOBAL, ("resdit", "fused"): FUSED, ("resdit", "local"): LOCAL,
              ("resdit_fast", "fused"): FUSED, ("tiling", "all"): "tiling"}


def _cost_pool(key) -> int:
    """The pooling factor the timed case ran (its config resolves it, as the plan does)."""
    return ResDiTConfig(mode=key[0]).pool if key[0] in MODES else 1


def compose(step: dict, base_step: float, steps: int, strength: float) -> dict[str, float]:
    """Whole generations from per-step costs ``step[(mode, phase)]``: direct, ResDiT along its schedule, and
    two-stage (a base-size generation, then the re-noised steps at the target size with scaled PE)."""
    g, f, loc = phase_lengths(steps, local_fraction=MODES["resdit"].local_fraction)
    return {"direct": steps * step["direct", "all"],
            "resdit": g * step["resdit", "global"] + f * step["resdit", "fused"] + loc * step["resdit", "local"],
            "resdit_fast": g * step["resdit", "global"] + f * step["resdit_fast", "fused"] + loc * step["resdit", "local"],
            "two_stage": steps * base_step + two_stage_steps(steps, strength) * step["scaled_pe", "all"]}


def bench(model, base_grid: tuple[int, int], scales=(2, 4, 8), steps: int = 35, repeats: int = 3,
          memory: bool = True, progress: bool = True, strength: float = 0.6,
          text_tokens: int = TEXT_TOKENS) -> list[dict]:
    """Per-step medians and composed whole-generation ratios for each scale."""
    import contextlib

    config = model.config
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    results = []
    model_time = TimeModel.measure(config, device, dtype=dtype)  # micro-benchmarks, before any case
    base_inputs = _inputs(config, base_grid, device, text_tokens, dtype)
    with torch.no_grad():
        base_times = []
        for rep in range(repeats + 1):
            t0 = time.perf_counter()
            model(**base_inputs)
            if rep:
                base_times.append(time.perf_counter() - t0)
    base_step = statistics.median(base_times)
    for scale in scales:
        grid = (int(base_grid[0] * scale), int(base_grid[1] * scale))
        inputs = _inputs(config, grid, device, text_tokens, dtype)
        cases = _cases(model, base_grid)
        times = {k: [] for k in cases}
        peaks = {}

        def forward():
            with torch.no_grad():
                model(**inputs)

        for rep in range(repeats + 1):  # the first round warms up
            for key, (ctx, step) in cases.items():
                with (ctx() if ctx else contextlib.nullcontext()):
                    if step is not None:
                        set_step(model, step, 35)
                    t0 = time.perf_counter()
                    forward()
                    elapsed = time.perf_counter() - t0
                    if rep == 0 and memory:
                        peaks[key] = _peak_bytes(forward)
                if rep:
                    times[key].append(elapsed)
        med = {k: statistics.median(v) for k, v in times.items()}
        direct = med["direct", "all"]
        flops = {k: step_flops(config, grid, base_grid, text_tokens, phase, pool=_cost_pool(k))
                 for k, phase in COST_PHASE.items()}
        predicted_step = {k: f / flops["direct", "all"] for k, f in flops.items()}
        for (name, phase), seconds in med.items():
            results.append(dict(mode=name, phase=phase, scale=scale, grid=list(grid), kind="step", seconds=seconds,
                                ratio_to_direct=seconds / direct, predicted_ratio=predicted_step[name, phase],
                                peak_mb=round(peaks.get((name, phase), 0) / 2**20, 2)))
        full = compose(med, base_step, steps, strength)
        flop_direct = generation_flops(config, grid, base_grid, text_tokens, "direct", steps)
        for name, seconds in full.items():
            results.append(dict(mode=name, phase="generation", scale=scale, grid=list(grid), kind="composed",
                                seconds=seconds, ratio_to_direct=seconds / full["direct"],
                                predicted_ratio=generation_flops(config, grid, base_grid, text_tokens, name, steps,
                                                                 strength) / flop_direct, peak_mb=None))
        if progress:
            for r in results[-len(med) - len(full):]:
                print(f"{r['scale']:>4g}x {r['mode']:>16s} {r['phase']:>10s}  {r['seconds'] * 1000:9.1f} ms  "
                      f"ratio {r['ratio_to_direct']:.3f}  predicted {r['predicted_ratio']:.3f}  "
                      f"peak {r['peak_mb']} MB", flush=True)
    add_time_predictions(results, model_time, config, base_grid, steps, strength, text_tokens)
    return results


def add_time_predictions(results: list[dict], model: TimeModel, config, base_grid, steps: int,
                         strength: float, text_tokens: int = TEXT_TOKENS) -> None:
    """Add ``predicted_ratio_time``: the two-term :class:`~resdit.cost.TimeModel`'s ratio to direct."""
    for r in results:
        r["time_model"] = {"per_linear_flop": model.per_linear_flop, "per_attention_flop": model.per_attention_flop,
                           "per_row": model.per_row}
    for r in results:
        grid = tuple(r["grid"])
        step = {k: model.step(config, grid, base_grid, text_tokens, phase, _cost_pool(k)) for k, phase in COST_PHASE.items()}
        if r["kind"] == "step":
            predicted = step[r["mode"], r["phase"]] / step["direct", "all"]
        else:
            whole = compose(step, model.step(config, base_grid, base_grid, text_tokens, GLOBAL), steps, strength)
            predicted = whole[r["mode"]] / whole["direct"]
        r["predicted_ratio_time"] = predicted


#: whole generations timed end to end by :func:`bench_generations`: label -> ResDiTConfig keyword arguments
GENERATION_CASES = {
    "direct": dict(mode="direct"),
    "resdit": dict(mode="resdit"),  # the defaults: the global branch at the training token count
    "resdit+full_tokens": dict(mode="resdit", global_tokens="full"),  # the defaults before it
    "resdit_fast": dict(mode="resdit_fast"),
    "two_stage": dict(mode="two_stage"),
    "tiling": dict(mode="tiling"),
}


def bench_generations(pipe, scales=(4, 8), steps: int = 20, repeats: int = 1, cases=None, progress: bool = True,
                      prompt: str = "a red striped circle at top left on waves") -> list[dict]:
    """Whole generations timed end to end (``resdit.generate``: every step, the two passes of ``two_stage``, the
    decoding), the cases interleaved within each repeat (median over repeats), with each one's ratio to direct
    and to two-stage at the same size and the cost model's FLOP ratio beside it."""
    from .generate import generate

    cases = GENERATION_CASES if cases is None else cases
    base = tuple(pipe.base_size)
    config = pipe.transformer.config
    px = 2 * config.patch_size
    text = int(pipe.text_encoder.config.get("max_tokens", 1))
    rows = []
    for scale in scales:
        h, w = (2 * int(round(s * scale / 2)) for s in base)
        grid, base_grid = (h // px, w // px), (base[0] // px, base[1] // px)
        times = {k: [] for k in cases}
        for _ in range(repeats):
            for label, kwargs in cases.items():
                cfg = ResDiTConfig(base_size=base, **kwargs)
                t0 = time.perf_counter()
                generate(pipe, prompt, cfg, h, w, steps, seed=0)
                times[label].append(time.perf_counter() - t0)
                if progress:
                    print(f"{scale:>4g}x {label:>20s}  {times[label][-1]:8.1f} s", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        flop_direct = generation_flops(config, grid, base_grid, text, "direct", steps)
        for label, seconds in med.items():
            cfg = ResDiTConfig(base_size=base, **cases[label])
            rows.append(dict(mode=label, config=cases[label], phase="generation", kind="measured", scale=scale,
                             size=[h, w], steps=steps, seconds=seconds, repeats=repeats, seconds_each=times[label],
                             ratio_to_direct=seconds / med["direct"] if "direct" in med else None,
                             ratio_to_two_stage=seconds / med["two_stage"] if "two_stage" in med else None,
                             predicted_ratio=generation_flops(config, grid, base_grid, text, cfg, steps) / flop_direct))
    return rows



def build_model(name: str, device: str):
    """``(model, base grid, text tokens)`` for ``--config``: the shipped toy model, or a randomly initialised
    full-size FLUX.1-dev transformer (bf16 on CUDA) at base 1024^2 = 64x64 tokens with 512 text tokens."""
    from .toy.model import WEIGHTS_DIR, build_transformer, load_weights

    if name == "toy":
        if (WEIGHTS_DIR / "config.json").exists():
            return load_weights()[0].to(device), (16, 16), TEXT_TOKENS
        return build_transformer().eval().to(device), (16, 16), TEXT_TOKENS  # timing needs no trained weights
    if name == "flux-dev":
        from diffusers import FluxTransformer2DModel

        dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
        with torch.device(device):
            model = FluxTransformer2DModel(**FLUX_DEV_CONFIG).to(dtype).eval()
        return model, (64, 64), 512
    raise ValueError(f"Unknown bench config {name!r}: use 'toy' or 'flux-dev'.")


def _chosen_cases(args) -> dict | None:
    """``--cases`` as a subset of :data:`GENERATION_CASES` in its order (None: all), or a clear error: a name that
    is not a case would otherwise time nothing and write an empty result."""
    chosen = getattr(args, "cases", None)
    if chosen is None:
        return None
    if not getattr(args, "generations", False):
        raise ValueError("--cases selects whole-generation cases: add --generations.")
    unknown = sorted(set(chosen) - set(GENERATION_CASES))
    if unknown:
        raise ValueError(f"Unknown bench case(s) {unknown}: choose from {list(GENERATION_CASES)}.")
    return {k: v for k, v in GENERATION_CASES.items() if k in chosen}


def main(args) -> int:
    cases = _chosen_cases(args)  # before any work
    torch.set_num_threads(args.threads)
    if getattr(args, "generations", False):
        return _main_generations(args, cases)
    model, base_grid, text_tokens = build_model(getattr(args, "config", "toy"), getattr(args, "device", "cpu"))
    results = bench(model, base_grid, tuple(args.scales), args.steps, args.repeats, memory=not args.no_memory,
                    progress=not args.json, text_tokens=text_tokens)
    if args.json:
        device = getattr(args, "device", "cpu")
        card = torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "cpu"
        from .provenance import provenance

        made_by = provenance(device=device, config={k: v for k, v in vars(args).items() if k != "func"},
                             model=None if getattr(args, "config", "toy") == "toy" else "random:flux-dev")
        print(dumps_strict({"provenance": made_by, "results": results, "threads": args.threads,
                            "config": getattr(args, "config", "toy"), "device": card}))
    else:
        print("\nratio to direct: measured / FLOP model / time model (linear and attention FLOPs and token rows at "
              "micro-benchmarked rates)")
        for r in results:
            print(f"{r['scale']:>4g}x {r['mode']:>16s} {r['phase']:>10s}  {r['ratio_to_direct']:.3f} / "
                  f"{r['predicted_ratio']:.3f} / {r['predicted_ratio_time']:.3f}")
    return 0


def _main_generations(args, cases: dict | None = None) -> int:
    from .io import atomic_write
    from .provenance import provenance
    from .toy import load_pipeline

    if getattr(args, "config", "toy") != "toy":
        raise ValueError("--generations times the toy pipeline; for FLUX.1-dev geometry use scripts/flux_geometry.py.")
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    rows = bench_generations(pipe, tuple(args.scales), args.steps, args.repeats, cases=cases, progress=not args.json)
    record = {"provenance": provenance(config={k: v for k, v in vars(args).items() if k != "func"}),
              "results": rows, "threads": args.threads}
    if args.out:
        with atomic_write(args.out) as f:
            f.write(dumps_strict(record, indent=1) + "\n")
    if args.json:
        print(dumps_strict(record))
    else:
        def ratio(x):
            return "n/a" if x is None else f"{x:.3f}"

        for r in rows:
            print(f"{r['scale']:>4g}x {r['mode']:>20s}  {r['seconds']:8.1f} s  x direct {ratio(r['ratio_to_direct'])}  "
                  f"x two-stage {ratio(r['ratio_to_two_stage'])}  (FLOP model x direct {r['predicted_ratio']:.3f})")
    return 0
