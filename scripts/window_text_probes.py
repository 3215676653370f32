"""Probes of a prompt-free way to the window prompt's detail: tell each window, through RoPE, where it stands in
the image, or keep the windows' image tokens from reading the prompt at all.

    python scripts/window_text_probes.py      # results/toy-v2/window-text-probes.json (about 20 minutes on two cores)

The prompts, noise and scoring of ``scripts/local_prompt_probes.py`` (the first 16 striped prompts of eval-toy's
held-out set, seeds 500-515, 20 steps, the base size's shift, 4x). Each probe changes the local branch of the
defaults (``mode="resdit"``), in the fused phase and, where named, in three local-only steps of 20:

* ``split k``: every local-branch RoPE channel whose wavelength exceeds ``k`` window sides gets the token's global
  (PES) position instead of its PIPE one, image-image and image-text scores alike (NTK-by-parts for windows);
* ``text at the global position``: image-text scores read the token's PES position (the place the prompt's place
  words refer to), image-image scores stay PIPE's exactly (``text split k``: only the channels of ``split k``);
* ``no text``: the windows' image tokens do not attend to the text tokens (text tokens still read the windows).

Text tokens sit at position 0, so under RoPE an image query's score with a text key depends on the query's own
position: that is the only place RoPE tells a token where it stands. The image-text variants rotate each image
query twice, by its PIPE and its global position, and stack the two copies along the head dimension against
image keys ``[k_pipe, 0]`` and text keys ``[0, k]`` (exact: with equal positions it is the stock local branch,
checked before the probes run). Probes on held-out prompts, not study rows.
"""

from __future__ import annotations

import math
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SCALE = 4
PROBES = {  # label -> (variant, its k, config changes)
    "defaults": (None, None, {}),
    "3 local-only steps": (None, None, dict(local_steps=3)),
    "split k=1": ("split", 1.0, {}),
    "split k=4": ("split", 4.0, {}),
    "text at the global position": ("text", None, {}),
    "text at the global position, 3 local-only steps": ("text", None, dict(local_steps=3)),
    "text split k=1": ("text", 1.0, {}),
    "text split k=1, 3 local-only steps": ("text", 1.0, dict(local_steps=3)),
    "no text": ("no_text", None, {}),
    "no text, 3 local-only steps": ("no_text", None, dict(local_steps=3)),
}


def low_channels(axes, theta: float, window: tuple[int, int], k: float):
    """Bool ``[head_dim]``: the row and column channels whose RoPE wavelength exceeds ``k`` window sides."""
    import torch

    out = []
    for a, d in enumerate(axes):
        i = torch.arange(d // 2, dtype=torch.float64)
        wavelength = 2 * math.pi * theta ** (2 * i / d)
        low = wavelength > k * window[a - 1] if a in (1, 2) else torch.zeros_like(i, dtype=torch.bool)
        out.append(low.repeat_interleave(2))
    return torch.cat(out)


@contextmanager
def local_positions(variant: str | None, k: float | None):
    """Patch the plan builder and the local branch for one probe's variant (None: the stock code)."""
    import torch
    import torch.nn.functional as F

    import resdit.state as state
    from resdit import processors

    stock_plan, stock_branch = state.build_plan, processors.ResDiTAttnProcessor.local_branch

    def build_plan(cfg, pos_embed, grid, base, txt_ids, head_dim, device, variant_=None):
        plan = stock_plan(cfg, pos_embed, grid, base, txt_ids, head_dim, device, variant_)
        if plan.local_rope is None or (grid[0] <= base[0] and grid[1] <= base[1]):
            return plan
        part, T = plan.partition, plan.text_len
        rows = torch.cat([torch.arange(T, device=device).expand(part.num_windows, -1), part.index + T], 1)
        glob = [t[rows] for t in plan.global_rope]  # [windows, T + L, D] at the global (PES) ids
        local = [t.unsqueeze(0).expand_as(glob[0]) for t in plan.local_rope]
        if k is not None:
            low = low_channels(list(pos_embed.axes_dim), pos_embed.theta, part.window, k).to(device)
            glob = [torch.where(low, g, l) for g, l in zip(glob, local)]
        if variant == "split":
            plan.local_rope = tuple(glob)
        else:
            plan.text_rope = tuple(glob)
        return plan

    def local_branch(self, query, key, value, plan, attention_mask=None):
        if not hasattr(plan, "text_rope") or attention_mask is not None:
            return stock_branch(self, query, key, value, plan, attention_mask)
        T, part = plan.text_len, plan.partition
        b, _, heads, d = query.shape
        n, L = part.index.shape

        def fold(x):  # [B, S, heads, D] -> [B * windows, T + L, heads, D]
            txt = x[:, :T].unsqueeze(1).expand(b, n, T, heads, d)
            return torch.cat([txt, x[:, T:][:, part.index]], dim=2).flatten(0, 1)

        def per_row(t):
            return t.unsqueeze(0).expand(b, -1, -1, -1).flatten(0, 1)

        q, k_, v = fold(query), fold(key), fold(value)
        q_pipe, k_pipe = (processors.apply_rope(x, *plan.local_rope) for x in (q, k_))
        if variant == "no_text":
            mask = torch.ones(T + L, T + L, dtype=torch.bool, device=q.device)
            mask[T:, :T] = False
            Q, K = torch.cat([q[:, :T], q_pipe[:, T:]], 1), torch.cat([k_[:, :T], k_pipe[:, T:]], 1)
            out = F.scaled_dot_product_attention(Q.transpose(1, 2), K.transpose(1, 2), v.transpose(1, 2),
                                                 attn_mask=mask)
        else:
            q_glob = processors.apply_rope(q, *(per_row(t) for t in plan.text_rope))
            zero = torch.zeros_like(k_pipe)
            Q = torch.cat([torch.cat([q[:, :T], q[:, :T]], -1), torch.cat([q_pipe[:, T:], q_glob[:, T:]], -1)], 1)
            K = torch.cat([torch.cat([zero[:, :T], k_[:, :T]], -1), torch.cat([k_pipe[:, T:], zero[:, T:]], -1)], 1)
            out = F.scaled_dot_product_attention(Q.transpose(1, 2), K.transpose(1, 2), v.transpose(1, 2),
                                                 scale=d ** -0.5)
        out = out.transpose(1, 2).reshape(b, n, T + L, heads * d)
        return out[:, :, :T].sum(1) / n, out[:, :, T:]

    if variant is not None:
        state.build_plan, processors.ResDiTAttnProcessor.local_branch = build_plan, local_branch
    try:
        yield
    finally:
        state.build_plan, processors.ResDiTAttnProcessor.local_branch = stock_plan, stock_branch


def check_exact() -> float:
    """The stacked image-text scores with the global tables set to the PIPE ones equal the stock local branch."""
    import torch

    from resdit import ResDiTConfig, apply_resdit, processors
    from resdit.toy import load_pipeline

    pipe = load_pipeline()
    t = pipe.transformer
    apply_resdit(t, ResDiTConfig(base_size=tuple(pipe.base_size), mode="resdit"), base_grid=(16, 16))
    proc = next(iter(t.attn_processors.values()))
    with local_positions("text", None):
        import resdit.state as state

        plan = state.build_plan(proc.state.config, t.pos_embed, (64, 64), (16, 16), torch.zeros(8, 3), 32, "cpu")
    plan.text_rope = tuple(c.unsqueeze(0).expand(plan.partition.num_windows, -1, -1) for c in plan.local_rope)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 8 + 64 * 64, 4, 32, generator=g) for _ in range(3))
    stock = processors.ResDiTAttnProcessor.local_branch(proc, q, k, v, plan)
    with local_positions("text", None):
        stacked = processors.ResDiTAttnProcessor.local_branch(proc, q, k, v, plan)
    return max(float((a - b).abs().max()) for a, b in zip(stock, stacked))


def probe(label: str) -> dict:
    from local_prompt_probes import STEPS, _noise, _setup, score_means
    from resdit import ResDiTConfig, generate

    pipe, prompts = _setup()
    base = tuple(pipe.base_size)
    variant, k, changes = PROBES[label]
    h, w = base[0] * SCALE, base[1] * SCALE
    cfg = ResDiTConfig(base_size=base, mode="resdit", mu="base", **changes)
    with local_positions(variant, k):
        images = generate(pipe, prompts, cfg, h, w, STEPS, latents=_noise(len(prompts), h, w)).numpy()
    return {"label": label, "scale": SCALE, "variant": variant, "k": k, "config": changes, "n": len(prompts),
            **score_means(images, prompts, pipe)}


def main() -> int:
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    error = check_exact()
    if error > 1e-5:
        raise SystemExit(f"the stacked image-text scores differ from the stock local branch by {error:g}")
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(probe, PROBES))
    for r in rows:
        print(f"{r['label']:>50s}  detail {r['detail']:.3f}  pieces {r['fragments']:.2f}  correct {r['correct']:.2f}"
              f"  seam {r['seam']:.2f}")
    record = {"provenance": provenance(config={"probes": {k: list(v) for k, v in PROBES.items()}, "scale": SCALE}),
              "exactness_check_max_abs_error": error, "probes": rows}
    with atomic_write(ROOT / "results/toy-v2/window-text-probes.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
