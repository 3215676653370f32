"""Fingerprints of every mode's output on the toy model and on tiny FLUX and SD3 pipelines.

A refactor that must keep outputs bit for bit records them before (``--write``) and compares after (``--check``):

    OMP_WAIT_POLICY=PASSIVE python scripts/mode_hashes.py --write tests/data/mode_hashes.json
    OMP_WAIT_POLICY=PASSIVE python scripts/mode_hashes.py --check tests/data/mode_hashes.json

Each entry holds the sha256 of the output's float32 bytes (bit for bit, same machine and torch build) and a 4x4
block-mean thumbnail (``tests/test_mode_hashes.py`` compares it to 1e-5 on any machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

STEPS = 4
SIZES = {"2x": (64, 64), "1:2": (32, 64)}


def fingerprint(images: torch.Tensor) -> dict:
    x = images.detach().float().contiguous()
    thumb = torch.nn.functional.adaptive_avg_pool2d(x.reshape(-1, *x.shape[-2:])[None], (4, 4))[0]
    return {"sha256": hashlib.sha256(x.numpy().tobytes()).hexdigest(), "thumb": thumb.flatten().tolist(),
            "shape": list(x.shape)}


def toy_cases():
    from resdit import MODES, ResDiTConfig, generate
    from resdit.toy import load_pipeline

    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    for mode in MODES:
        for label, (h, w) in SIZES.items():
            cfg = ResDiTConfig(base_size=tuple(pipe.base_size), mode=mode)
            yield f"toy/{mode}/{label}", lambda cfg=cfg, h=h, w=w: generate(
                pipe, "a red striped circle at top left on waves", cfg, h, w, STEPS, seed=0)


def tiny_cases():
    from resdit import ResDiTConfig, enabled
    from resdit.config import modes_for
    from tiny_pipelines import tiny_flux_pipeline, tiny_sd3_pipeline

    for family, build in (("flux", tiny_flux_pipeline), ("sd3", tiny_sd3_pipeline)):
        pipe = build()
        for mode in modes_for(family):
            cfg = ResDiTConfig(base_size=(32, 32), mode=mode)
            if cfg.spec.two_pass:
                continue

            def run(pipe=pipe, cfg=cfg):
                with enabled(pipe, cfg):
                    return pipe("a cat", height=64, width=64, num_inference_steps=3, output_type="pt",
                                generator=torch.Generator().manual_seed(0)).images
            yield f"{family}/{mode}/2x", run


def collect(quiet: bool = False) -> dict:
    torch.set_num_threads(1)
    out = {}
    for name, run in [*toy_cases(), *tiny_cases()]:
        out[name] = fingerprint(run())
        if not quiet:
            print(name, out[name]["sha256"][:12], flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", type=Path)
    g.add_argument("--check", type=Path)
    args = p.parse_args()
    now = collect()
    if args.write:
        args.write.write_text(json.dumps(now, indent=1) + "\n")
        return 0
    before = json.loads(args.check.read_text())
    changed = [k for k in before if k not in now or now[k]["sha256"] != before[k]["sha256"]]
    print(f"{len(before) - len(changed)} of {len(before)} bit for bit; changed: {changed or 'none'}")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
