"""Could a default write the window prompt? Two probes at 4x on the held-out striped prompts of
``scripts/local_prompt_probes.py`` (the first 16 of ``evaluation_prompts(64, seed=500)``, noise seeds 500-515, 20
steps, the base size's shift, three local-only steps):

    python scripts/window_prompt_halves.py      # results/toy-v2/window-prompt-halves.json (about 20 minutes, 2 cores)

* ``halves``: the local-only phase under the call's prompt, under the window prompt (its text states and its
  pooled vector, as ``local_prompt`` runs it), and under each half alone (``local_text=(states, pooled)`` with
  the other half the call's). A rule that masks words per window could only change the text states: one pooled
  vector modulates a whole transformer call.
* ``word_attention``: under the defaults, each prompt word's attention mass (text-key softmax weight, mean over
  heads, the recorded layers and steps 8, 14 and 19) from image tokens inside the object and from tokens more than
  24 px from it, in the global and the local branch, on 4 prompts with their objects in different places (an 8x8
  grid of probe tokens). AccDiffusion's rule keeps a word in a window where its attention reaches; it could drop
  the place words inside the object only if they were read less there than on the ground.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from local_prompt_probes import KEYS, N, SEED, STEPS, _noise, _setup, score_means  # noqa: E402

SCALE = 4
HALVES = ("call prompt", "window text and pooled", "window text, call pooled", "call text, window pooled")
RECORD_STEPS = [8, 14, 19]
GRID = 8


def half(label: str) -> dict:
    import torch

    from resdit import ResDiTConfig, enabled
    from resdit.toy.world import window_prompt

    pipe, prompts = _setup()
    base = tuple(pipe.base_size)
    h, w = base[0] * SCALE, base[1] * SCALE
    with torch.no_grad():
        call = pipe.text_encoder.encode(prompts)
        win = pipe.text_encoder.encode([window_prompt(p, pipe.world) for p in prompts])
    text = {"call prompt": None, "window text and pooled": win, "window text, call pooled": (win[0], call[1]),
            "call text, window pooled": (call[0], win[1])}[label]
    cfg = ResDiTConfig(base_size=base, mode="resdit", mu="base", local_steps=3)
    with enabled(pipe, cfg, **({} if text is None else {"local_text": text})):
        images = pipe(prompt=prompts, height=h, width=w, num_inference_steps=STEPS, latents=_noise(N, h, w),
                      output_type="pt").images.numpy()
    return {"label": label, "n": len(prompts), **score_means(images, prompts, pipe)}


def word_attention() -> list[dict]:
    from scipy.ndimage import binary_dilation

    import resdit
    from resdit import ResDiTConfig, enabled
    from resdit.toy.world import parse_prompt, render

    pipe, prompts = _setup()
    chosen = {}
    for i, p in enumerate(prompts):  # one prompt per place, first four places
        chosen.setdefault(p.split(" at ")[1].split(" on ")[0], (i, p))
    base = tuple(pipe.base_size)
    h, w = base[0] * SCALE, base[1] * SCALE
    probes = [((i + 0.5) / GRID, (j + 0.5) / GRID) for i in range(GRID) for j in range(GRID)]
    found = []
    for i, p in list(chosen.values())[:4]:
        words = p.split()
        with enabled(pipe, ResDiTConfig(base_size=base, mode="resdit", mu="base")):
            with resdit.record(pipe, points=["probs"], steps=RECORD_STEPS, probes=probes) as cache:
                pipe(prompt=[p], height=h, width=w, num_inference_steps=STEPS, latents=_noise(i + 1, h, w)[i:i + 1],
                     output_type="pt")
        mask = render(parse_prompt(p, pipe.world), h, w).masks[0] > 0.5
        far = ~binary_dilation(mask, iterations=24)
        inside = np.array([mask[int(y * h), int(x * w)] for y, x in probes])
        ground = np.array([far[int(y * h), int(x * w)] for y, x in probes])
        entry = {"prompt": p, "probes_inside": int(inside.sum()), "probes_ground": int(ground.sum())}
        for branch in ("global", "local"):
            rows = [t[0, :, :, :len(words)].mean(0).numpy() for layer in range(len(cache.layers))
                    for (_, _, b), t in cache["probs", layer].items() if b == branch]
            mass = np.mean(rows, 0)  # [probes, words]
            entry[branch] = [{"word": word, "inside": float(mass[inside, k].mean()),
                              "ground": float(mass[ground, k].mean())} for k, word in enumerate(words)]
        found.append(entry)
    return found


def main() -> int:
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance
    from resdit.toy.world import parse_prompt

    with ProcessPoolExecutor(2) as pool:
        words = pool.submit(word_attention)
        halves = list(pool.map(half, HALVES))
        words = words.result()
    pipe, _ = _setup()
    for entry in words:  # the place words' ("at" and the place) mass, inside over ground, per branch
        place = set(parse_prompt(entry["prompt"], pipe.world).objects[0].place.split()) | {"at"}
        for branch in ("global", "local"):
            entry[f"{branch}_place_inside_over_ground"] = float(
                np.mean([r["inside"] for r in entry[branch] if r["word"] in place])
                / np.mean([r["ground"] for r in entry[branch] if r["word"] in place]))
    for r in halves:
        print(f"{r['label']:>28s}  " + "  ".join(f"{k} {r[k]:.3f}" for k in KEYS if r[k] is not None))
    for entry in words:
        print(entry["prompt"], {b: round(entry[f"{b}_place_inside_over_ground"], 2) for b in ("global", "local")})
    record = {"provenance": provenance(config={"scale": SCALE, "prompts": N, "seed": SEED, "steps": STEPS,
                                               "local_steps": 3, "record_steps": RECORD_STEPS, "grid": GRID}),
              "halves": halves, "word_attention": words}
    with atomic_write(ROOT / "results/toy-v2/window-prompt-halves.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
