"""Record what attention does, at any resolution, without changing it.

Recording reads q and k inside the ResDiT processor (probabilities exist nowhere else:
fused attention kernels return no weights) and computes only what was asked for:

* ``probs``: softmax rows of the chosen probe tokens, per branch, ``[batch, heads, probes,
  text + image keys]`` (local branch: the probe's own window, zeros elsewhere);
* ``entropy`` and ``distance``: per head, the mean over image queries of the attention
  entropy (nats) and of the mean query-key distance in tokens (image keys), computed in
  chunks of queries, ``[batch, heads]``;
* ``rope_ids``: the index grids each branch used, ``[H*W, 3]`` / ``[windows, wh*ww, 3]``;
* ``spectrum``: per-window amplitude spectra of each branch's image output (and of the
  fused output), mean over channels, ``[batch, windows, wh, ww // 2 + 1]``;
* ``bands``: per-window energy below and above the PSF cutoff, ``[batch, windows, 2]``.

Names are module paths plus a point: ``transformer_blocks.0.attn.probs``; ``rope_ids``
belong to ``pos_embed``. Entries are keyed by name, step, CFG call and branch and moved
to the CPU at once. Memory: ``probs`` holds ``probes x keys`` per head; entropy and
distance hold at most ``chunk x keys`` per head at a time (``chunk`` from ``budget``).

Example:
    >>> with resdit.record(pipe, points=["probs", "entropy"], layers=[0, -1], probes=[(8, 8)]) as cache:
    ...     pipe(prompt, height=64, width=64)                         # doctest: +SKIP
    >>> cache["probs", 0]   # {(step, cfg, branch): tensor}           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import torch

from .apply import _split, get_state, install, remove_resdit
from .config import ResDiTConfig
from .processors import apply_rope
from .schedule import GLOBAL, LOCAL, branches
from .spectral import band_energy

POINTS = ("probs", "entropy", "distance", "rope_ids", "spectrum", "bands")
ROPE_OWNER = "pos_embed"


def attention_layers(target) -> list[str]:
    """Attention module names in forward order, e.g. ``transformer_blocks.0.attn`` (a model without
    ``attn_processors``, Z-Image: its attention modules that see the image, module by module)."""
    _, transformer = _split(target)
    if hasattr(transformer, "attn_processors"):
        return [k.rsplit(".processor", 1)[0] for k in transformer.attn_processors]
    from diffusers.models.attention_processor import Attention

    return [n for n, m in transformer.named_modules() if isinstance(m, Attention) and not n.startswith("context_")]


def list_points(target) -> list[str]:
    """Every recordable name of a model."""
    names = [f"{ROPE_OWNER}.rope_ids"]
    for layer in attention_layers(target):
        names += [f"{layer}.{p}" for p in POINTS if p != "rope_ids"]
    return names


class AttentionCache:
    """Recorded tensors keyed by ``(name, step, cfg, branch)``.

    Index by full name (``cache["transformer_blocks.0.attn.probs"]``) or by point and layer
    number (``cache["probs", 0]``, negative from the end); either gives a dict
    ``{(step, cfg, branch): tensor}``. ``cache.get("probs", 0, step=3, branch="global")``
    gives one tensor.
    """

    def __init__(self, layers: list[str], meta: dict | None = None):
        self.layers = layers
        self.meta = meta or {}
        self.entries: dict[tuple[str, int, int, str], torch.Tensor] = {}

    def __repr__(self):
        names = sorted({k[0] for k in self.entries})
        return f"AttentionCache({len(self.entries)} entries, names={names})"

    def __len__(self):
        return len(self.entries)

    def _name(self, key) -> str:
        if key == "rope_ids":
            return f"{ROPE_OWNER}.rope_ids"
        if isinstance(key, str):
            return key
        point, layer = key
        if point == "rope_ids":
            return f"{ROPE_OWNER}.rope_ids"
        return f"{self.layers[layer]}.{point}"

    def __getitem__(self, key) -> dict:
        name = self._name(key)
        found = {k[1:]: v for k, v in self.entries.items() if k[0] == name}
        if not found:
            raise KeyError(
                f"Nothing recorded for {name!r}. Recorded names: {sorted({k[0] for k in self.entries}) or 'none'}. "
                "Did you run the pipeline inside `with resdit.record(...)`, with this point, layer and step?"
            )
        return found

    def get(self, point: str, layer: int | None = None, step: int | None = None, branch: str | None = None,
            cfg: int = 0) -> torch.Tensor:
        entries = self[point] if layer is None else self[point, layer]
        matches = [v for (s, c, b), v in entries.items()
                   if (step is None or s == step) and c == cfg and (branch is None or b == branch)]
        if len(matches) != 1:
            options = sorted(entries)
            raise KeyError(f"{len(matches)} entries match; choose step and branch among {options}.")
        return matches[0]

    def steps(self) -> list[int]:
        return sorted({k[1] for k in self.entries})

    def save(self, path: str | Path) -> None:
        """``path.safetensors`` (tensors) + ``path.json`` (keys and metadata)."""
        from safetensors.torch import save_file

        from .io import atomic_write

        path = Path(path).with_suffix("")
        keys = list(self.entries)
        tensors = {f"e{i}": self.entries[k].contiguous() for i, k in enumerate(keys)}
        tmp = path.parent / f".{path.name}.safetensors.tmp"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp))
        tmp.replace(path.with_suffix(".safetensors"))
        with atomic_write(path.with_suffix(".json")) as f:
            json.dump({"layers": self.layers, "meta": self.meta, "keys": [list(k) for k in keys]}, f)

    @classmethod
    def load(cls, path: str | Path) -> "AttentionCache":
        from safetensors.torch import load_file

        path = Path(path).with_suffix("")
        info = json.loads(path.with_suffix(".json").read_text())
        tensors = load_file(str(path.with_suffix(".safetensors")))
        cache = cls(info["layers"], info["meta"])
        for i, k in enumerate(info["keys"]):
            cache.entries[(k[0], int(k[1]), int(k[2]), k[3])] = tensors[f"e{i}"]
        return cache


def probe_index(probe, grid: tuple[int, int]) -> int:
    """Flat image-token index of a probe: a flat index, a ``(row, col)`` token pair or ``(y, x)`` fractions."""
    H, W = grid
    r, c = (probe // W, probe % W) if isinstance(probe, int) else probe
    if isinstance(r, float) or isinstance(c, float):  # fractions of the image
        r, c = min(int(r * H), H - 1), min(int(c * W), W - 1)
    if not (0 <= r < H and 0 <= c < W):
        raise ValueError(f"Probe {probe} is outside the {H}x{W} token grid.")
    return r * W + c


def _probe_indices(probes, grid: tuple[int, int]) -> torch.Tensor:
    return torch.tensor([probe_index(p, grid) for p in probes], dtype=torch.long)


class Recorder:
    """Receives q and k from the processors and stores what was asked for."""

    def __init__(self, cache: AttentionCache, points, layers, steps, probes, budget: int):
        unknown = set(points) - set(POINTS)
        if unknown:
            raise ValueError(f"Unknown record points {sorted(unknown)}; choose among {POINTS}.")
        self.cache, self.points, self.steps, self.probes, self.budget = cache, set(points), steps, probes, budget
        n = len(cache.layers)
        self.layers = None if layers is None else {cache.layers[i] for i in layers}
        if self.layers is not None and any(not -n <= i < n for i in layers):
            raise ValueError(f"Layer numbers must lie in [{-n}, {n - 1}] for this model's {n} attention layers.")
        self.step, self.cfg, self._last_step = 0, 0, None
        self.text_len = None  # as the last recorded layer saw it (SD3's plan is per size, its text per call)
        self._context_index = {"cond": 0, "uncond": 1}

    def on_call(self, state) -> None:
        """Once per transformer call: track the step and the classifier-free-guidance half.

        The half comes from diffusers' call context where the pipeline gives one (``cond`` -> 0,
        ``uncond`` -> 1, other names in order of appearance), so a pipeline that calls the transformer
        twice per step for one half keeps one index; without a context, repeated calls at one step
        count up (SD3 batches both halves into one call: always 0)."""
        step = state.step if state.step is not None else 0
        name = getattr(state, "call_context", None)
        if name is not None:
            self.cfg = self._context_index.setdefault(name, len(self._context_index))
        else:
            self.cfg = self.cfg + 1 if step == self._last_step else 0
        self.step, self._last_step = step, step
        if "rope_ids" in self.points and self._wanted_step() and self.cfg == 0 and hasattr(state.plan, "global_ids"):
            plan = state.plan
            self._put(f"{ROPE_OWNER}.rope_ids", "global", plan.global_ids)
            if plan.local_ids is not None and state.phase != GLOBAL:
                self._put(f"{ROPE_OWNER}.rope_ids", "local", plan.local_ids)

    def _wanted_step(self) -> bool:
        return self.steps is None or self.step in self.steps

    def _wanted(self, name: str) -> bool:
        return self._wanted_step() and (self.layers is None or name in self.layers)

    def _put(self, name: str, branch: str, value: torch.Tensor) -> None:
        self.cache.entries[(name, self.step, self.cfg, branch)] = value.detach().to("cpu", torch.float32).clone()

    # ---------------------------------------------------------------- attention
    def on_attention(self, name, query, key, plan, phase, ran=None) -> None:
        """The ``attention`` hook point: q and k of one layer ``[B, T + N, heads, D]`` before RoPE, and what each
        branch attended with (``ran``). The global branch is recorded from what it ran: on a pooled grid its rows
        and keys are blocks (probes read the block that holds them)."""
        if not self._wanted(name):
            return
        self.text_len = plan.text_len
        run_global, run_local = branches(phase)
        ran = ran or {}
        missing = [b for b, runs in (("global", run_global), ("local", run_local)) if runs and b not in ran]
        if missing:
            raise RuntimeError(f"{name}: the processor did not say what its {' and '.join(missing)} branch ran; the "
                               "recorder reads only what ran (a ResDiTAttnProcessor emits it).")
        if run_global:
            g = ran["global"]
            scale = g["scale"] or 1.0 / math.sqrt(query.shape[-1])
            self._attention_points(name, GLOBAL, g["query"], g["key"], scale, plan, g["bias"], g["grid"],
                                   g["factors"])
        if run_local:
            self._local_points(name, query, key, plan, ran["local"])

    def _local_points(self, name, query, key, plan, ran: dict) -> None:
        """Local branch: the windows' own rotary tables, windows and mask as the branch ran them (``ran``); probes
        attend inside their own window; entropy/distance over all windows."""
        T, part, bias = plan.text_len, ran["partition"], ran["bias"]
        own = ran.get("windows")  # (q, k) per window [B, windows, T + L, heads, D], as whole-model passes ran them
        cos, sin = ran["rope"] if own is None else (None, None)
        scale = 1.0 / math.sqrt((query if own is None else own[0]).shape[-1])
        n = part.num_windows
        probs_rows, ent, dist, count = [], 0.0, 0.0, 0
        probe_idx = _probe_indices(self.probes, plan.grid) if ("probs" in self.points and self.probes) else None
        home = self._home_windows(plan)
        with_probe = set() if probe_idx is None else {int(home[p]) for p in probe_idx.tolist()}
        stats = bool({"entropy", "distance"} & self.points)
        for w in range(n):
            if not stats and w not in with_probe:
                continue
            idx = part.index[w]
            if own is not None:
                q, k = own[0][:, w], own[1][:, w]
            else:
                sel = torch.cat([torch.arange(T, device=idx.device), idx + T])
                tc, ts = (cos[w], sin[w]) if cos.ndim == 3 else (cos, sin)
                q, k = apply_rope(query[:, sel], tc, ts), apply_rope(key[:, sel], tc, ts)
            if stats:
                e, d = self._entropy_distance(q[:, T:], k, scale, plan, key_index=idx, query_index=idx, bias=bias)
                ent, dist, count = ent + e * idx.numel(), dist + d * idx.numel(), count + idx.numel()
            if probe_idx is not None:
                for j, p in enumerate(probe_idx.tolist()):
                    if home[p] != w:
                        continue
                    pos = (idx == p).nonzero()[0, 0]
                    row = torch.softmax(self._logits(q[:, T + pos:T + pos + 1], k, scale, bias), -1)[:, :, 0]
                    full = row.new_zeros(row.shape[0], row.shape[1], T + plan.image_tokens)
                    full[:, :, :T] = row[:, :, :T]
                    full[:, :, T + idx] = row[:, :, T:]
                    probs_rows.append((j, full))
        if probs_rows:
            probs_rows.sort(key=lambda x: x[0])
            self._put(f"{name}.probs", LOCAL, torch.stack([r for _, r in probs_rows], 2))
        if count:
            if "entropy" in self.points:
                self._put(f"{name}.entropy", LOCAL, ent / count)
            if "distance" in self.points:
                self._put(f"{name}.distance", LOCAL, dist / count)

    @staticmethod
    def _home_windows(plan) -> torch.Tensor:
        """For every image token, the window in which its splice weight is largest (first on ties)."""
        part = plan.partition
        n, L = part.index.shape
        idx, w = part.index.reshape(-1), part.weights.reshape(-1)
        window = torch.arange(n, device=idx.device).repeat_interleave(L)
        best = torch.full((plan.image_tokens,), -1.0, device=w.device).scatter_reduce(0, idx, w, "amax")
        top = w == best[idx]
        home = torch.full((plan.image_tokens,), n, device=idx.device)
        return home.scatter_reduce(0, idx[top], window[top], "amin").cpu()

    @staticmethod
    def _logits(q, k, scale, bias=None) -> torch.Tensor:
        """``[B, heads, q, k]`` logits from ``[B, S, heads, D]`` layouts (``bias`` ``[k]`` or ``[B, 1, 1, k]`` added
        per key)."""
        logits = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * scale
        return logits if bias is None else logits + bias.float().to(logits.device)

    def _attention_points(self, name, branch, q, k, scale, plan, bias=None, grid=None, factors=(1, 1)) -> None:
        T = plan.text_len
        grid = plan.grid if grid is None else tuple(grid)
        if "probs" in self.points and self.probes:
            ph, pw = factors
            full = _probe_indices(self.probes, plan.grid)
            idx = ((full // plan.grid[1]) // ph) * grid[1] + (full % plan.grid[1]) // pw + T  # the probe's block
            self._put(f"{name}.probs", branch, torch.softmax(self._logits(q[:, idx.to(q.device)], k, scale, bias), -1))
        if {"entropy", "distance"} & self.points:
            all_img = torch.arange(grid[0] * grid[1], device=q.device)
            e, d = self._entropy_distance(q[:, T:], k, scale, plan, key_index=all_img, query_index=all_img,
                                          bias=bias, grid=grid, factors=factors)
            if "entropy" in self.points:
                self._put(f"{name}.entropy", branch, e)
            if "distance" in self.points:
                self._put(f"{name}.distance", branch, d)

    def _entropy_distance(self, q_img, k, scale, plan, key_index, query_index, bias=None, grid=None, factors=(1, 1)):
        """Mean over queries of entropy and image-key distance (in image tokens; on a pooled grid between block
        centres), in query chunks: ``[B, heads]`` each."""
        T = plan.text_len
        W = (plan.grid if grid is None else grid)[1]
        ph, pw = factors
        b, nq, heads, _ = q_img.shape
        keys = k.shape[1]
        chunk = max(1, self.budget // max(1, b * heads * keys))
        kr = (key_index // W).float()
        kc = (key_index % W).float()
        ent = q_img.new_zeros(b, heads, dtype=torch.float32)
        dist = torch.zeros_like(ent)
        for lo in range(0, nq, chunk):
            p = torch.softmax(self._logits(q_img[:, lo:lo + chunk], k, scale, bias), -1)
            ent += -(p * torch.log(p.clamp_min(1e-30))).sum(-1).sum(-1)
            qi = query_index[lo:lo + chunk]
            d = torch.hypot(ph * ((qi // W).float()[:, None] - kr[None, :]), pw * ((qi % W).float()[:, None] - kc[None, :]))
            img = p[..., T:]
            dist += ((img * d).sum(-1) / img.sum(-1).clamp_min(1e-30)).sum(-1)
            del p, img, d
        return ent / nq, dist / nq

    # ---------------------------------------------------------------- fusion
    def on_branch_outputs(self, name, plan, windows: dict[str, torch.Tensor]) -> None:
        """The ``branches`` hook point; ``windows``: branch -> image windows ``[B, n, wh, ww, C]``."""
        if not self._wanted(name) or not ({"spectrum", "bands"} & self.points):
            return
        for branch, x in windows.items():
            if "spectrum" in self.points:
                amp = torch.fft.rfft2(x.float(), dim=(-3, -2)).abs().mean(-1)
                self._put(f"{name}.spectrum", branch, amp)
            if "bands" in self.points:
                low, high = band_energy(x, plan.mask)
                self._put(f"{name}.bands", branch, torch.stack([low, high], -1))


DEFAULT_POINTS = ("probs", "entropy", "distance", "rope_ids")


@contextlib.contextmanager
def record(target, points=None, layers: list[int] | None = None,
           steps: list[int] | None = None, probes=(), budget: int = 1 << 22):
    """Record attention while a pipeline or transformer runs; always detaches on exit.

    Args:
        target: a pipeline with ``.transformer`` or a FLUX transformer, with or without ResDiT.
        points: any of the family's ``record_points`` (None: those of :data:`DEFAULT_POINTS` it reports; SD3,
            whose branches are whole-model passes, reports probs, entropy and distance).
        layers: attention layer numbers (forward order, negative from the end); None = all.
        steps: denoising steps to record (None = all; a bare transformer counts as step 0
            unless :func:`resdit.set_step` says otherwise).
        probes: image tokens as flat indices, ``(row, col)`` token pairs, or ``(y, x)`` float
            fractions of the image.
        budget: most floats held at once for entropy/distance (sets the query chunk).

    Yields:
        An :class:`AttentionCache`, filled as the model runs.
    """
    pipe, transformer = _split(target)
    from .families import family_of

    fam = family_of(transformer)[0]
    if points is None:
        points = tuple(p for p in DEFAULT_POINTS if p in fam.record_points)
    elif set(points) & (set(POINTS) - set(fam.record_points)):  # unknown names: the Recorder says so below
        raise ValueError(f"{fam.label} reports {', '.join(fam.record_points)} (its branches produce no other); "
                         f"drop {sorted(set(points) & (set(POINTS) - set(fam.record_points)))}.")
    state = get_state(transformer)
    owned = state is None
    cache = AttentionCache(attention_layers(transformer), {
        "points": list(points), "probes": [list(p) if not isinstance(p, int) else p for p in probes]})
    # checks the points and layers before anything is installed, so a bad request leaves the model as it was
    recorder = Recorder(cache, points, layers, None if steps is None else set(steps), list(probes), budget)
    if owned:
        # An untouched model: observe it through processors that compute exactly what the
        # stock ones do (global attention, its own integer grid, nothing on the pipeline).
        state = install(transformer, ResDiTConfig(mode="extrapolate"), None, pipe, observer=True)
    elif any(isinstance(getattr(fn, "__self__", None), Recorder) for fn in state.listeners("call")):
        raise RuntimeError("A recorder is already attached to this model; leave the other `record` block first.")
    elif not state.config.spec.patched:
        raise RuntimeError("Mode 'direct' leaves the model untouched; record before applying it, or use 'extrapolate'.")
    cache.meta = {"mode": state.config.mode, **cache.meta}
    unsubscribe = [state.subscribe("call", recorder.on_call), state.subscribe("attention", recorder.on_attention),
                   state.subscribe("branches", recorder.on_branch_outputs)]
    try:
        yield cache
        if state.plan is not None:
            text_len = state.plan.text_len if recorder.text_len is None else recorder.text_len
            cache.meta.update(grid=list(state.plan.grid), base=list(state.plan.base), text_len=text_len,
                              window=list(state.plan.partition.window),
                              window_starts=[list(v) for v in state.plan.partition.starts],
                              cutoff=getattr(state.plan, "cutoff", state.config.cutoff))
            pooled = getattr(state.plan, "pooled", None)
            if pooled is not None:  # the global branch's rows and keys are these blocks
                cache.meta.update(pooled_grid=list(pooled.grid), pooled_factors=list(pooled.factors),
                                  pooled_phases=pooled.phases)
    finally:
        for undo in unsubscribe:
            undo()
        if owned:
            remove_resdit(transformer)
