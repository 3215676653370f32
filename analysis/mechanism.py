"""Mechanism pictures: when the layout locks in and when the detail arrives (the predicted clean image at every
step), and which frequencies each branch carries (radially averaged spectra of the global, local and fused
branch outputs, with PSF's cutoff).

    python -m analysis.mechanism --out figures          # x0_strip.png, branch_spectra.png (+ .json numbers)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

#: (mode, label) of the predicted-clean-image strip
STRIP_METHODS = (("direct", "direct"), ("scaled_pe", "scaled PE"), ("patch_pe_local", "windowed attention"),
                 ("resdit", "ResDiT"))
PROMPT = "a red striped circle at top left on waves"


def x0_trajectory(pipe, prompt: str, config, height: int, width: int, steps: int, latents: torch.Tensor) -> np.ndarray:
    """The predicted clean image ``x0 = x_t - sigma v`` after every transformer call ``[steps, 3, H, W]`` in [0, 1]
    (the toy pipeline: flow matching on packed pixels, ``timestep`` = sigma)."""
    from resdit import enabled
    from resdit.toy import model as toy

    seen = []

    def keep(module, args, kwargs, output):
        x, sigma = kwargs["hidden_states"], kwargs["timestep"].reshape(-1, 1, 1)
        x0 = (x - sigma * output.sample).detach()
        seen.append(((toy.unpack(x0, height, width) + 1) / 2).clamp(0, 1)[0].float().numpy())

    handle = pipe.transformer.register_forward_hook(keep, with_kwargs=True)
    try:
        with enabled(pipe, config) if config.spec.two_pass is None else _no_context():
            pipe(prompt, height=height, width=width, num_inference_steps=steps, latents=latents, output_type="pt")
    finally:
        handle.remove()
    return np.stack(seen)


class _no_context:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def x0_strip_figure(trajectories: dict[str, np.ndarray], show=None, phases=None, title: str = ""):
    """One row per method, one column per shown step (default: 7 from first to last): the predicted clean image
    (nearest-neighbour). ``phases``: ``{step: phase}`` of ResDiT, written under the columns."""
    import matplotlib.pyplot as plt

    rows = list(trajectories)
    n = len(next(iter(trajectories.values())))
    show = sorted(set(np.linspace(0, n - 1, min(7, n)).round().astype(int).tolist())) if show is None else show
    fig, axes = plt.subplots(len(rows), len(show), figsize=(1.45 * len(show) + 0.9, 1.55 * len(rows) + 0.6),
                             squeeze=False)
    for r, label in enumerate(rows):
        traj = trajectories[label]
        for c, step in enumerate(show):
            ax = axes[r, c]
            ax.imshow(traj[step].transpose(1, 2, 0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"step {step + 1}", fontsize=9)
            if r == len(rows) - 1 and phases is not None:
                ax.set_xlabel(f"ResDiT: {phases[step]}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(title or "Predicted clean image x0 = x_t - sigma v after each step", fontsize=9)
    fig.tight_layout()
    return fig


def radial_profile(amplitude: np.ndarray, bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged amplitude of ``rfft2`` windows ``[..., wh, ww // 2 + 1]``: ``(rho bin centres, mean)``,
    ``rho`` the normalised radius of :mod:`resdit.spectral` (0 to sqrt(2); cycles per token = rho / 2 on an axis)."""
    from resdit.spectral import radial_frequency

    amp = np.asarray(amplitude, dtype=np.float64)
    amp = amp.reshape(-1, *amp.shape[-2:]).mean(0)
    rho = radial_frequency(amp.shape[:1] + ((amp.shape[1] - 1) * 2,)).numpy()
    if rho.shape != amp.shape:  # odd window widths: rfft has (w // 2 + 1) columns
        rho = rho[:, :amp.shape[1]]
    edges = np.linspace(0, np.sqrt(2) + 1e-9, bins + 1)
    which = np.digitize(rho.ravel(), edges) - 1
    means = np.array([amp.ravel()[which == b].mean() if np.any(which == b) else np.nan for b in range(bins)])
    return (edges[:-1] + edges[1:]) / 2, means


def branch_spectra(pipe, prompt: str, config, height: int, width: int, steps: int, step: int, latents) -> dict:
    """``{branch: amplitude windows}`` of the last layer's global, local and fused outputs at one fused step."""
    from resdit import enabled, record

    with enabled(pipe, config), record(pipe, points=["spectrum"], layers=[-1], steps=[step]) as cache:
        pipe(prompt, height=height, width=width, num_inference_steps=steps, latents=latents, output_type="pt")
    return {b: cache.get("spectrum", -1, step=step, branch=b).numpy() for b in ("global", "local", "fused")}


def radial_spectra_figure(spectra: dict[str, np.ndarray], cutoff: float):
    """Radially averaged amplitude of each branch on one log plot, PSF's cutoff marked."""
    import matplotlib.pyplot as plt

    styles = {"global": dict(color="#0072B2", ls="-"), "local": dict(color="#E69F00", ls="--", lw=2.2),
              "fused": dict(color="#D55E00", ls="-", lw=1.2)}
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    for name, amp in spectra.items():
        rho, mean = radial_profile(amp)
        ax.plot(rho / 2, mean, marker="o", ms=3, label=f"{name} branch", **styles.get(name, {}))
    ax.axvline(cutoff / 2, color="grey", ls="--", lw=1)
    ax.text(cutoff / 2, ax.get_ylim()[1], f" PSF cutoff\n {cutoff / 2:.2f} cyc/token", va="top", fontsize=8,
            color="grey")
    ax.set(yscale="log", xlabel="radial frequency (cycles per token along an axis)",
           ylabel="mean |F| of the branch output", title="Which branch carries which frequencies (fused step)")
    ax.title.set_fontsize(10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False,
              title="fused = global below\nthe cutoff, local above", title_fontsize=7)
    fig.tight_layout()
    return fig


def write_figures(out: str | Path, scale: int = 4, steps: int = 20, model=None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resdit import ResDiTConfig
    from resdit.io import atomic_write, dumps_strict

    from .craft import save_figure
    from resdit.loading import load_any_pipeline
    from resdit.provenance import provenance
    from resdit.schedule import phase_at

    from .study import case_noise

    out = Path(out)
    pipe = load_any_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    base = tuple(pipe.base_size)
    h, w = base[0] * scale, base[1] * scale
    noise = case_noise(0, 0, h, w)[None]
    trajectories = {label: x0_trajectory(pipe, PROMPT, ResDiTConfig(base_size=base, mode=mode), h, w, steps, noise)
                    for mode, label in STRIP_METHODS}
    cfg = ResDiTConfig(base_size=base, mode="resdit")
    phases = {s: phase_at(s, steps, cfg.global_steps, cfg.local_steps, cfg.local_fraction) for s in range(steps)}
    written = []
    fig = x0_strip_figure(trajectories, phases=phases, title=f'Predicted clean image x0 = x_t - sigma v after each '
                          f'step: "{PROMPT}", {scale}x the training size, {steps} steps')
    save_figure(fig, out / "x0_strip.png", dpi=120)
    plt.close(fig)
    written.append(out / "x0_strip.png")
    fused_step = next(s for s, p in phases.items() if p == "fused")
    spectra = branch_spectra(pipe, PROMPT, cfg, h, w, steps, fused_step, noise)
    fig = radial_spectra_figure(spectra, cfg.cutoff)
    save_figure(fig, out / "branch_spectra.png", dpi=120)
    plt.close(fig)
    written.append(out / "branch_spectra.png")
    numbers = {"provenance": provenance(config=cfg, model=model, device="cpu", seeds={"noise": 0}),
               "prompt": PROMPT, "scale": scale, "steps": steps, "fused_step": fused_step,
               "radial": {b: [list(map(float, x)) for x in radial_profile(a)] for b, a in spectra.items()}}
    with atomic_write(out / "branch_spectra.json") as f:
        f.write(dumps_strict(numbers, indent=1) + "\n")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.mechanism", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="figures")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--model", default=None)
    args = p.parse_args(argv)
    for path in write_figures(args.out, args.scale, args.steps, args.model):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
