"""Plots the notebooks and the README share: image grids, attention maps, index grids, spectra.

Every function takes plain arrays (or an :class:`~resdit.record.AttentionCache`) and returns a
matplotlib figure, so it works with no model loaded.
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def to_hwc(image) -> np.ndarray:
    """``[3, H, W]`` tensor/array in [0, 1] -> ``[H, W, 3]`` numpy."""
    a = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float32)
    return np.clip(a.transpose(1, 2, 0) if a.shape[0] == 3 else a, 0, 1)


def image_grid(images, titles=None, ncols: int | None = None, size: float = 2.4):
    """Images (``[3, H, W]`` each) side by side with titles."""
    plt = _plt()
    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, im in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(to_hwc(im), interpolation="nearest")
        if titles:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def probe_map(probs: np.ndarray, grid: tuple[int, int], text_len: int, factors=None) -> np.ndarray:
    """One probe's attention row ``[text + H*W]`` -> ``[H, W]`` map over image keys. A row over ``ph x pw`` blocks
    (a pooled global branch: ``factors``) is drawn on the token grid with each block's mass spread evenly over the
    tokens it holds, so maps of both branches read as attention per token."""
    row = np.asarray(probs)[text_len:]
    if factors is None or row.size == grid[0] * grid[1]:
        return row.reshape(grid)
    from .plan import block_counts

    counts = block_counts(grid, factors).numpy()
    density = row.reshape(counts.shape) / counts
    return np.repeat(np.repeat(density, factors[0], 0), factors[1], 1)[:grid[0], :grid[1]]


def attention_map_figure(cache, layer: int, step: int, branch: str, head: int, probe: int, image=None):
    """The probe's attention over the image (left) and, if given, the image with the probe (right)."""
    plt = _plt()
    meta = cache.meta
    grid, text_len = tuple(meta["grid"]), meta["text_len"]
    probs = cache.get("probs", layer, step=step, branch=branch)[0, head, probe].numpy()
    amap = probe_map(probs, grid, text_len, meta.get("pooled_factors") if branch == "global" else None)
    fig, axes = plt.subplots(1, 2 if image is not None else 1, figsize=(7 if image is not None else 3.6, 3.4),
                             squeeze=False)
    ax = axes[0, 0]
    im = ax.imshow(amap, cmap="magma")
    fig.colorbar(im, ax=ax, fraction=0.046)
    probe_rc = _probe_rc(meta["probes"][probe], grid)
    ax.scatter([probe_rc[1]], [probe_rc[0]], marker="x", color="cyan")
    ax.set_title(f"{cache.layers[layer]} h{head} step {step} {branch}\ntext mass {probs[:text_len].sum():.2f}",
                 fontsize=8)
    if image is not None:
        axes[0, 1].imshow(to_hwc(image), interpolation="nearest")
        h, w = to_hwc(image).shape[:2]
        axes[0, 1].scatter([(probe_rc[1] + 0.5) * w / grid[1]], [(probe_rc[0] + 0.5) * h / grid[0]], marker="x",
                           color="cyan")
        axes[0, 1].axis("off")
    fig.tight_layout()
    return fig, amap


def probe_label(probe) -> str:
    """A probe as a reader sees it: where it is (fractions of height and width, or a token)."""
    if isinstance(probe, int | float) and not isinstance(probe, bool):
        return f"token {int(probe)}"
    r, c = probe
    if isinstance(r, float) or isinstance(c, float):
        return f"row {r:.0%}, column {c:.0%}"
    return f"token row {r}, column {c}"


def _home_window(rc, grid, window, starts=None) -> tuple[int, int]:
    """Top-left corner of the window whose centre is nearest a token (``starts``: the run's per-axis window starts,
    as the recording's meta holds them; None: the minimum-overlap starts)."""
    from .geometry import window_starts

    corner = []
    for axis, (x, n, w) in enumerate(zip(rc, grid, window)):
        axis_starts = window_starts(n, w) if starts is None else starts[axis]
        corner.append(min(axis_starts, key=lambda s: abs(s + (w - 1) / 2 - x)))
    return tuple(corner)


def _probe_rc(probe, grid):
    from .record import probe_index

    return divmod(probe_index(probe, grid), grid[1])


def layer_curves(cache, point: str, step: int, branch: str):
    """Per-layer curve of ``entropy`` or ``distance`` (mean over heads and batch)."""
    plt = _plt()
    values = []
    for i in range(len(cache.layers)):
        try:
            values.append(float(cache.get(point, i, step=step, branch=branch).mean()))
        except KeyError:
            values.append(np.nan)
    fig, ax = plt.subplots(figsize=(4.5, 2.8))
    ax.plot(range(len(values)), values, marker="o")
    ax.set(xlabel="attention layer", ylabel=point, title=f"{point} per layer (step {step}, {branch})")
    fig.tight_layout()
    return fig, np.array(values)


def index_grids_figure(id_grids: dict[str, np.ndarray], grid: tuple[int, int]):
    """Row and column RoPE indices of each condition as images (``ids`` ``[H*W, 3]`` per name)."""
    plt = _plt()
    n = len(id_grids)
    fig, axes = plt.subplots(2, n, figsize=(2.3 * n, 4.4), squeeze=False)
    for j, (name, ids) in enumerate(id_grids.items()):
        ids = np.asarray(ids)
        for i, (axis, label) in enumerate(((1, "row index"), (2, "col index"))):
            ax = axes[i, j]
            im = ax.imshow(ids[:, axis].reshape(grid), cmap="viridis")
            ax.set_title(f"{name}\n{label}" if i == 0 else label, fontsize=8)
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def full_spectrum(rfft_amplitude: np.ndarray) -> np.ndarray:
    """The whole 2D amplitude spectrum ``[h, w]`` (``w`` even) with DC at the centre, from ``rfft2`` amplitudes
    ``[h, w // 2 + 1]`` of a real window (the missing half by Hermitian symmetry)."""
    a = np.asarray(rfft_amplitude, dtype=np.float64)
    h, half = a.shape
    w = 2 * (half - 1)
    full = np.zeros((h, w))
    full[:, :half] = a
    for x in range(half, w):  # |F(-ky, -kx)| = |F(ky, kx)|
        full[:, x] = a[(-np.arange(h)) % h, w - x]
    return np.fft.fftshift(full)


def spectra_figure(spectra: dict[str, np.ndarray], cutoff_mask: np.ndarray | None = None,
                   cutoff: float | None = None):
    """Mean amplitude spectrum (log10) of each branch's windows (``rfft2`` ``[.., wh, ww//2+1]`` per name), DC
    centred, axes in cycles per token, one colour scale for every panel (with its colour bar), PSF's cutoff as a
    circle (``cutoff``: the normalised radius of :mod:`resdit.spectral`, or the contour of ``cutoff_mask``)."""
    plt = _plt()
    n = len(spectra)
    fields = {name: np.log10(full_spectrum(np.asarray(spec).reshape(-1, *np.asarray(spec).shape[-2:]).mean(0))
                             + 1e-6) for name, spec in spectra.items()}
    lo = min(float(f.min()) for f in fields.values())
    hi = max(float(f.max()) for f in fields.values())
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n + 0.9, 3.1), squeeze=False, sharey=True,
                             layout="constrained")
    im = None
    for k, (ax, (name, field)) in enumerate(zip(axes[0], fields.items())):
        h, w = field.shape
        extent = (-0.5 - 0.5 / w, 0.5 - 0.5 / w, -0.5 - 0.5 / h, 0.5 - 0.5 / h)  # bin centres at k / n
        im = ax.imshow(field, cmap="inferno", vmin=lo, vmax=hi, extent=extent, origin="lower", aspect="equal")
        if cutoff is not None:
            ax.add_patch(plt.Circle((0, 0), cutoff / 2, fill=False, color="cyan", lw=0.9))
        elif cutoff_mask is not None:
            mask = full_spectrum(np.asarray(cutoff_mask))
            ax.contour(np.linspace(-0.5, 0.5, w, endpoint=False), np.linspace(-0.5, 0.5, h, endpoint=False), mask,
                       levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"{name} branch", fontsize=10)
        ax.set_xlabel("f_x (cycles per token)", fontsize=8)
        if k == 0:
            ax.set_ylabel("f_y (cycles per token)", fontsize=8)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.85, label="log10 mean |F|")
    return fig


def probe_maps_figure(cache, layer: int, step: int, image=None, branches=("global", "local")):
    """Every probe's attention (mean over heads) at one layer and step, one column per branch, over the image.

    The static counterpart of the attention explorer widget: rows are probes, each panel the probe's attention
    over image keys (colour) on the generated image (grey), the probe marked with a cross.
    """
    plt = _plt()
    meta = cache.meta
    grid, text_len, probes = tuple(meta["grid"]), meta["text_len"], meta["probes"]
    present = [b for b in branches if any(k[0] == f"{cache.layers[layer]}.probs" and k[1] == step and k[3] == b
                                          for k in cache.entries)]
    fig, axes = plt.subplots(len(probes), len(present), figsize=(2.6 * len(present), 2.4 * len(probes)),
                             squeeze=False)
    backdrop = None if image is None else to_hwc(image).mean(-1)
    for j, branch in enumerate(present):
        probs = cache.get("probs", layer, step=step, branch=branch)[0].float().mean(0).numpy()  # [probes, keys]
        for i, probe in enumerate(probes):
            ax = axes[i, j]
            amap = probe_map(probs[i], grid, text_len, meta.get("pooled_factors") if branch == "global" else None)
            extent = (0, grid[1], grid[0], 0)
            if backdrop is not None:
                ax.imshow(backdrop, cmap="gray", extent=extent, interpolation="nearest")
            ax.imshow(amap, cmap="magma", alpha=0.75 if backdrop is not None else 1.0, extent=extent)
            r, c = _probe_rc(probe, grid)
            ax.scatter([c + 0.5], [r + 0.5], marker="x", color="cyan")
            if branch == "local" and meta.get("window"):  # the window the probe attends in (its nearest centre)
                (y0, x0), (wh, ww) = (_home_window((r, c), grid, tuple(meta["window"]), meta.get("window_starts")),
                                      tuple(meta["window"]))
                ax.add_patch(plt.Rectangle((x0, y0), ww, wh, fill=False, color="cyan", lw=1.0, ls="--"))
            ax.set_title(f"{branch}, probe at {probe_label(probe)}\ntext mass {probs[i, :text_len].sum():.2f}",
                         fontsize=7)
            ax.axis("off")
    fig.suptitle(f"{cache.layers[layer]}, step {step}", fontsize=9)
    fig.tight_layout()
    return fig
