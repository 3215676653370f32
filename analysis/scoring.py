"""Every per-image metric of one study sample, from the image and its prompt (the exact render is the truth)."""

from __future__ import annotations

import numpy as np

from resdit.geometry import grid_starts, window_starts
from resdit.toy.world import parse_prompt
from resdit.toy.world import texture_period as world_texture_period

from .metrics import (border_lines, colour_coverage, detail_score, drawn_detail, ground_detail, layout_score,
                      noise_score, seam_score, measured_period, truth)

METRICS = ("correct", "count", "centre_error", "size_ratio", "fragments", "coverage", "detail", "detail_in_place",
           "noise", "ground_detail", "period_error", "seam", "seam_mop")


def window_borders(layout: str, size_px: int, base_px: int, px: int, align: int = 1, min_overlap: int = 1) -> list[int]:
    """Pixel positions of the window borders of a partition layout (``"mop"`` or ``"grid"``; MOP's starts aligned to
    ``align`` tokens, neighbours overlapping by at least ``min_overlap``) along one axis."""
    n, window = size_px // px, base_px // px
    starts = window_starts(n, window, align, min_overlap) if layout == "mop" else grid_starts(n, window)
    return border_lines(starts, window, n, px)


def score_case(image: np.ndarray, prompt: str, base: tuple[int, int], layout: str = "mop", px: int = 2,
               world: str | None = None, align: int = 1, min_overlap: int = 1) -> dict:
    """Every per-image metric of one sample ``[3, H, W]``.

    ``detail`` is layout-free (the drawn object's texture band against the exact render's), ``detail_in_place``
    the same band inside the true object mask; ``noise`` the speckle above every texture band; ``ground_detail``
    the ground texture away from objects (NaN on a plain ground). ``seam`` is measured on the borders of the
    windows the condition itself used (``layout``: its ``ModeSpec.windows``; ``align``: its window alignment,
    ``ResDiTConfig.align``; ``min_overlap``: its windows' least overlap, ``ResDiTConfig.overlap``), ``seam_mop`` always on the minimum-overlap borders as specified (unaligned). ``px``: pixels per token side (toy: 2); ``world``: the model's toy world.
    """
    scene = parse_prompt(prompt, world)
    obj = scene.objects[0]
    _, h, w = image.shape
    gt, masks = truth(scene, h, w)
    lay = layout_score(image, obj, masks[0], world)
    period = measured_period(image, masks[0]) if obj.texture == "striped" else float("nan")

    def seam(kind: str, align: int = 1, overlap: int = 1) -> float:
        rows = window_borders(kind, h, base[0], px, align, overlap)
        cols = window_borders(kind, w, base[1], px, align, overlap)
        return seam_score(image, rows, cols) if (rows or cols) else float("nan")

    stripe = world_texture_period("striped", world)
    cover = colour_coverage(image, obj, masks[0])
    return {
        "correct": float(lay.correct), "count": lay.count, "centre_error": lay.centre_error,
        "size_ratio": lay.size_ratio, "fragments": cover.fragments, "coverage": cover.coverage,
        "detail": drawn_detail(image, gt, obj, masks[0], world),
        "detail_in_place": detail_score(image, gt, obj, masks[0], world), "noise": noise_score(image, gt),
        "ground_detail": ground_detail(image, gt, scene, masks),
        "period_error": abs(period - stripe) / stripe, "seam": seam(layout, align, min_overlap), "seam_mop": seam("mop"),
    }


def heldout_detail(images: np.ndarray, prompts: list[str], base: tuple[int, int], world: str | None = None) -> dict:
    """``resdit eval-toy``'s detail reader (entry point ``resdit.toy_readers: detail``): the study's drawn-object
    detail of each image (NaN where nothing of the prompted colour was drawn) and its mean over the images that
    drew one, so a held-out run reads detail as the study does (``detail`` at 1x is the base size's). Beside it, as
    the study reads them: the pieces of the prompted colour per image (``fragments``) and the ground's detail away
    from objects (``ground_detail``, over the images on a textured ground)."""
    values, pieces, grounds = [], [], []
    for image, prompt in zip(images, prompts):
        scene = parse_prompt(prompt, world)
        gt, masks = truth(scene, *image.shape[1:])
        values.append(drawn_detail(image, gt, scene.objects[0], masks[0], world))
        pieces.append(colour_coverage(image, scene.objects[0], masks[0]).fragments)
        grounds.append(ground_detail(image, gt, scene, masks))

    def mean(xs):
        finite = [v for v in xs if np.isfinite(v)]
        return (float(np.mean(finite)) if finite else None), len(finite)

    def listed(xs):
        return [float(v) if np.isfinite(v) else None for v in xs]

    detail, n = mean(values)
    ground, n_ground = mean(grounds)
    return {"detail": detail, "detail_n": n, "detail_per_image": listed(values),
            "fragments": float(np.mean(pieces)), "fragments_per_image": [int(v) for v in pieces],
            "ground_detail": ground, "ground_detail_n": n_ground, "ground_detail_per_image": listed(grounds)}
