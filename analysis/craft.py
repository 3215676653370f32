"""Figure craft, checked where committed figures are written: text that reads at the printed size, a label on every
axis that plots data, and a colour bar beside every scalar image.

:func:`save_figure` is the one writer of the figures under ``figures/`` (notebooks, scripts, the demo): it refuses a
figure with a problem (:class:`FigureCraftError` lists each) and writes atomically. The rules, measurable on the
``Figure`` before it is drawn to pixels:

* printed at ``print_width`` inches (7 in: a two-column page; narrower figures print at their own size), every title
  is at least ``TITLE_PT`` and every other text at least ``TEXT_PT`` points;
* every axes that plots data (lines, bars, markers, filled bands) has an x and a y label (units go there), but for an
  axis whose tick labels are names (bars by condition);
* every image drawn from a scalar field through a colour map (attention maps, spectra) has a colour bar in the
  figure; RGB images (generated samples) need none.
"""

from __future__ import annotations

from pathlib import Path

TITLE_PT = 9.0
TEXT_PT = 6.5
PRINT_WIDTH_IN = 7.0


class FigureCraftError(ValueError):
    """A figure that would not read as printed; ``problems`` lists what to fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("figure craft: " + "; ".join(problems))


def _texts(fig):
    """``(kind, text artist)`` for every visible, non-empty text of the figure."""
    found = []
    for t in ([fig._suptitle] if getattr(fig, "_suptitle", None) is not None else []):
        found.append(("title", t))
    for t in fig.texts:
        found.append(("text", t))
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for key in ("title", "_left_title", "_right_title"):
            t = ax.title if key == "title" else getattr(ax, key, None)
            if t is not None:
                found.append(("title", t))
        found += [("text", ax.xaxis.label), ("text", ax.yaxis.label)]
        if ax.axison:
            found += [("text", t) for t in ax.get_xticklabels() + ax.get_yticklabels()]
        found += [("text", t) for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            found += [("text", t) for t in legend.get_texts()]
            if legend.get_title() is not None:
                found.append(("text", legend.get_title()))
    for legend in fig.legends:
        found += [("text", t) for t in legend.get_texts()]
    return [(k, t) for k, t in found if t.get_visible() and t.get_text().strip()]


def _plots_data(ax) -> bool:
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle

    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1 or ln.get_marker() not in (None, "None", "")]
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() != 0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    return ax.axison and bool(lines or bars or bands) and not ax.images


def _categorical(axis) -> bool:
    """An axis whose tick labels are names (bars by condition), which say what the axis is without a label, or one
    that shows no tick labels at all (it shares its neighbour's, whose axis carries the names or the label)."""
    import re

    shown = axis.get_tick_params().get("labelleft" if axis.axis_name == "y" else "labelbottom", True)
    labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text().strip()]
    if not shown or not labels:
        return True
    return all(not re.fullmatch(r"[-+\u2212]?[\d.,]+(e[-+]?\d+)?[x%]?", lab.strip()) for lab in labels)


def craft_problems(fig, print_width: float = PRINT_WIDTH_IN) -> list[str]:
    """Every rule of this module that ``fig`` breaks, as a sentence naming the artist; [] for a figure that reads."""
    width = fig.get_size_inches()[0]
    scale = min(1.0, print_width / width)
    problems = []
    for kind, t in _texts(fig):
        printed = t.get_fontsize() * scale
        need = TITLE_PT if kind == "title" else TEXT_PT
        if printed < need - 1e-6:
            problems.append(f"{kind} {t.get_text()[:40]!r} prints at {printed:.1f} pt (< {need:g} pt at "
                            f"{print_width:g} in; the figure is {width:.1f} in wide)")
    colour_bars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    for i, ax in enumerate(fig.axes):
        if getattr(ax, "_colorbar", None) is not None or not ax.get_visible():
            continue
        name = ax.get_title() or f"axes {i}"
        if _plots_data(ax):
            missing = [a for a, axis in (("x", ax.xaxis), ("y", ax.yaxis))
                       if not axis.get_label().get_text().strip() and not _categorical(axis)]
            if missing:
                problems.append(f"{name!r} plots data with no {' or '.join(missing)} label")
        scalar = [im for im in ax.images if getattr(im.get_array(), "ndim", 3) == 2]
        if scalar and not colour_bars:
            problems.append(f"{name!r} draws a scalar image through a colour map with no colour bar in the figure")
    return problems


def fit_text(fig, print_width: float = PRINT_WIDTH_IN) -> int:
    """Raise every text that would print below its minimum (titles ``TITLE_PT``, the rest ``TEXT_PT``) to it, then let
    the figure's layout engine place the larger text; returns the number of texts raised."""
    scale = min(1.0, print_width / fig.get_size_inches()[0])
    raised = 0
    for kind, t in _texts(fig):
        need = (TITLE_PT if kind == "title" else TEXT_PT) / scale
        if t.get_fontsize() < need - 1e-6:
            t.set_fontsize(need)
            raised += 1
    if raised:
        _wrap_titles(fig)
        engine = fig.get_layout_engine()
        if engine is not None:
            engine.execute(fig)
        else:
            import warnings

            with warnings.catch_warnings():  # axes a tight layout cannot place (colour bars, insets) stay put
                warnings.simplefilter("ignore")
                fig.tight_layout()
    return raised


def _wrap_titles(fig) -> None:
    """Break an axes title that the larger text made wider than its axes onto lines that fit."""
    import textwrap

    for ax in fig.axes:
        t = ax.title
        text = t.get_text()
        if not text.strip() or "\n" in text:
            continue
        wide, room = t.get_window_extent().width, ax.get_window_extent().width  # the figure's own renderer
        if wide > room * 1.02:
            t.set_text(textwrap.fill(text, max(8, int(len(text) * room / wide))))


def save_figure(fig, path: str | Path, dpi: int = 120, print_width: float = PRINT_WIDTH_IN, **kwargs) -> Path:
    """Write a committed figure as a PNG (to a temporary name, then renamed): its text raised to the printed minimums
    (:func:`fit_text`), then refused with :class:`FigureCraftError` if any rule of :func:`craft_problems` still fails
    (a missing axis label or colour bar is the builder's to fix). ``bbox_inches="tight"`` unless given."""
    from resdit.io import atomic_write

    fit_text(fig, print_width)
    kwargs.setdefault("bbox_inches", "tight")
    problems = craft_problems(fig, print_width)
    if problems:
        raise FigureCraftError(problems)
    path = Path(path)
    with atomic_write(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=dpi, **kwargs)
    return path
