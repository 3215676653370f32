"""The demo's contact sheet: one prompt and one noise seed at 1x, 2x and 4x the toy model's training size, for
direct, scaled PE, windowed attention, two-stage, ResDiT and ResDiT with the window prompt, enlarged with nearest-neighbour scaling to one
display size, each panel labelled with its scores (object in the prompted place, objects drawn, drawn-object
detail) and its seconds.

    python -m analysis.demo --out out/demo_sheet.png        # make demo runs it; about two minutes on a laptop CPU

Beside the PNG it writes the numbers as JSON (with provenance).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

#: (mode, label, window prompt) in the order of the sheet's columns; the last: ResDiT whose local-only phase (3 of 20
#: steps) runs under the prompt without its place (``local_prompt``) with feathered splice weights, so that the
#: local-only phase leaves no seam on the window borders (docs/decisions.md, "Feathered splice weights")
METHODS = (("direct", "direct", False), ("scaled_pe", "scaled PE", False),
           ("patch_pe_local", "windowed attention", False), ("two_stage", "two-stage", False),
           ("resdit", "ResDiT", False), ("resdit", "ResDiT + window prompt", True))
PROMPT = "a red striped circle at top left on waves"


def sheet_cases(pipe, prompt: str = PROMPT, scales=(1, 2, 4), steps: int = 20, seed: int = 0, progress=None):
    """``[{mode, method, label, scale, size, image [3, H, W], seconds, correct, count, detail}]``, column by column
    (``method``: the mode, ``+window_prompt`` where the local-only phase ran under the window prompt)."""
    from resdit import ResDiTConfig, generate
    from resdit.toy.world import window_prompt

    from .scoring import score_case
    from .study import case_noise

    base = tuple(pipe.base_size)
    cases = []
    for mode, label, local in METHODS:
        changes = {"local_steps": max(1, round(3 * steps / 20)), "splice": "feather"} if local else {}
        cfg = ResDiTConfig(base_size=base, mode=mode, **changes)
        for scale in scales:
            h, w = base[0] * scale, base[1] * scale
            noise = case_noise(0, seed, h, w)[None]
            t0 = time.perf_counter()
            image = generate(pipe, prompt, cfg, h, w, steps, latents=noise,
                             local_prompt=window_prompt(prompt, pipe.world) if local else None)[0].float().numpy()
            seconds = time.perf_counter() - t0
            scores = score_case(image, prompt, base, cfg.spec.windows, world=pipe.world, align=cfg.align,
                                min_overlap=cfg.overlap)
            cases.append(dict(mode=mode, method=f"{mode}+window_prompt" if local else mode, label=label, scale=scale, size=[h, w], image=image, seconds=seconds,
                              splice=cfg.weighting,
                              correct=bool(scores["correct"]), count=int(scores["count"]),
                              detail=float(scores["detail"])))
            if progress is not None:
                progress(cases[-1])
    return cases


def _panel_title(case: dict) -> str:
    place = "in place" if case["correct"] else "misplaced"
    objects = f"{case['count']} object" + ("" if case["count"] == 1 else "s")
    detail = "detail n/a" if not np.isfinite(case["detail"]) else f"detail {case['detail']:.2f}"
    return f"{case['scale']}x: {place}, {objects}\n{detail}, {case['seconds']:.1f} s"


def sheet_figure(cases: list[dict], prompt: str = PROMPT):
    """Columns: methods; rows: scales; every panel at the largest size (nearest-neighbour). A panel whose object is
    not in the prompted place has a red title."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(c["label"] for c in cases))
    scales = list(dict.fromkeys(c["scale"] for c in cases))
    side = max(max(c["size"]) for c in cases)
    fig, axes = plt.subplots(len(scales), len(labels), figsize=(2.25 * len(labels), 2.75 * len(scales) + 0.5),
                             squeeze=False)
    for case in cases:
        ax = axes[scales.index(case["scale"]), labels.index(case["label"])]
        image = np.clip(case["image"].transpose(1, 2, 0), 0, 1)
        k = side // max(case["size"])
        ax.imshow(np.kron(image, np.ones((k, k, 1))), interpolation="nearest")
        ax.set_title(_panel_title(case), fontsize=9, color="black" if case["correct"] else "#b2182b")
        ax.set_xticks([])
        ax.set_yticks([])
    for col, label in enumerate(labels):
        axes[-1, col].set_xlabel(label, fontsize=10)
    base = cases[0]["size"][0] // cases[0]["scale"]
    fig.suptitle(f'"{prompt}"\nthe same noise seed at {", ".join(f"{s}x" for s in scales)} the training size '
                 f'({base} px); red: object not in the prompted place', fontsize=9)
    fig.tight_layout()
    return fig


def write_sheet(out: str | Path, prompt: str = PROMPT, scales=(1, 2, 4), steps: int = 20, seed: int = 0,
                model=None, quiet: bool = False) -> Path:
    """Generate, draw and write ``out`` (PNG) and ``out`` with ``.json`` (the numbers, with provenance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resdit.io import atomic_write, check_writable, dumps_strict

    from .craft import save_figure
    from resdit.loading import load_any_pipeline
    from resdit.provenance import provenance

    out = Path(out)
    check_writable(out)
    pipe = load_any_pipeline(model)
    pipe.set_progress_bar_config(disable=True)

    def say(case):
        if not quiet:
            print(f"{case['label']:>18s} {case['scale']}x  correct={case['correct']}  objects={case['count']}  "
                  f"detail={case['detail']:.2f}  {case['seconds']:.1f} s", flush=True)

    cases = sheet_cases(pipe, prompt, scales, steps, seed, say)
    fig = sheet_figure(cases, prompt)
    save_figure(fig, out, dpi=110, print_width=fig.get_size_inches()[0])  # a screen figure, shown at its own size
    plt.close(fig)
    numbers = {"provenance": provenance(model=model, device="cpu", seeds={"noise": seed}),
               "prompt": prompt, "steps": steps,
               "cases": [{k: v for k, v in c.items() if k != "image"} for c in cases]}
    with atomic_write(out.with_suffix(".json")) as f:
        f.write(dumps_strict(numbers, indent=1) + "\n")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/demo_sheet.png")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="a toy model folder (default: the shipped one)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    path = write_sheet(args.out, args.prompt, tuple(args.scales), args.steps, args.seed, args.model)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
