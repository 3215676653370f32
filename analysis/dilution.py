"""Attention dilution: how spread out global attention gets beyond the base size, with and without proportional
attention. The measurement behind "layout at 4x is attention dilution" (docs/findings.md).

For each scale and setting, the toy pipeline generates the study's first prompts from the study's noise while
:func:`resdit.record` reads the global branch's attention entropy ``H`` (nats, mean over image queries, heads
and layers) at a few early steps, where the layout is made. ``exp(H)`` is the number of keys a query
effectively attends to; ``spread`` is that number over the base size's, and ``tokens`` how many image tokens
there are. Fully diluted attention has ``spread`` equal to the token ratio (4 at 2x, 16 at 4x); attention that
keeps its base-size reach has ``spread`` 1.

    python -m analysis.dilution --model resdit/toy/weights --out results/study-v2/dilution.json
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

import resdit
from resdit.args import Parser, non_negative_int, positive_float, positive_int
from resdit.io import atomic_write, dumps_strict
from resdit.provenance import provenance
from resdit.toy.evaluate import canvas_size, evaluation_prompts

from .conditions import condition_config
from .study import case_noise

# label -> study condition: the full-size global branch without and with proportional attention, and the global
# branch at the training token count (blocks of ceil(H/h) x ceil(W/w) tokens) with and without it
SETTINGS = {"off": "scaled_pe", "on": "scaled_pe+pa", "base tokens": "resdit+base_tokens+fft",
            "base tokens, no pa": "resdit+base_tokens-pa"}
#: settings whose global branch attends over every token: recorded up to this scale (8x costs ~20 min a setting)
FULL_UP_TO = 4.0


def attention_dilution(pipe, scales=(1.0, 2.0, 4.0), prompts: int = 4, steps: int = 20,
                       record_steps=(0, 3, 6), progress: bool = True, full_up_to: float = FULL_UP_TO) -> list[dict]:
    """One row per scale and proportional-attention setting: entropy per recorded step, ``spread`` and
    ``tokens`` relative to the base size (same prompts and noise as the study's seed 0)."""
    if any(s >= steps for s in record_steps):
        raise ValueError(f"record_steps {list(record_steps)} must be below steps={steps}.")
    if 1.0 not in scales:
        raise ValueError(f"scales {list(scales)} must include 1: every spread is relative to the base size.")
    base = tuple(pipe.base_size)
    texts = evaluation_prompts(prompts, seed=0, world=pipe.world)
    rows = []
    for scale in scales:
        h, w = canvas_size(base, scale)
        noise = torch.stack([case_noise(p, 0, h, w) for p in range(prompts)])
        for pa, cond in SETTINGS.items():
            if scale > full_up_to and not pa.startswith("base tokens"):
                continue
            config = condition_config(cond, base)
            with resdit.enabled(pipe, config), resdit.record(pipe, points=["entropy"], steps=list(record_steps)) as cache:
                pipe(texts, height=h, width=w, num_inference_steps=steps, latents=noise, output_type="pt")
            per_step = {}
            for step in record_steps:
                values = [v.float().mean().item() for (name, s, _, branch), v in cache.entries.items()
                          if s == step and branch == "global" and name.endswith(".entropy")]
                per_step[step] = float(np.mean(values))
            rows.append({"scale": scale, "proportional_attention": pa, "setting": pa, "condition": cond, "size": [h, w],
                         "grid": cache.meta.get("grid"), "entropy": per_step})
            if progress:
                print(f"{scale:g}x {pa:>18s}: entropy "
                      + " ".join(f"{per_step[s]:.2f}" for s in record_steps), flush=True)
    _relative(rows)
    return rows


def _relative(rows: list[dict]) -> None:
    """Add ``tokens`` (over the base size's) and ``spread`` (exp of the entropy over the base size's) per step."""
    ref = next(r for r in rows if r["scale"] == 1.0 and r["proportional_attention"] == "off")
    for r in rows:
        r["tokens"] = math.prod(r["grid"]) / math.prod(ref["grid"])
        r["spread"] = {s: math.exp(e - ref["entropy"][s]) for s, e in r["entropy"].items()}


def table(rows: list[dict]) -> str:
    """Markdown: one row per scale and setting, the spread at each recorded step."""
    steps = list(rows[0]["entropy"])
    lines = ["| scale | global branch | tokens (x base) | " + " | ".join(f"spread at step {s}" for s in steps)
             + " | " + " | ".join(f"entropy at step {s}" for s in steps) + " |",
             "|---|---|---|" + "---|" * (2 * len(steps))]
    for r in rows:
        label = {"off": "full size", "on": "full size, proportional attention"}.get(r["setting"], r["setting"])
        lines.append(f"| {r['scale']:g}x | {label} | {r['tokens']:g} | "
                     + " | ".join(f"{r['spread'][s]:.2f}" for s in steps) + " | "
                     + " | ".join(f"{r['entropy'][s]:.2f}" for s in steps) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m analysis.dilution", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="toy model folder (default: the shipped weights)")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write (rows and the markdown table)")
    p.add_argument("--scales", type=positive_float, nargs="+", default=[1.0, 2.0, 4.0])
    p.add_argument("--prompts", type=positive_int, default=4)
    p.add_argument("--steps", type=positive_int, default=20)
    p.add_argument("--record-steps", type=non_negative_int, nargs="+", default=[0, 3, 6])
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--full-up-to", type=positive_float, default=FULL_UP_TO,
                   help="largest scale at which the full-size settings run (they cost minutes beyond 4x)")
    args = p.parse_args(argv)
    from resdit.io import check_writable
    from resdit.loading import check_folder

    check_writable(args.out)
    check_folder(args.model)
    if args.threads:
        torch.set_num_threads(args.threads)
    from resdit.toy import load_pipeline

    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    rows = attention_dilution(pipe, tuple(args.scales), args.prompts, args.steps, tuple(args.record_steps),
                              full_up_to=args.full_up_to)
    text = table(rows)
    print(text)
    with atomic_write(args.out) as f:
        made_by = provenance(model=args.model, config=vars(args) | {"out": str(args.out)},
                             seeds={"noise": "analysis.study.case_noise(prompt, seed=0, ...)"})
        f.write(dumps_strict({"provenance": made_by, "rows": rows, "table": text}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from resdit.args import run_command

    raise SystemExit(run_command(lambda _: main(), None))
