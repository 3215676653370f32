"""Figure craft, checked where committed figures are written: text that reads at the printed size, a label on every
axis that plots data, and a colour bar beside every scalar image.

:func:`save_figure` is the one writer of the figures under ``figures/`` (notebooks, scripts, the demo): it refuses a
figure with a problem (:class:`FigureCraftError` lists each) and writes atomically. The rules, measurable on the
``Figure`` before it is saved:

* printed at ``print_width`` inches (7 in: a two-column page; narrower figures print at their own size), every title
  is at least ``TITLE_PT`` and every other text at least ``TEXT_PT`` points;
* every axes that plots data (lines, bars, markers, filled bands) has an x and a y label (units go there), but for an
  axis whose tick labels are names (bars by condition);
* every image drawn from a scalar field through a colour map (attention maps, spectra) has a colour bar in the
  figure; RGB images (generated samples) need none;
* no title, axis label, figure text or legend prints over another (the titles or x labels of neighbouring panels,
  a legend over a title), and no title over another panel.
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
        if legend.get_title() is not None:
            found.append(("text", legend.get_title()))
    seen, unique = set(), []
    for k, t in found:  # a suptitle is also one of the figure's texts: once, as a title
        if id(t) not in seen and t.get_visible() and t.get_text().strip():
            seen.add(id(t))
            unique.append((k, t))
    return unique


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


def _name(artist) -> str:
    return "a legend" if not hasattr(artist, "get_text") else artist.get_text()[:30]


def _overlap_pairs(fig) -> list[tuple]:
    """``(artist, other)`` for titles, axis labels, figure texts and legends that print over one another, and
    ``(title, axes)`` for a title that prints over another panel, laid out as saving will."""
    fig.draw_without_rendering()  # the layout engine places the text, as saving will
    labels = {id(t) for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label)}
    boxes = [(t, t.get_window_extent()) for kind, t in _texts(fig)
             if kind == "title" or t in fig.texts or id(t) in labels]
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    boxes += [(legend, legend.get_window_extent()) for legend in legends if legend.get_visible()]

    def meet(a, b) -> bool:  # more than a pixel of shared box
        return min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1

    found = [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if meet(box_a, box_b)]
    panels = [ax for ax in fig.axes if ax.get_visible() and (ax.images or _plots_data(ax))]
    for ax in fig.axes:
        if ax.get_visible() and ax.title.get_text().strip():
            box = ax.title.get_window_extent()
            other = next((o for o in panels if o is not ax and meet(box, o.get_window_extent())), None)
            if other is not None:
                found.append((ax.title, other))
    return found


def _overlaps(fig) -> list[str]:
    """Sentences for :func:`_overlap_pairs`: two labels of neighbouring panels that run into each other read as
    neither."""
    from matplotlib.axes import Axes

    return [f"title {_name(a)!r} prints over another panel" if isinstance(b, Axes) else
            f"text {_name(a)!r} overlaps {_name(b)!r}" for a, b in _overlap_pairs(fig)]


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
    problems += _overlaps(fig)
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


def _relayout(fig) -> None:
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    engine = fig.get_layout_engine()
    if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):  # a placeholder lays out nothing
        engine.execute(fig)
    else:
        import warnings

        with warnings.catch_warnings():  # axes a tight layout cannot place (colour bars, insets) stay put
            warnings.simplefilter("ignore")
            fig.tight_layout()


def fit_text(fig, print_width: float = PRINT_WIDTH_IN) -> int:
    """Raise every text that would print below its minimum (titles ``TITLE_PT``, the rest ``TEXT_PT``) to it, break
    one-line titles that the larger text made wider than their axes, let the figure's layout engine place the text,
    then break every line of a title or x label that still prints over another text or panel, laying out again until
    none does (at most four passes); returns the number of texts raised."""
    scale = min(1.0, print_width / fig.get_size_inches()[0])
    raised = 0
    for kind, t in _texts(fig):
        need = (TITLE_PT if kind == "title" else TEXT_PT) / scale
        if t.get_fontsize() < need - 1e-6:
            t.set_fontsize(need)
            raised += 1
    if raised:
        _wrap_labels(fig, [ax.title for ax in fig.axes if "\n" not in ax.title.get_text()])
        _relayout(fig)
    for _ in range(4):  # a layout that makes room for broken text narrows the axes: break again until it fits
        crowded = [t for pair in _overlap_pairs(fig) for t in pair if hasattr(t, "get_text")]
        if not _wrap_labels(fig, crowded):
            break
        _relayout(fig)
    return raised


def _wrap_labels(fig, texts) -> int:
    """Break each line of the axes titles and x labels among ``texts`` that are wider than their axes onto lines that
    fit; returns the number of texts broken."""
    import textwrap

    wanted = {id(t) for t in texts}
    wrapped = 0
    for ax in fig.axes:
        for t in (ax.title, ax.xaxis.label):
            text = t.get_text()
            if id(t) not in wanted or not text.strip() or not t.get_visible():
                continue
            wide, room = t.get_window_extent().width, ax.get_window_extent().width  # the figure's own renderer
            if wide > room * 1.02:
                lines = text.split("\n")
                longest = max(len(line) for line in lines)
                width = max(8, int(longest * room / wide))  # characters that fit, from the widest line
                t.set_text("\n".join(textwrap.fill(line, width) for line in lines))
                wrapped += 1
    return wrapped


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
