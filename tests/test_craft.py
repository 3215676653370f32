"""Figure craft: the checker sees each rule broken on a constructed figure, and the writer raises small text to the
printed minimums and refuses what it cannot fix."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from analysis.craft import TEXT_PT, TITLE_PT, FigureCraftError, craft_problems, fit_text, save_figure  # noqa: E402


def _lines(width=14.0, fontsize=6.0, labels=True):
    fig, ax = plt.subplots(figsize=(width, 3))
    ax.plot([1, 2, 3], [1, 4, 9], label="data")
    ax.set_title("a title", fontsize=fontsize)
    if labels:
        ax.set(xlabel="scale (x)", ylabel="seconds")
    for t in ax.get_xticklabels() + ax.get_yticklabels():
        t.set_fontsize(fontsize)
    ax.xaxis.label.set_fontsize(fontsize)
    ax.yaxis.label.set_fontsize(fontsize)
    return fig, ax


def test_text_too_small_at_the_printed_width_is_found_and_raised_to_the_minimums():
    fig, ax = _lines(width=14.0, fontsize=10.0)  # printed at half size: 5 pt
    problems = craft_problems(fig)
    assert any("title 'a title' prints at 5.0 pt" in p for p in problems)
    assert any("'seconds' prints at 5.0 pt" in p for p in problems)
    fit_text(fig)
    assert craft_problems(fig) == []
    assert ax.title.get_fontsize() == pytest.approx(TITLE_PT * 2) and ax.yaxis.label.get_fontsize() == pytest.approx(
        TEXT_PT * 2)
    narrow, _ = _lines(width=5.0, fontsize=10.0)  # narrower than the page: printed at its own size
    assert craft_problems(narrow) == []
    plt.close("all")


def test_an_unlabelled_axis_is_refused_but_named_categories_need_no_label(tmp_path):
    fig, _ = _lines(width=6.0, fontsize=10.0, labels=False)
    assert any("no x or y label" in p for p in craft_problems(fig))
    with pytest.raises(FigureCraftError, match="no x or y label"):
        save_figure(fig, tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists() and not list(tmp_path.iterdir())  # nothing half-written
    bars, ax = plt.subplots(figsize=(6, 3))
    ax.barh([0, 1], [0.5, 0.9])
    ax.set_yticks([0, 1], ["two-stage", "ResDiT"])
    ax.set_xlabel("share correct")
    assert craft_problems(bars) == []
    plt.close("all")


def test_a_scalar_image_needs_a_colour_bar_and_an_rgb_image_does_not(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 4))
    im = ax.imshow(np.random.default_rng(0).random((8, 8)), cmap="magma")
    ax.set_title("attention", fontsize=10)
    assert any("no colour bar" in p for p in craft_problems(fig))
    fig.colorbar(im, ax=ax, label="probability")
    assert craft_problems(fig) == []
    rgb, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(np.zeros((8, 8, 3)))
    ax.set_title("a sample", fontsize=10)
    assert craft_problems(rgb) == []
    assert save_figure(rgb, tmp_path / "rgb.png").stat().st_size > 0
    plt.close("all")


def test_a_figure_made_without_pyplot_is_fitted_and_a_long_title_wrapped(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 3))  # a bare canvas (FigureCanvasBase), as figures built without pyplot have
    ax = fig.add_subplot()
    ax.plot([1, 2], [1, 2])
    ax.set(xlabel="scale", ylabel="share")
    ax.set_title("a title long enough to be wider than its axes once the text is raised " * 2, fontsize=8)
    save_figure(fig, tmp_path / "bare.png")
    assert "\n" in ax.get_title() and craft_problems(fig) == []


def test_titles_that_run_into_each_other_are_found_and_broken_onto_lines_that_fit(tmp_path):
    def grid():
        fig, axes = plt.subplots(1, 6, figsize=(14.4, 2.4))
        for i, ax in enumerate(axes):
            ax.imshow(np.zeros((8, 8, 3)))
            ax.axis("off")
            ax.set_title(f"({i}) per-patch PE + local attention @ 2x\nmisplaced, 3 objects, detail 0.28", fontsize=8)
        return fig

    fig = grid()
    fit_text(fig)  # 8 pt on a 14.4 in figure prints at 3.9 pt: raised to 9 pt printed, then too wide for a panel
    assert craft_problems(fig) == []
    assert all(ax.title.get_text().count("\n") >= 3 for ax in fig.axes)  # each of the two lines broken
    save_figure(grid(), tmp_path / "grid.png")  # the writer does the same
    crowded = plt.figure(figsize=(4, 2))
    crowded.text(0.1, 0.5, "a caption that runs on", fontsize=9)
    crowded.text(0.3, 0.5, "over another caption", fontsize=9)
    assert any("overlaps" in p for p in craft_problems(crowded))
    with pytest.raises(FigureCraftError, match="overlaps"):
        save_figure(crowded, tmp_path / "crowded.png")
    assert not (tmp_path / "crowded.png").exists()
    plt.close("all")


def test_x_labels_of_neighbouring_panels_are_broken_to_fit_and_a_legend_over_a_title_is_refused(tmp_path):
    fig, axes = plt.subplots(1, 4, figsize=(15.8, 4), sharey=True)
    for ax, name in zip(axes, ("correct", "detail", "ground", "seam")):
        ax.barh([0, 1], [0.5, 0.9])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"{name} (share of images,\none object of the prompted colour in the prompted cell)", fontsize=8)
    axes[0].set_yticks([0, 1], ["two-stage", "ResDiT"])
    fig.tight_layout()
    fit_text(fig)
    assert craft_problems(fig) == [] and all(ax.xaxis.label.get_text().count("\n") >= 2 for ax in axes)
    fig.legend([plt.Rectangle((0, 0), 1, 1)], ["2x"], loc="upper right", bbox_to_anchor=(1.0, 1.0), fontsize=30)
    assert any("a legend" in p for p in craft_problems(fig))  # drawn over the last panel's title
    plt.close("all")
