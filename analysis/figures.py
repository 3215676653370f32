"""Tables and plots of the study's summary (``summary.json`` groups)."""

from __future__ import annotations

import numpy as np


def _fmt(m: dict) -> str:
    lo, hi = m["ci95"]
    if m["mean"] is None or np.isnan(m["mean"]):
        return "n/a"
    return f"{m['mean']:.2f} [{lo:.2f}, {hi:.2f}]"


def summary_table(groups: list[dict], metrics=("correct", "count", "detail", "seam")) -> str:
    """A Markdown table: one row per condition and scale, mean [95% CI] per metric, KID, s/image."""
    head = ["condition", "scale", "n", *metrics, "KID", "patch-KID", "s/image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        cells = [g["condition"], f"{g['scale']:g}x", str(g["n"]), *(_fmt(g[m]) for m in metrics),
                 f"{g['kid']:.4f}" if "kid" in g else "n/a", f"{g['patch_kid']:.4f}" if "patch_kid" in g else "n/a",
                 f"{g['seconds_per_image']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: how a reader should see a study condition (the internal name stays in the caption table, :func:`name_table`)
READER_NAMES = {
    "base": "base size (the model itself)", "direct": "direct (stock attention)",
    "extrapolate": "extrapolated positions (stock attention, base shift)",
    "scaled_pe": "scaled positions (PI)", "scaled_pe+pa": "scaled positions + proportional attention",
    "scaled_pe+pa@pipeline_shift": "scaled positions + prop. attn, pipeline shift", "patch_pe": "per-patch positions",
    "patch_pe_local": "windowed attention (per-window positions)", "ntk": "NTK-aware RoPE (I-Max)",
    "time_aware": "time-aware RoPE (Lumina-Next)", "dype": "DyPE", "tiling": "latent tiling (MultiDiffusion)",
    "tiling_gaussian": "latent tiling, Gaussian weights", "two_stage": "two-stage (base, then SDEdit)",
    "upscale": "bicubic upscale of the base image", "resdit_paper": "ResDiT as in the paper (resdit_paper)",
    "resdit_paper+pa": "paper's ResDiT + proportional attention", "resdit_paper+fuse_to_end": "paper's ResDiT, fused to the end",
    "resdit_paper+fuse_to_end+pa": "paper's ResDiT, fused to the end + prop. attn",
    "resdit_paper+fuse_to_end+pa@pipeline_shift": "paper's ResDiT, fused to the end + prop. attn + pipeline shift",
    "resdit_paper@sigma": "paper's ResDiT, phases by noise level",
    "resdit_paper+pa@sigma": "paper's ResDiT + prop. attn, phases by noise level",
    "resdit+full_tokens": "ResDiT v2 defaults (full-size global branch)",
    "resdit+full_tokens@global_16of35": "v2 defaults, global phase to 16/35", "resdit+full_tokens@global_21of35": "v2 defaults, global to 21/35",
    "resdit_fast": "resdit_fast (2x2 blocks in the fused phase)",
    "resdit_no_pes": "ablation: no scaled positions (PES)", "resdit_no_pipe": "ablation: no per-window positions",
    "resdit_no_psf": "ablation: no spectral fusion (PSF)", "resdit_no_mop_gws": "ablation: grid windows, hard splice",
    "resdit_mop_only": "ablation: windows only (MOP)",
    "resdit+base_tokens": "ResDiT, global branch at base tokens (bilinear)",
    "resdit+base_tokens+fft+align2": "ResDiT defaults: base tokens, FFT upsampler, windows on even starts",
    "resdit+base_tokens+fft": "ResDiT, base tokens, FFT upsampler, minimum-overlap windows",
    "resdit": "ResDiT defaults (mode resdit)",
    "resdit+base_tokens+fft+nyquist": "ResDiT defaults + PSF cutoff at the blocks' Nyquist limit",
}


def reader_name(condition: str) -> str:
    return READER_NAMES.get(condition, condition)


def name_table(conditions) -> str:
    """Markdown caption table: each label a figure shows, with the study's internal condition name."""
    lines = ["| shown as | study condition |", "|---|---|"]
    lines += [f"| {reader_name(c)} | `{c}` |" for c in dict.fromkeys(conditions)]
    return "\n".join(lines)


METRIC_LABELS = {"correct": "correct (share of images,\none object in the prompted cell)",
                 "detail": "drawn-object detail\n(texture band vs the exact render)",
                 "ground_detail": "ground detail\n(texture band away from objects)",
                 "seam": "seam (window-border step /\ninterior step; 1 = none)", "fragments": "pieces per image",
                 "count": "objects per image"}


def condition_bars(groups: list[dict], metrics=("correct", "detail", "seam")):
    """Horizontal bars with 95% CIs per condition (reader names; ordered by the first metric at the largest scale),
    one panel per metric, one colour per scale; the base size (the model itself) as a dashed reference line. A
    value of 0 is drawn as a tick at 0; a condition not run at one of the scales it was studied at says so."""
    import matplotlib.pyplot as plt

    base = next((g for g in groups if g["condition"] == "base"), None)
    groups = [g for g in groups if g["condition"] != "base"]
    scales = sorted({g["scale"] for g in groups})
    top = scales[-1]

    def value(cond, scale, metric):
        g = next((g for g in groups if g["condition"] == cond and g["scale"] == scale), None)
        if g is None or metric not in g or g[metric]["mean"] is None or np.isnan(g[metric]["mean"]):
            return None
        return g[metric]

    conditions = list(dict.fromkeys(g["condition"] for g in groups))
    conditions.sort(key=lambda c: -((value(c, top, metrics[0]) or {"mean": -1.0})["mean"]))
    colours = ["#E69F00", "#009E73", "#0072B2", "#CC79A7", "#56B4E9"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics) + 2.6, 0.3 * len(conditions) + 1.6),
                             sharey=True, squeeze=False)
    height = 0.8 / len(scales)
    for ax, metric in zip(axes[0], metrics):
        for j, scale in enumerate(scales):
            for i, cond in enumerate(conditions):
                y = i + j * height
                m = value(cond, scale, metric)
                if m is None:
                    ran = any(g["condition"] == cond and g["scale"] == scale for g in groups)
                    ax.text(0, y, " n/a" if ran else " not run", va="center", fontsize=6, color="#999999")
                    continue
                mean, (lo, hi) = m["mean"], m["ci95"]
                ax.barh(y, mean, height=height, color=colours[j % len(colours)],
                        xerr=[[max(mean - lo, 0)], [max(hi - mean, 0)]], capsize=1.5, error_kw={"lw": 0.7})
                ax.plot([mean], [y], marker="|", color=colours[j % len(colours)], ms=5, mew=1.2)  # 0 stays visible
        if base is not None and metric in base and base[metric]["mean"] is not None:
            ax.axvline(base[metric]["mean"], color="black", ls="--", lw=0.8)
        ax.axvline(0, color="#cccccc", lw=0.6)
        ax.set_xlabel(METRIC_LABELS.get(metric, metric), fontsize=8)
        ax.set_title(metric, fontsize=10)
    axes[0, 0].set_yticks(np.arange(len(conditions)) + 0.4 - height / 2)
    axes[0, 0].set_yticklabels([reader_name(c) for c in conditions], fontsize=8)
    axes[0, 0].invert_yaxis()  # once: the panels share the axis
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[j % len(colours)]) for j in range(len(scales))]
    labels = [f"{s:g}x" for s in scales]
    if base is not None:
        handles.append(plt.Line2D([], [], color="black", ls="--", lw=0.8))
        labels.append("base size")
    # the corner under the condition names is empty: the legend goes there, clear of every title and label
    fig.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 0.0), fontsize=8, frameon=False, title="scale",
               title_fontsize=8)
    fig.tight_layout()
    return fig


SWEEP_CONDITIONS = ("direct", "extrapolate", "scaled_pe", "scaled_pe+pa", "scaled_pe+pa@pipeline_shift",
                    "patch_pe_local", "resdit_paper", "resdit_paper+fuse_to_end+pa", "resdit+full_tokens", "resdit_fast",
                    "two_stage", "upscale")


def sweep_points(groups: list[dict], conditions=SWEEP_CONDITIONS, metrics=("correct", "detail")) -> dict:
    """``{condition: {metric: [(scale, mean, lo, hi, n), ...]}}`` sorted by scale, from summary groups of any
    number of study folders (the base-size group counts as scale 1 of every condition)."""
    base = [g for g in groups if g["condition"] == "base"]
    points = {}
    for cond in conditions:
        rows = sorted([g for g in groups if g["condition"] == cond] + base, key=lambda g: g["scale"])
        by_scale = {}
        for g in rows:  # one group per scale: the one with most samples
            if g["scale"] not in by_scale or g["n"] > by_scale[g["scale"]]["n"]:
                by_scale[g["scale"]] = g
        points[cond] = {m: [(s, g[m]["mean"], *g[m]["ci95"], g["n"]) for s, g in sorted(by_scale.items())
                            if g[m]["mean"] is not None and not np.isnan(g[m]["mean"])] for m in metrics}
    return points


#: a distinct colour and line style per sweep condition (Okabe-Ito colours; direct always black, solid)
SWEEP_STYLES = {
    "direct": ("#000000", "-", "o"), "extrapolate": ("#000000", "--", "o"), "scaled_pe": ("#666666", "--", "s"), "scaled_pe+pa": ("#999999", "-", "s"),
    "scaled_pe+pa@pipeline_shift": ("#999999", ":", "s"), "patch_pe_local": ("#F0E442", "-", "^"),
    "resdit_paper": ("#56B4E9", "--", "D"), "resdit_paper+fuse_to_end+pa": ("#56B4E9", "-", "D"),
    "resdit+full_tokens": ("#0072B2", "-", "o"), "resdit_fast": ("#0072B2", ":", "o"),
    "resdit+base_tokens": ("#D55E00", "-", "o"), "resdit+base_tokens+fft": ("#D55E00", "-", "*"),
    "resdit+base_tokens+fft+align2": ("#B2182B", "-", "*"),
    "two_stage": ("#009E73", "-", "v"), "tiling": ("#CC79A7", "-", "P"), "upscale": ("#E69F00", "--", "x"),
}


def sweep_plot(groups: list[dict], conditions=SWEEP_CONDITIONS, metrics=("correct", "count")):
    """Layout (share correct, objects per image) against the scale factor, one line per method (its own colour
    and line style; reader names in a legend outside the axes), 95 % CIs as light bands."""
    import matplotlib.pyplot as plt

    points = sweep_points(groups, conditions, metrics)
    titles = {"correct": "layout: one prompted object in the prompted cell", "detail": "drawn-object detail "
              "(texture band vs the exact render)", "count": "objects per image"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics) + 3.2, 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for cond in conditions:
            pts = points[cond][metric]
            if not pts:
                continue
            s, m, lo, hi, _ = (np.array(v, dtype=float) for v in zip(*pts))
            colour, style, marker = SWEEP_STYLES.get(cond, (None, "-", "o"))
            (line,) = ax.plot(s, m, marker=marker, ms=4, ls=style, color=colour, label=reader_name(cond))
            ax.fill_between(s, lo, hi, color=line.get_color(), alpha=0.07, lw=0)
        ax.set(xscale="log", xlabel="scale factor (side / training side)", ylabel=metric)
        ax.set_title(titles.get(metric, metric), fontsize=10)
        ticks = sorted({p[0] for c in conditions for p in points[c][metric]})
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.minorticks_off()
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def sweep_table(groups: list[dict], conditions=SWEEP_CONDITIONS) -> str:
    """Markdown table of the sweep: per condition and scale, share correct (objects per image, samples)."""
    points = sweep_points(groups, conditions, metrics=("correct", "count"))
    scales = sorted({p[0] for c in conditions for p in points[c]["correct"]})
    lines = ["| condition | " + " | ".join(f"{s:g}x" for s in scales) + " |", "|---|" + "---|" * len(scales)]
    for cond in conditions:
        correct = {p[0]: p for p in points[cond]["correct"]}
        count = {p[0]: p[1] for p in points[cond]["count"]}
        cells = [f"{correct[s][1]:.2f} ({count.get(s, float('nan')):.1f} obj, n={correct[s][4]})" if s in correct
                 else "-" for s in scales]
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: one colour per method in every figure (colour-blind-safe Okabe-Ito order; direct always black)
METHOD_COLOURS = {"direct": "#000000", "resdit+base_tokens": "#D55E00", "resdit+base_tokens+fft": "#8C2D04",
                  "resdit+base_tokens+fft+align2": "#B2182B", "resdit+full_tokens": "#0072B2",
                  "resdit_paper": "#0072B2", "resdit_fast": "#56B4E9", "two_stage": "#009E73", "tiling": "#CC79A7",
                  "upscale": "#E69F00", "scaled_pe+pa": "#999999", "scaled_pe": "#666666", "patch_pe_local": "#F0E442",
                  "resdit+window_prompt": "#6A3D9A", "resdit@overlap4": "#67001F"}
METHOD_LABELS = {"resdit+base_tokens+fft+align2": "ResDiT defaults at 2x-4x (base tokens, FFT, even window starts;"
                                                  " minimum overlap beyond)",
                 "resdit@overlap4": "ResDiT defaults at 5x-8x (windows overlapping by a quarter)",
                 "resdit+base_tokens+fft": "ResDiT base tokens, FFT (minimum-overlap windows)",
                 "resdit+base_tokens": "ResDiT, base tokens, bilinear upsampler", "resdit+full_tokens":
                 "ResDiT, full-size global branch", "resdit_fast": "resdit_fast (2x2 blocks, fused only)",
                 "two_stage": "two-stage (base, then SDEdit)", "tiling": "latent tiling (MultiDiffusion)",
                 "upscale": "bicubic upscale of the base image", "scaled_pe+pa": "scaled PE + proportional attention",
                 "resdit+window_prompt": "ResDiT defaults + 3 local-only steps under the window prompt"}
SCALE_CONDITIONS = ("resdit+window_prompt", "resdit+base_tokens+fft+align2", "resdit@overlap4", "resdit+base_tokens+fft", "resdit+base_tokens", "resdit+full_tokens",
                    "two_stage", "tiling", "upscale", "scaled_pe+pa")


def scales_figure(groups: list[dict], conditions=SCALE_CONDITIONS, base_detail: float | None = None):
    """Layout, fragmentation and drawn-object detail against the scale factor (2x-8x), one line per method with
    its 95 % interval as error bars; missing points are absent, not zero. ``base_detail``: the base size's
    drawn-object detail, drawn as the 0.7 target line."""
    import matplotlib.pyplot as plt

    panels = (("correct", "layout: share correct", (0, 1.05)), ("fragments", "pieces of the prompted colour", None),
              ("detail", "drawn-object detail", None))
    fig, axes = plt.subplots(1, 3, figsize=(9, 4.6))
    for ax, (metric, title, ylim) in zip(axes, panels):
        for k, cond in enumerate(conditions):
            pts = sorted((g["scale"], g[metric]["mean"], *g[metric]["ci95"]) for g in groups
                         if g["condition"] == cond and g["scale"] > 1 and g[metric]["mean"] is not None
                         and np.isfinite(g[metric]["mean"]))
            if not pts:
                continue
            s, m, lo, hi = (np.array(v, dtype=float) for v in zip(*pts))
            offset = s * (1 + 0.015 * (k - len(conditions) / 2))  # keep error bars apart
            ax.errorbar(offset, m, yerr=[np.maximum(m - lo, 0), np.maximum(hi - m, 0)], marker="o", ms=4,
                        capsize=2, lw=1.5, color=METHOD_COLOURS.get(cond), label=METHOD_LABELS.get(cond, cond))
        if metric == "detail" and base_detail:
            ax.axhline(0.7 * base_detail, color="grey", ls=":", lw=1)
            ax.text(0.99, 0.7 * base_detail, "0.7 x base size ", va="bottom", ha="right", fontsize=8, color="grey",
                    transform=ax.get_yaxis_transform())
        ax.set_xscale("log")
        ticks = sorted({g["scale"] for g in groups if g["scale"] > 1})
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("scale factor (side / training side)", fontsize=9)
        ax.set_title(title, fontsize=10)
        if ylim:
            ax.set_ylim(*ylim)
    axes[1].set_ylabel("connected pieces per image", fontsize=9)
    axes[2].set_ylabel("band energy / exact render's", fontsize=9)
    ns = sorted({g["n"] for g in groups if g["condition"] in conditions and g["scale"] > 1})
    axes[0].set_ylabel(f"share of samples (n = {'/'.join(map(str, ns))})", fontsize=9)
    small = [(g["condition"], g["scale"], g["n"]) for g in groups if g["condition"] in conditions and g["scale"] > 1
             and g["n"] < max(ns)]
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.02))
    if small:  # below the legend, wrapped: a note inside an axes would squeeze it
        import textwrap

        note = "n < " + str(max(ns)) + ": " + ", ".join(
            f"{METHOD_LABELS.get(c, c).split(' (')[0]} at {s:g}x ({n})" for c, s, n in small)
        fig.text(0.5, 0.0, textwrap.fill(note, 130), fontsize=7, color="#555555", ha="center", va="top")
    # a kept engine, so a later layout pass (the figure writer's, after it raises the text) keeps the legend's room
    fig.set_layout_engine("tight", rect=(0, 0.22, 1, 1))
    fig.get_layout_engine().execute(fig)
    return fig


def sample_strip(out, scale: float, conditions, cases, rows: list[dict], size: float = 1.9):
    """The same prompts and noise (``cases``: ``(prompt_index, seed)``) under each condition at one scale, from a
    study's stored images, each panel titled with its scores (correct, pieces of the prompted colour, drawn-object
    detail). Nearest-neighbour display: every pixel the model drew is visible."""
    import textwrap

    import matplotlib.pyplot as plt

    from .study import case_key, load_images

    images = {c: load_images(out, c, scale) for c in conditions}
    index = {r["key"]: r for r in rows}
    fig, axes = plt.subplots(len(cases), len(conditions), figsize=(size * 1.15 * len(conditions),
                                                                   size * 1.2 * len(cases) + 0.3), squeeze=False)
    for j, cond in enumerate(conditions):
        for i, (p, s) in enumerate(cases):
            ax = axes[i, j]
            ax.axis("off")
            key = case_key(cond, scale, p, s)
            if key not in images[cond]:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                continue
            ax.imshow(np.clip(images[cond][key].transpose(1, 2, 0), 0, 1), interpolation="nearest")
            r = index.get(key, {})
            detail = r.get("detail")
            scores = (f"{'correct' if r.get('correct') else 'wrong'}, {r.get('fragments', '?')} pcs"
                      + (f"\ndetail {detail:.2f}" if detail is not None else "\nno object drawn"))
            head = textwrap.fill(METHOD_LABELS.get(cond, cond), 22) + "\n" if i == 0 else ""
            ax.set_title(head + scores, fontsize=7.5)
    fig.subplots_adjust(wspace=0.3, hspace=0.45, top=0.80)
    return fig


def generations_figure(results: list[dict]):
    """Whole-generation seconds per method at each scale (``resdit bench --generations``), one bar group per scale,
    log seconds, each bar labelled with its ratio to direct; legend outside the axes."""
    import matplotlib.pyplot as plt

    scales = sorted({r["scale"] for r in results})
    names = list(dict.fromkeys(r["mode"] for r in results))
    labels = {"direct": "direct (stock attention)", "resdit": "ResDiT (defaults: base tokens)",
              "resdit+full_tokens": "ResDiT, full-size global branch", "resdit_fast": "resdit_fast",
              "two_stage": "two-stage (base, then SDEdit)", "tiling": "latent tiling (MultiDiffusion)"}
    colours = {"direct": "#000000", "resdit": "#D55E00", "resdit+full_tokens": "#0072B2", "resdit_fast": "#56B4E9",
               "two_stage": "#009E73", "tiling": "#CC79A7"}
    fig, ax = plt.subplots(figsize=(7.6, 3.6))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        for j, scale in enumerate(scales):
            r = next((r for r in results if r["mode"] == name and r["scale"] == scale), None)
            if r is None:
                ax.text(j + i * width, 1, "not run", rotation=90, fontsize=6, color="#999999", ha="center")
                continue
            x = j + i * width
            ax.bar(x, r["seconds"], width=width, color=colours.get(name, "#999999"),
                   label=labels.get(name, name) if j == 0 else None)
            ax.text(x, r["seconds"] * 1.08, f"{r['ratio_to_direct']:.2f}x", ha="center", fontsize=6.5, rotation=90)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scales))], [f"{s:g}x the training side" for s in scales])
    ax.set(yscale="log", ylabel="seconds per image (one CPU thread)")
    ax.set_title("Whole generations, one interleaved run (toy model, 20 steps); labels: time / direct's", fontsize=9)
    ax.set_ylim(top=ax.get_ylim()[1] * 2.5)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7.5, frameon=False)
    fig.tight_layout()
    return fig
