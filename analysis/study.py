"""The study: conditions x scales x prompts x seeds on the toy model, scored against exact renders.

``resdit study --out DIR`` writes ``DIR/results.jsonl`` (one line per case; rewritten
atomically after every group, and a re-run skips finished cases) and ``DIR/summary.json``
(per condition and scale: mean and 95 % bootstrap CI of every metric, KID, seconds per image).
Shards (``--shard i/n`` or ``accelerate launch``'s ``RANK``/``WORLD_SIZE``) split the groups
and write ``results.{i}.jsonl``; ``--summarize`` merges them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resdit import MODES, ResDiTConfig, generate
from resdit.geometry import grid_starts, window_starts
from resdit.io import atomic_write, dumps_strict
from resdit.toy.evaluate import evaluation_prompts
from resdit.toy.world import parse_prompt

from resdit.toy.world import texture_period as world_texture_period

from .metrics import (RandomFeatures, base_size_crops, border_lines, detail_score, drawn_detail, ground_detail, kid,
                      layout_score, noise_score, seam_score, texture_period, truth)

# name -> ResDiTConfig keyword arguments. The paper's conditions and ablations first, then
# baselines, then conditions beyond the paper (marked +).
CONDITIONS: dict[str, dict] = {
    "base": dict(proportional_attention=False, mode="direct"),  # (a): generated at the base size whatever the scale
    "extrapolate": dict(proportional_attention=False, mode="extrapolate"),  # (b)
    "scaled_pe": dict(proportional_attention=False, mode="scaled_pe"),  # (c)
    "patch_pe": dict(proportional_attention=False, mode="patch_pe"),  # (d)
    "patch_pe_local": dict(proportional_attention=False, mode="patch_pe_local"),  # (e)
    "resdit": dict(proportional_attention=False, mode="resdit"),
    "resdit_no_pes": dict(proportional_attention=False, mode="resdit_no_pes"),
    "resdit_no_pipe": dict(proportional_attention=False, mode="resdit_no_pipe"),
    "resdit_no_psf": dict(proportional_attention=False, mode="resdit_no_psf"),
    "resdit_no_mop_gws": dict(proportional_attention=False, mode="resdit_no_mop_gws"),
    "resdit_mop_only": dict(proportional_attention=False, mode="resdit_mop_only"),
    "direct": dict(proportional_attention=False, mode="direct"),
    "ntk": dict(proportional_attention=False, mode="ntk"),
    "time_aware": dict(proportional_attention=False, mode="time_aware"),
    "dype": dict(proportional_attention=False, mode="dype"),
    "tiling": dict(proportional_attention=False, mode="tiling"),
    "tiling_gaussian": dict(proportional_attention=False, mode="tiling_gaussian"),
    "two_stage": dict(proportional_attention=False, mode="two_stage"),
    "upscale": dict(proportional_attention=False, mode="upscale"),
    "scaled_pe+pa": dict(mode="scaled_pe", proportional_attention=True),
    "resdit+pa": dict(mode="resdit", proportional_attention=True),
    # Beyond the paper: fuse until the last step (no local-only phase), so the global branch keeps
    # the low frequencies that the local-only phase lets drift window by window (seams).
    "resdit+fuse_to_end": dict(proportional_attention=False, mode="resdit", local_steps=0),
    "resdit+fuse_to_end+pa": dict(mode="resdit", local_steps=0, proportional_attention=True),
    # The scheduler shift as a factor: FLUX's own, linear in the token count and unclamped.
    "scaled_pe@pipeline_shift": dict(proportional_attention=False, mode="scaled_pe", shift="pipeline"),
    "resdit@pipeline_shift": dict(proportional_attention=False, mode="resdit", shift="pipeline"),
    # The toy model card's best 4x setting, and the proposed fix under the same shift.
    "scaled_pe+pa@pipeline_shift": dict(mode="scaled_pe", proportional_attention=True, shift="pipeline"),
    "resdit+fuse_to_end+pa@pipeline_shift": dict(mode="resdit", local_steps=0, proportional_attention=True,
                                                 shift="pipeline"),
    # Phases at the base schedule's noise levels of the paper's steps 10 and 20 of 35 (instead of step counts).
    "resdit@sigma": dict(mode="resdit", proportional_attention=False, phase_by="sigma"),
    "resdit+pa@sigma": dict(mode="resdit", proportional_attention=True, phase_by="sigma"),
}
SMOKE_CONDITIONS = ["base", "extrapolate", "scaled_pe", "patch_pe_local", "resdit", "tiling", "two_stage"]
METRICS = ("correct", "count", "centre_error", "size_ratio", "detail", "detail_in_place", "noise", "ground_detail",
           "period_error", "seam", "seam_mop")


@dataclass
class StudyConfig:
    out: str
    scales: tuple[float, ...] = (2.0, 4.0)
    prompts: int = 16
    seeds: int = 2
    steps: int = 20
    conditions: tuple[str, ...] = tuple(CONDITIONS)
    model: str | None = None
    shard: tuple[int, int] = (0, 1)
    batch: int = 16
    shift: str = "base"  # "base": every condition uses the base size's shift; "pipeline": the pipeline's own


def condition_config(name: str, base: tuple[int, int], shift: str = "base") -> ResDiTConfig:
    """The :class:`ResDiTConfig` of a condition. With ``shift="base"`` every condition that does
    not ask for the pipeline's own shift runs with the base size's (``mu="base"``): FLUX's shift
    grows without bound with the token count (toy: mu 3.75 at 2x, 14 at 4x), which leaves no steps
    to denoise and confounds every other factor."""
    kwargs = dict(CONDITIONS[name])
    own = kwargs.pop("shift", shift)
    return ResDiTConfig(base_size=base, mu=own, **kwargs)


def case_key(condition: str, scale: float, prompt: int, seed: int) -> str:
    return f"{condition}|{scale:g}|{prompt}|{seed}"


def _groups(cfg: StudyConfig):
    """(condition, scale) groups in a fixed order; ``base`` once, at scale 1."""
    groups = []
    for cond in cfg.conditions:
        for scale in ((1.0,) if cond == "base" else cfg.scales):
            if (cond, scale) not in groups:
                groups.append((cond, scale))
    return groups


def _load(path: Path) -> dict[str, dict]:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # never written atomically by us, but tolerate a damaged line
            if "detail_in_place" not in row and "detail" in row:
                # written before the layout-free detail: its "detail" was the in-place measure
                row["detail_in_place"], row["detail"] = row["detail"], None
            rows[row["key"]] = row
    return rows


def _write(path: Path, rows: dict[str, dict]) -> None:
    with atomic_write(path) as f:
        for row in rows.values():
            f.write(dumps_strict(row) + "\n")


def window_borders(layout: str, size_px: int, base_px: int, px: int) -> list[int]:
    """Pixel positions of the window borders of a partition layout (``"mop"`` or ``"grid"``) along one axis."""
    place = window_starts if layout == "mop" else grid_starts
    return border_lines(place(size_px // px, base_px // px), base_px // px, size_px // px, px)


def score_case(image: np.ndarray, prompt: str, base: tuple[int, int], layout: str = "mop", px: int = 2,
               world: str | None = None) -> dict:
    """Every per-image metric of one sample ``[3, H, W]``.

    ``detail`` is layout-free (the drawn object's texture band against the exact render's), ``detail_in_place``
    the same band inside the true object mask; ``noise`` the speckle above every texture band; ``ground_detail``
    the ground texture away from objects (NaN on a plain ground). ``seam`` is measured on the borders of the
    windows the condition itself used (``layout``: its ``ModeSpec.windows``), ``seam_mop`` always on the
    minimum-overlap borders. ``px``: pixels per token side (toy: 2); ``world``: the model's toy world.
    """
    scene = parse_prompt(prompt, world)
    obj = scene.objects[0]
    _, h, w = image.shape
    gt, masks = truth(scene, h, w)
    lay = layout_score(image, obj, masks[0], world)
    period = texture_period(image, masks[0]) if obj.texture == "striped" else float("nan")

    def seam(kind: str) -> float:
        rows, cols = window_borders(kind, h, base[0], px), window_borders(kind, w, base[1], px)
        return seam_score(image, rows, cols) if (rows or cols) else float("nan")

    stripe = world_texture_period("striped", world)
    return {
        "correct": float(lay.correct), "count": lay.count, "centre_error": lay.centre_error,
        "size_ratio": lay.size_ratio, "detail": drawn_detail(image, gt, obj, masks[0], world),
        "detail_in_place": detail_score(image, gt, obj, masks[0], world), "noise": noise_score(image, gt),
        "ground_detail": ground_detail(image, gt, scene, masks),
        "period_error": abs(period - stripe) / stripe, "seam": seam(layout), "seam_mop": seam("mop"),
    }


def run_study(cfg: StudyConfig, progress: bool = True) -> Path:
    """Run (or resume) this shard's cases; return the results file."""
    from resdit.toy import load_pipeline

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rank, shards = cfg.shard
    path = out / ("results.jsonl" if shards == 1 else f"results.{rank}.jsonl")
    rows = _load(path)
    pipe = load_pipeline(cfg.model)
    base = tuple(pipe.base_size)
    toy_world = pipe.world
    prompts = evaluation_prompts(cfg.prompts, seed=0, world=toy_world)
    groups = [g for i, g in enumerate(_groups(cfg)) if i % shards == rank]
    for cond, scale in groups:
        h, w = (2 * int(round(s * scale / 2)) for s in base)
        todo = [(p, s) for p in range(len(prompts)) for s in range(cfg.seeds)
                if case_key(cond, scale, p, s) not in rows]
        if not todo:
            continue
        rc = condition_config(cond, base, cfg.shift)
        started = time.perf_counter()
        for lo in range(0, len(todo), cfg.batch):
            chunk = todo[lo:lo + cfg.batch]
            noise = torch.stack([torch.randn(3, h, w, generator=torch.Generator().manual_seed(1000 * s + p))
                                 for p, s in chunk])
            t0 = time.perf_counter()
            images = generate(pipe, [prompts[p] for p, _ in chunk], rc, h, w, cfg.steps, latents=noise).numpy()
            per_image = (time.perf_counter() - t0) / len(chunk)
            keys = [case_key(cond, scale, p, s) for p, s in chunk]
            _save_features(out, cond, scale, keys, images, base)
            _save_images(out, cond, scale, keys, images)
            for (p, s), image in zip(chunk, images):
                rows[case_key(cond, scale, p, s)] = {
                    "key": case_key(cond, scale, p, s), "condition": cond, "scale": scale, "prompt": prompts[p],
                    "prompt_index": p, "seed": s, "size": [h, w], "base": list(base), "steps": cfg.steps,
                    "seconds": per_image, "world": toy_world,
                    **score_case(image, prompts[p], base, rc.spec.windows, world=toy_world)}
            _write(path, rows)
        if progress:
            done = [r for r in rows.values() if r["condition"] == cond and r["scale"] == scale]
            acc = np.mean([r["correct"] for r in done])
            print(f"{cond:>24s} {scale:g}x  n={len(done)}  correct={acc:.2f}  "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
    return path


_EXTRACT = RandomFeatures()


def _features(images: np.ndarray, base: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Whole-image and base-size-crop (4 per image) random features."""
    return _EXTRACT(images), _EXTRACT(base_size_crops(images, base, per_image=4))


def _save_features(out: Path, cond: str, scale: float, keys: list[str], images: np.ndarray, base) -> None:
    full, patch = (f.astype(np.float32) for f in _features(images, base))
    _merge_npz(_group_file(out, "features", cond, scale),
               {**{f"{k}|full": f for k, f in zip(keys, full)},
                **{f"{k}|patch": f for k, f in zip(keys, patch.reshape(len(keys), 4, -1))}})


def _group_file(out: Path, kind: str, cond: str, scale: float) -> Path:
    return out / kind / f"{cond}@{scale:g}.npz"


def _merge_npz(path: Path, arrays: dict, compressed: bool = False) -> None:
    old = dict(np.load(path, allow_pickle=False)) if path.exists() else {}
    with atomic_write(path, binary=True) as f:
        (np.savez_compressed if compressed else np.savez)(f, **{**old, **arrays})


def _save_images(out: Path, cond: str, scale: float, keys: list[str], images: np.ndarray) -> None:
    """Every sample as uint8 ``[3, H, W]`` (compressed; git-ignored), so metrics can be recomputed later."""
    as_bytes = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    _merge_npz(_group_file(out, "images", cond, scale), dict(zip(keys, as_bytes)), compressed=True)


def load_images(out: str | Path, cond: str, scale: float) -> dict[str, np.ndarray]:
    """Stored samples of one group as float ``[3, H, W]`` in [0, 1], by case key ({} if none were kept)."""
    path = _group_file(Path(out), "images", cond, scale)
    if not path.exists():
        return {}
    with np.load(path) as stored:
        return {k: stored[k].astype(np.float32) / 255.0 for k in stored.files}


def rescore(out: str | Path, progress: bool = True) -> dict:
    """Recompute every per-image metric and the KID features from the stored images, then the summary.

    Cases whose image was not kept (studies run before images were stored) keep their recorded values;
    the count of both is printed.
    """
    out = Path(out)
    path = out / "results.jsonl"
    rows = _load(path)
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows.values():
        groups.setdefault((r["condition"], r["scale"]), []).append(r)
    redone = kept = 0
    for (cond, scale), rs in groups.items():
        images = load_images(out, cond, scale)
        layout = MODES[CONDITIONS[cond]["mode"]].windows if cond in CONDITIONS else "mop"
        have = [r for r in rs if r["key"] in images]
        kept += len(rs) - len(have)
        if not have:
            continue
        base = tuple(have[0].get("base", (32, 32)))
        for r in have:
            r.update(score_case(images[r["key"]], r["prompt"], base, layout, world=r.get("world", "v1")))
        _save_features(out, cond, scale, [r["key"] for r in have], np.stack([images[r["key"]] for r in have]), base)
        redone += len(have)
    _write(path, rows)
    if progress:
        print(f"rescored {redone} cases from stored images; kept the recorded values of {kept}", flush=True)
    return summarize(out)


def _kid_scores(out: Path, cond: str, scale: float, rs: list[dict], base) -> dict:
    """KID and patch-KID of a group against exact renders of its prompts at the same size."""
    path = out / "features" / f"{cond}@{scale:g}.npz"
    if not path.exists() or len(rs) < 2:
        return {}
    stored = np.load(path)
    keys = [r["key"] for r in rs if f"{r['key']}|full" in stored]
    if len(keys) < 2:
        return {}
    h, w = rs[0]["size"]
    reference = np.stack([truth(parse_prompt(r["prompt"], r.get("world", "v1")), h, w)[0] for r in rs])
    ref_full, ref_patch = _features(reference, base)
    full = np.stack([stored[f"{k}|full"] for k in keys])
    patch = np.concatenate([stored[f"{k}|patch"] for k in keys])
    return {"kid": kid(full, ref_full), "patch_kid": kid(patch, ref_patch)}


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean (NaNs dropped)."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n_boot, len(values))).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(out: str | Path) -> dict:
    """Merge shard files into ``results.jsonl`` and write ``summary.json``."""
    out = Path(out)
    rows: dict[str, dict] = {}
    for path in sorted(out.glob("results*.jsonl")):
        rows.update(_load(path))
    _write(out / "results.jsonl", rows)
    for path in out.glob("results.*.jsonl"):
        path.unlink()
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows.values():
        groups.setdefault((r["condition"], r["scale"]), []).append(r)
    summary = []
    for (cond, scale), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], list(CONDITIONS).index(kv[0][0])
                                                                     if kv[0][0] in CONDITIONS else 99)):
        entry = {"condition": cond, "scale": scale, "n": len(rs), "size": rs[0]["size"],
                 "seconds_per_image": float(np.mean([r["seconds"] for r in rs]))}
        for m in METRICS:
            vals = np.array([r[m] for r in rs], dtype=float)
            lo, hi = bootstrap_ci(vals)
            entry[m] = {"mean": float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"),
                        "ci95": [lo, hi]}
        base = tuple(rs[0].get("base", (32, 32)))
        entry.update(_kid_scores(out, cond, scale, rs, base))
        summary.append(entry)
    result = {"groups": summary, "metrics": list(METRICS),
              "notes": "mean and 95% bootstrap CI over prompts x seeds; correct = one object of the prompted colour "
                       "in the prompted cell; detail = texture-band energy relative to the exact render; seam = "
                       "gradient energy on base-window borders over elsewhere (1 = none)."}
    with atomic_write(out / "summary.json") as f:
        f.write(dumps_strict(result, indent=1))
    return result


def shard_from_env() -> tuple[int, int]:
    """``(rank, world)`` from ``accelerate launch`` / torchrun variables, else ``(0, 1)``."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def main(args) -> int:
    if getattr(args, "rescore", None):
        rescore(args.rescore)
        return 0
    if not args.out:
        raise ValueError("resdit study needs --out DIR (or --rescore DIR to recompute a stored study's metrics).")
    if args.summarize:
        summarize(args.out)
        return 0
    conditions = tuple(args.conditions or (SMOKE_CONDITIONS if args.smoke else CONDITIONS))
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"Unknown conditions {sorted(unknown)}; choose among {list(CONDITIONS)}.")
    shard = tuple(int(x) for x in args.shard.split("/")) if args.shard else shard_from_env()
    if args.smoke:
        cfg = StudyConfig(out=args.out, scales=(2.0,), prompts=2, seeds=1, steps=6, conditions=conditions,
                          model=args.model, shard=shard, shift=args.shift)
    else:
        cfg = StudyConfig(out=args.out, scales=tuple(args.scales), prompts=args.prompts, seeds=args.seeds,
                          steps=args.steps, conditions=conditions, model=args.model, shard=shard, shift=args.shift)
    torch.set_num_threads(args.threads)
    run_study(cfg)
    if shard[1] == 1:
        summarize(args.out)
    else:
        print(f"shard {shard[0]}/{shard[1]} done; run `resdit study --out {args.out} --summarize` after all shards.")
    return 0



# (claim, condition with the ingredient, condition without it, metric, the direction the paper expects)
CLAIMS = [
    ("PES fixes layout (scaled vs extrapolated PE, global attention)", "scaled_pe", "extrapolate", "correct", +1),
    ("PES fixes layout inside ResDiT (full vs w/o PES)", "resdit", "resdit_no_pes", "correct", +1),
    ("PIPE improves detail (full vs w/o PIPE)", "resdit", "resdit_no_pipe", "detail", +1),
    ("Local attention sharpens detail (ResDiT vs scaled PE)", "resdit", "scaled_pe", "detail", +1),
    ("PSF avoids repetition (full vs w/o PSF: spatial average)", "resdit", "resdit_no_psf", "count", -1),
    ("PSF avoids blur (full vs w/o PSF)", "resdit", "resdit_no_psf", "detail", +1),
    ("MOP+GWS remove seams (full vs hard grid)", "resdit", "resdit_no_mop_gws", "seam", -1),
    ("GWS beyond MOP (full vs uniform splice)", "resdit", "resdit_mop_only", "seam", -1),
    ("ResDiT vs two-stage: layout", "resdit", "two_stage", "correct", +1),
    ("ResDiT vs two-stage: detail", "resdit", "two_stage", "detail", +1),
    ("Fusing to the last step (our fix) vs the paper's schedule: layout", "resdit+fuse_to_end", "resdit", "correct", +1),
    ("Fusing to the last step vs the paper's schedule: seams", "resdit+fuse_to_end", "resdit", "seam", -1),
    ("Proportional attention (scaled PE)", "scaled_pe+pa", "scaled_pe", "correct", +1),
]


def paired_difference(rows: list[dict], a: str, b: str, metric: str, scale: float, n_boot: int = 2000,
                      seed: int = 0) -> dict | None:
    """Mean of ``metric(a) - metric(b)`` over cases both ran (same prompt and seed), with a 95 %
    bootstrap CI; None if they share no case."""
    index = {(r["condition"], r["scale"], r["prompt_index"], r["seed"]): r[metric] for r in rows if metric in r}
    diffs = [index[a, scale, p, s] - index[b, scale, p, s] for (c, sc, p, s) in index
             if c == a and sc == scale and (b, scale, p, s) in index]
    diffs = np.array([d for d in diffs if np.isfinite(d)], dtype=float)
    if len(diffs) == 0:
        return None
    lo, hi = bootstrap_ci(diffs, n_boot, seed)
    return {"mean": float(diffs.mean()), "ci95": [lo, hi], "n": int(len(diffs))}


def claims_table(out: str | Path, scales=(2.0, 4.0)) -> str:
    """Markdown rows: each claim's paired difference and a verdict per scale."""
    rows = [json.loads(line) for line in (Path(out) / "results.jsonl").read_text().splitlines()]
    lines = ["| claim | metric | " + " | ".join(f"{s:g}x: difference [95% CI], n" for s in scales) + " |",
             "|---|---|" + "---|" * len(scales)]
    for claim, a, b, metric, sign in CLAIMS:
        cells = []
        for scale in scales:
            d = paired_difference(rows, a, b, metric, scale)
            if d is None:
                cells.append("not run")
                continue
            lo, hi = d["ci95"]
            ends = (sign * lo, sign * hi)
            verdict = "reproduced" if min(ends) > 0 else "contradicted" if max(ends) < 0 else "not separated"
            cells.append(f"{d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}], {d['n']}: {verdict}")
        lines.append(f"| {claim} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


BASELINES = ("scaled_pe", "ntk", "time_aware", "dype", "tiling", "tiling_gaussian", "two_stage", "upscale")


def baselines_table(out: str | Path, reference: str = "resdit", scales=(2.0, 4.0), metrics=("correct", "detail"),
                    baselines=BASELINES) -> str:
    """Markdown rows: ``reference`` minus each baseline, paired by prompt and seed (mean [95 % CI]) per metric
    and scale, with both conditions' seconds per image."""
    rows = [json.loads(line) for line in (Path(out) / "results.jsonl").read_text().splitlines()]
    seconds = {}
    for r in rows:
        seconds.setdefault((r["condition"], r["scale"]), []).append(r.get("seconds", float("nan")))
    head = [f"{s:g}x {m}" for s in scales for m in metrics] + [f"{s:g}x s/image" for s in scales]
    lines = [f"| {reference} minus | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for base in baselines:
        cells = []
        for scale in scales:
            for metric in metrics:
                d = paired_difference(rows, reference, base, metric, scale)
                cells.append("not run" if d is None else
                             f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]")
        for scale in scales:
            a, b = seconds.get((reference, scale)), seconds.get((base, scale))
            cells.append("n/a" if not a or not b else f"{np.nanmean(a):.1f} vs {np.nanmean(b):.1f}")
        lines.append(f"| {base} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
