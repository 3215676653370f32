"""The study runner: conditions x scales x prompts x seeds on the toy model, scored against exact renders,
with every sample kept (``images/``, uint8, git-ignored) so metrics can be recomputed (``--rescore``).

Conditions live in :mod:`analysis.conditions`, per-image metrics in :mod:`analysis.scoring`, statistics in
:mod:`analysis.stats` and the markdown tables in :mod:`analysis.tables`.

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
from resdit.io import atomic_write, dumps_strict
from resdit.provenance import provenance, source_key
from resdit.toy.evaluate import canvas_size, evaluation_prompts
from resdit.toy.world import parse_prompt

from .conditions import CONDITIONS, SMOKE_CONDITIONS, condition_config, condition_local_prompt, current_name
from .metrics import RandomFeatures, base_size_crops, kid, truth
from .scoring import METRICS, score_case
from .stats import cluster_ci, proportion_ci


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


def case_noise(prompt: int, seed: int, height: int, width: int) -> torch.Tensor:
    """The toy pipeline's noise ``[3, H, W]`` for one case (prompt index, seed), the same whatever the batching."""
    return torch.randn(3, height, width, generator=torch.Generator().manual_seed(1000 * seed + prompt))


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
            row = current_name(row)
            rows[row["key"]] = row
    return rows


def migrate_names(out: str | Path) -> int:
    """Rewrite a study folder under today's condition names (:data:`analysis.conditions.RENAMED`): its rows
    (``results*.jsonl``) and the feature and image files of the renamed groups, with their case keys. Returns the
    number of rows renamed; a folder already migrated is left as it is (0)."""
    out = Path(out)
    moved: dict[tuple[str, str], str] = {}  # (old name, scale) -> new name
    count = 0
    for path in sorted(out.glob("results*.jsonl")):
        lines, changed = [], False
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                lines.append(line)
                continue
            new = current_name(row)
            if new is not row:
                moved[row["condition"], f"{row['scale']:g}"] = new["condition"]
                count, changed = count + 1, True
            lines.append(dumps_strict(new))
        if changed:
            with atomic_write(path) as f:
                f.write("\n".join(lines) + "\n")
    for kind in ("features", "images"):
        for (old, scale), new in moved.items():
            src = out / kind / f"{old}@{scale}.npz"
            if not src.exists():
                continue
            arrays = {new + k[len(old):] if k.startswith(f"{old}|") else k: v
                      for k, v in np.load(src, allow_pickle=False).items()}
            _merge_npz(out / kind / f"{new}@{scale}.npz", arrays, compressed=kind == "images")
            src.unlink()
    return count


def _write(path: Path, rows: dict[str, dict]) -> None:
    with atomic_write(path) as f:
        for row in rows.values():
            f.write(dumps_strict(row) + "\n")


def run_study(cfg: StudyConfig, progress: bool = True) -> Path:
    """Run (or resume) this shard's cases; return the results file."""
    from resdit.toy import load_pipeline

    out = Path(cfg.out)
    rank, shards = cfg.shard
    everything = _groups(cfg)
    groups = [g for i, g in enumerate(everything) if i % shards == rank]
    if not groups:
        raise ValueError(f"shard {rank}/{shards} has no work: the study has {len(everything)} groups "
                         f"(conditions x scales); use at most {len(everything)} shards.")
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("results.jsonl" if shards == 1 else f"results.{rank}.jsonl")
    rows = _load(path)
    pipe = load_pipeline(cfg.model)
    base = tuple(pipe.base_size)
    toy_world = pipe.world
    prompts = evaluation_prompts(cfg.prompts, seed=0, world=toy_world)
    for cond, scale in groups:
        h, w = canvas_size(base, scale)
        todo = [(p, s) for p in range(len(prompts)) for s in range(cfg.seeds)
                if case_key(cond, scale, p, s) not in rows]
        if not todo:
            continue
        rc = condition_config(cond, base, cfg.shift)
        made_by = provenance(config=rc, model=cfg.model, device="cpu",
                             seeds={"prompts": cfg.prompts, "seeds": cfg.seeds, "prompt_seed": 0,
                                    "noise": "torch.Generator().manual_seed(1000 * seed + prompt_index)"})
        made_by["study"] = {"scales": list(cfg.scales), "prompts": cfg.prompts, "seeds": cfg.seeds,
                            "steps": cfg.steps, "conditions": list(cfg.conditions), "shift": cfg.shift,
                            "shard": list(cfg.shard), "batch": cfg.batch, "threads": torch.get_num_threads(),
                            "local_prompt": CONDITIONS[cond].get("local_prompt")}
        started = time.perf_counter()
        for lo in range(0, len(todo), cfg.batch):
            chunk = todo[lo:lo + cfg.batch]
            noise = torch.stack([case_noise(p, s, h, w) for p, s in chunk])
            t0 = time.perf_counter()
            texts = [prompts[p] for p, _ in chunk]
            images = generate(pipe, texts, rc, h, w, cfg.steps, latents=noise,
                              local_prompt=condition_local_prompt(cond, texts, toy_world)).numpy()
            per_image = (time.perf_counter() - t0) / len(chunk)
            keys = [case_key(cond, scale, p, s) for p, s in chunk]
            _save_features(out, cond, scale, keys, images, base)
            _save_images(out, cond, scale, keys, images)
            for (p, s), image in zip(chunk, images):
                rows[case_key(cond, scale, p, s)] = {
                    "key": case_key(cond, scale, p, s), "condition": cond, "scale": scale, "prompt": prompts[p],
                    "prompt_index": p, "seed": s, "size": [h, w], "base": list(base), "steps": cfg.steps,
                    "seconds": per_image, "world": toy_world,
                    **score_case(image, prompts[p], base, rc.spec.windows, world=toy_world, align=rc.align,
                                 min_overlap=rc.overlap),
                    "provenance": made_by}
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


def ran_windows(row: dict) -> tuple[int, int | str]:
    """The window alignment and least overlap (tokens, or ``"quarter"``) a row's sample ran with, read from its
    provenance: a config without ``window_align`` (``window_overlap``) predates that option and ran the
    minimum-overlap starts (1); one that left ``window_overlap`` unset ran its mode's default of the day, which the
    row's condition spells out where that default has since moved; a row without provenance, its condition's today."""
    config = (row.get("provenance") or {}).get("config")
    if not isinstance(config, dict) or "mode" not in config:
        if row["condition"] not in CONDITIONS:
            return 1, 1
        rc = condition_config(row["condition"], None)
        return rc.align, rc.overlap
    overlap = config.get("window_overlap")
    if overlap is None and "window_overlap" in CONDITIONS.get(row["condition"], {}):
        # unset in the provenance: the mode's default when the row was made, which its condition spells out
        overlap = CONDITIONS[row["condition"]]["window_overlap"]
    rc = ResDiTConfig(mode=config["mode"], window_align=config.get("window_align"),
                      window_overlap=1 if "window_overlap" not in config else overlap)
    return (rc.align if "window_align" in config else 1), rc.overlap


def rescore(out: str | Path, progress: bool = True, allow_mixed: bool = False) -> dict:
    """Recompute every per-image metric and the KID features from the stored images, then the summary.

    Cases whose image was not kept (studies run before images were stored) keep their recorded values;
    the count of both is printed.
    """
    out = Path(out)
    path = out / "results.jsonl"
    if not path.exists():
        raise ValueError(f"No study at {out}: {path} does not exist (run `resdit study --out {out}` first).")
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
            align, overlap = ran_windows(r)
            r.update(score_case(images[r["key"]], r["prompt"], base, layout, world=r.get("world", "v1"),
                                align=align, min_overlap=overlap))
        _save_features(out, cond, scale, [r["key"] for r in have], np.stack([images[r["key"]] for r in have]), base)
        redone += len(have)
    _write(path, rows)
    if progress:
        print(f"rescored {redone} cases from stored images; kept the recorded values of {kept}", flush=True)
    return summarize(out, allow_mixed)


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


class MixedStudyError(ValueError):
    """Rows of different commits or models in one study folder."""


def sources(rows) -> list[dict]:
    """The distinct (commit, dirty tree, model) that made the rows, with their row counts and commands."""
    found: dict[tuple, dict] = {}
    for r in rows:
        prov = r.get("provenance")
        entry = found.setdefault(source_key(prov), {
            "commit": prov.get("commit") if prov else None, "dirty": prov.get("dirty") if prov else None,
            "model_id": prov.get("model_id") if prov else None, "recorded": bool(prov), "rows": 0, "commands": []})
        entry["rows"] += 1
        if prov and prov.get("command") and prov["command"] not in entry["commands"]:
            entry["commands"].append(prov["command"])
    return list(found.values())


def group_summary(rows: list[dict], out: str | Path | None = None) -> list[dict]:
    """Per condition and scale: mean and 95 % interval of every metric (prompt bootstrap), KID where ``out``
    holds the group's features, seconds per image."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["condition"], r["scale"]), []).append(r)
    summary = []
    for (cond, scale), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], list(CONDITIONS).index(kv[0][0])
                                                                     if kv[0][0] in CONDITIONS else 99)):
        entry = {"condition": cond, "scale": scale, "n": len(rs), "size": rs[0]["size"],
                 "seconds_per_image": float(np.mean([r["seconds"] for r in rs]))}
        prompts = np.array([r["prompt_index"] for r in rs])
        entry["prompts"] = int(len(np.unique(prompts)))
        for m in METRICS:
            vals = np.array([np.nan if r.get(m) is None else r.get(m, np.nan) for r in rs], dtype=float)
            mean, lo, hi = cluster_ci(vals, prompts)  # NaN: undefined for that case, or scored before metric m
            entry[m] = {"mean": mean, "ci95": [lo, hi], "n": int(np.isfinite(vals).sum())}
            if m == "correct":
                entry[m]["ci95_exact"] = list(proportion_ci(int(np.nansum(vals)), int(np.isfinite(vals).sum())))
        base = tuple(rs[0].get("base", (32, 32)))
        if out is not None:
            entry.update(_kid_scores(Path(out), cond, scale, rs, base))
        summary.append(entry)
    return summary


def summarize(out: str | Path, allow_mixed: bool = False) -> dict:
    """Merge shard files into ``results.jsonl`` (a shard's row replaces the same case's) and write ``summary.json``.

    Raises:
        MixedStudyError: if the rows were made by more than one commit (or a dirty tree) or model, unless
            ``allow_mixed``; the summary then lists every source.
    """
    out = Path(out)
    # the merged file first, then the shards: a shard's row replaces the merged row of the same case
    files = [p for p in (out / "results.jsonl",) if p.exists()] + sorted(out.glob("results.*.jsonl"))
    if not files:
        raise ValueError(f"No study at {out}: no results*.jsonl there (run `resdit study --out {out}` first).")
    rows: dict[str, dict] = {}
    for path in files:
        rows.update(_load(path))
    made_by = sources(rows.values())
    if len(made_by) > 1 and not allow_mixed:
        listed = "; ".join(f"{s['rows']} rows from commit {s['commit']}{' (dirty)' if s['dirty'] else ''}, model "
                           f"{s['model_id']}" if s["recorded"] else f"{s['rows']} rows without provenance"
                           for s in made_by)
        raise MixedStudyError(f"{out} mixes rows of {len(made_by)} sources ({listed}); rerun them from one commit "
                              "and model, or pass --allow-mixed to summarize them together (the summary lists each).")
    _write(out / "results.jsonl", rows)
    for path in out.glob("results.*.jsonl"):
        path.unlink()
    summary = group_summary(list(rows.values()), out)
    model = next((r["provenance"]["model"] for r in rows.values() if r.get("provenance")), None)
    result = {"provenance": provenance(model=model), "sources": made_by, "groups": summary, "metrics": list(METRICS),
              "notes": "mean over prompts of each prompt's mean over its seeds, with a 95% BCa interval from "
                       "resampling prompts (seeds nested); correct also has an exact binomial interval over samples "
                       "(ci95_exact); n: samples where the metric is defined; correct = one object of the prompted "
                       "colour in the prompted cell; detail = texture-band energy of the drawn object relative to the "
                       "exact render; seam = gradient energy on base-window borders over elsewhere (1 = none)."}
    with atomic_write(out / "summary.json") as f:
        f.write(dumps_strict(result, indent=1))
    return result


def shard_from_env() -> tuple[int, int]:
    """``(rank, world)`` from ``accelerate launch`` / torchrun variables, else ``(0, 1)``."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def main(args) -> int:
    allow_mixed = getattr(args, "allow_mixed", False)
    if getattr(args, "rescore", None):
        rescore(args.rescore, allow_mixed=allow_mixed)
        return 0
    if not args.out:
        raise ValueError("resdit study needs --out DIR (or --rescore DIR to recompute a stored study's metrics).")
    if args.summarize:
        summarize(args.out, allow_mixed)
        return 0
    conditions = tuple(args.conditions or (SMOKE_CONDITIONS if args.smoke else CONDITIONS))
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"Unknown conditions {sorted(unknown)}; choose among {list(CONDITIONS)}.")
    from resdit.io import check_writable
    from resdit.loading import check_folder

    check_writable(args.out, directory=True)
    check_folder(args.model)
    shard = args.shard or shard_from_env()
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard {shard[0]}/{shard[1]} (from RANK/WORLD_SIZE) needs 0 <= rank < world size.")
    if args.smoke:
        cfg = StudyConfig(out=args.out, scales=(2.0,), prompts=2, seeds=1, steps=6, conditions=conditions,
                          model=args.model, shard=shard, shift=args.shift)
    else:
        cfg = StudyConfig(out=args.out, scales=tuple(args.scales), prompts=args.prompts, seeds=args.seeds,
                          steps=args.steps, conditions=conditions, model=args.model, shard=shard, shift=args.shift)
    torch.set_num_threads(args.threads)
    run_study(cfg)
    if shard[1] == 1:
        summarize(args.out, allow_mixed)
    else:
        print(f"shard {shard[0]}/{shard[1]} done; run `resdit study --out {args.out} --summarize` after all shards.")
    return 0



