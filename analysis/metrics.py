"""Metrics: pure functions of images (``[3, H, W]`` RGB in [0, 1]) and, where the toy world gives it,
ground truth.

* layout: object count (repetition), centre error, size ratio against the scaled ground truth;
  coverage and fragments: how much of the prompted colour was drawn and in how many pieces (an object that
  breaks up into specks below the object size counts 0 objects but is not gone);
* detail, layout-free: texture-band energy inside the object the model *drew* (segmented by colour,
  wherever it is) relative to the exact render's, per pixel; ``detail_in_place`` reads the same band
  inside the *true* object mask (a crisp but misplaced object scores 0 there);
* noise: high-frequency energy above every texture band, in excess of the exact render's, so speckle
  is not mistaken for detail;
* ground detail: the ground texture's band away from every object (toy world v2's ``on tiles``);
* texture period;
* seams: gradient energy on window borders relative to elsewhere;
* distribution: KID and patch-KID with a pluggable feature extractor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from resdit.toy.world import (GROUND_PERIOD_PX, Scene, SceneObject, cell_of, colour_mask, detect, render,
                              texture_period as world_texture_period)


# ------------------------------------------------------------------------------------------ layout
@dataclass
class LayoutScore:
    count: int  # objects of the prompted colour
    correct: bool  # exactly one, centre in the prompted cell
    centre_error: float  # distance of the largest blob's centre to the true centre, canvas fractions
    size_ratio: float  # largest blob's area / true object area


def layout_score(image: np.ndarray, obj: SceneObject, truth_mask: np.ndarray, world=None) -> LayoutScore:
    """Layout of one prompted object against its exact render at this size (a prompt without a place is
    correct with one object anywhere)."""
    det = detect(image, obj.colour, world=world)
    if det.count == 0:
        return LayoutScore(0, False, float("nan"), 0.0)
    k = int(np.argmax(det.areas))
    cx, cy = det.centres[k]
    truth_area = truth_mask.mean()
    return LayoutScore(det.count, det.count == 1 and (obj.cell is None or cell_of(cx, cy) == obj.cell),
                       math.hypot(cx - obj.cx, cy - obj.cy), det.areas[k] / max(truth_area, 1e-12))


def _colour_blobs(image: np.ndarray, colour: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mask, labels, sizes)`` of the blobs of ``colour`` (the colour mask closed by 3x3, as ``detect`` does)."""
    from scipy import ndimage

    mask = ndimage.binary_closing(colour_mask(image, colour), structure=np.ones((3, 3)), iterations=1)
    labels, n = ndimage.label(mask)
    return mask, labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]


#: the least pixels of a blob of the prompted colour counted as a fragment (specks of 1-3 px are noise)
FRAGMENT_MIN_PIXELS = 4


@dataclass
class Coverage:
    fragments: int  # blobs of the prompted colour of at least FRAGMENT_MIN_PIXELS, any size above that
    coverage: float  # pixels of the prompted colour over the exact render's object pixels


def colour_coverage(image: np.ndarray, obj: SceneObject, truth_mask: np.ndarray) -> Coverage:
    """How much of the prompted colour was drawn, and in how many pieces, whatever the object count says.

    ``detect`` counts blobs of at least a share of the world's smallest object; an object broken into specks
    reads as 0 objects there, as if it had vanished. Here it reads as many fragments covering part of the true
    object's area, and an object drawn too faint to pass the colour mask as coverage ~0."""
    mask, _, sizes = _colour_blobs(image, obj.colour)
    return Coverage(int((sizes >= FRAGMENT_MIN_PIXELS).sum()), float(mask.sum() / max(truth_mask.sum(), 1)))


# ------------------------------------------------------------------------------------------ detail
def texture_frequency(texture: str, world=None) -> float:
    """Radial frequency (cycles/px) of a texture: stripes along x; checker along both axes."""
    f = 1.0 / world_texture_period(texture, world)
    return f if texture == "striped" else f * math.sqrt(2)


def ground_frequency(ground: str) -> float:
    """Radial frequency (cycles/px) of a ground's texture: waves along y; tiles along both axes."""
    f = 1.0 / GROUND_PERIOD_PX[ground]
    return f if ground == "waves" else f * math.sqrt(2)


#: the FFT of a masked crop is zero-padded to at least this many pixels a side, so the texture band holds
#: several frequency bins however small the object is
FFT_MIN_SIDE = 64


def stripe_band_energy(gray: np.ndarray, mask: np.ndarray, freq: float, half_width: float = 0.04,
                pad_to: int | None = FFT_MIN_SIDE) -> tuple[float, float]:
    """``(band, total)`` spectral energy per masked pixel of ``gray`` inside ``mask`` (mean removed), the band an
    annulus of radial frequency ``freq`` cycles/px. The FFT is zero-padded to ``pad_to`` pixels a side (None:
    the crop's own bins) and normalised (Parseval), so values compare across object sizes."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0.0, 0.0
    crop = gray[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    m = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    values = np.where(m, crop - crop[m].mean(), 0.0)
    shape = values.shape if pad_to is None else (max(pad_to, values.shape[0]), max(pad_to, values.shape[1]))
    spec = np.abs(np.fft.fft2(values, s=shape)) ** 2 / (shape[0] * shape[1])
    radius = np.hypot(np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :])
    band = np.abs(radius - freq) <= half_width
    return float(spec[band].sum() / m.sum()), float(spec.sum() / m.sum())


def drawn_mask(image: np.ndarray, colour: str, min_pixels: int = 12) -> np.ndarray | None:
    """The largest blob of ``colour`` in ``image``: the object the model drew, wherever it is (None if none)."""
    _, labels, sizes = _colour_blobs(image, colour)
    if len(sizes) == 0:
        return None
    k = int(np.argmax(sizes))
    return labels == k + 1 if sizes[k] >= min_pixels else None


def _inner(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, iterations=2) if mask.sum() > 50 else mask


def drawn_detail(image: np.ndarray, truth: np.ndarray, obj: SceneObject, truth_mask: np.ndarray,
                 world=None) -> float:
    """Texture-band energy per pixel inside the drawn object over the exact render's inside the true object
    (1 = as crisp; layout-free: a crisp object in the wrong place still scores ~1).

    NaN where nothing of the colour was drawn, or the exact render has no texture band to compare with."""
    drawn = drawn_mask(image, obj.colour)
    if drawn is None:
        return float("nan")
    return _relative_band(image, _inner(drawn), truth, _inner(truth_mask), texture_frequency(obj.texture, world))


#: radial frequency (cycles/px) above every object and ground texture of the toy worlds (highest: 0.28)
NOISE_FROM = 0.36


def high_frequency_energy(image: np.ndarray) -> float:
    """Spectral energy per pixel of the grey image at radial frequencies above ``NOISE_FROM``."""
    gray = image.mean(0)
    spec = np.abs(np.fft.fft2(gray - gray.mean())) ** 2 / gray.size ** 2
    radius = np.hypot(np.fft.fftfreq(gray.shape[0])[:, None], np.fft.fftfreq(gray.shape[1])[None, :])
    return float(spec[radius > NOISE_FROM].sum())


def noise_score(image: np.ndarray, truth: np.ndarray) -> float:
    """Speckle: high-frequency energy per pixel above every texture band, in excess of the exact render's
    (edges have some; textures have none up there). 0 for the exact render; white noise of std s adds ~0.56 s^2."""
    return max(0.0, high_frequency_energy(image) - high_frequency_energy(truth))


def ground_detail(image: np.ndarray, truth: np.ndarray, scene: Scene, truth_masks: np.ndarray,
                  margin: int = 3) -> float:
    """The ground texture's band energy per pixel away from every object (true ones and what was drawn in the
    prompted colours), over the exact render's in the same pixels. NaN on a plain ground."""
    from scipy.ndimage import binary_dilation

    if scene.ground == "plain":
        return float("nan")
    busy = truth_masks.any(0) if len(truth_masks) else np.zeros(image.shape[1:], bool)
    for obj in scene.objects:
        busy |= colour_mask(image, obj.colour)
    away = ~binary_dilation(busy, iterations=margin)
    if away.sum() < 64:
        return float("nan")
    f = ground_frequency(scene.ground)
    reference = stripe_band_energy(truth.mean(0), away, f)[0]
    return stripe_band_energy(image.mean(0), away, f)[0] / reference if reference > 0 else float("nan")


#: the least share of the exact render's energy inside the mask that the texture band must hold for a detail score
MIN_BAND_SHARE = 0.05


def detail_score(image: np.ndarray, truth: np.ndarray, obj: SceneObject, mask: np.ndarray, world=None) -> float:
    """Texture-band energy inside the true object mask, relative to the exact render (1 = as crisp).

    NaN where the exact render itself has (almost) no energy in the band inside the mask (under
    ``MIN_BAND_SHARE`` of its energy there: a mask too small or a size where the texture's frequency
    falls between the crop's frequency bins), so the ratio would divide by nothing."""
    inner = _inner(mask)
    return _relative_band(image, inner, truth, inner, texture_frequency(obj.texture, world), pad_to=None)


def _relative_band(image, image_mask, truth, truth_mask, freq: float, pad_to: int | None = FFT_MIN_SIDE) -> float:
    """Band energy per pixel of ``image`` in ``image_mask`` over the exact render's in ``truth_mask``; NaN where the
    render has under ``MIN_BAND_SHARE`` of its energy in the band (a ratio against nothing)."""
    reference, total = stripe_band_energy(truth.mean(0), truth_mask, freq, pad_to=pad_to)
    if not reference > MIN_BAND_SHARE * total:
        return float("nan")
    return stripe_band_energy(image.mean(0), image_mask, freq, pad_to=pad_to)[0] / reference


def measured_period(image: np.ndarray, mask: np.ndarray) -> float:
    """Dominant horizontal period (px) of the brightness inside ``mask`` (rows averaged)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 8:
        return float("nan")
    gray = image.mean(0)
    n = 256
    power = np.zeros(n // 2 + 1)
    for r in np.unique(ys):
        cols = xs[ys == r]
        if len(cols) < 6:
            continue
        row = gray[r, cols.min():cols.max() + 1]
        power += np.abs(np.fft.rfft((row - row.mean()) * np.hanning(len(row)), n=n)) ** 2
    k = int(np.argmax(power[2:])) + 2  # skip DC and the window's leakage
    return n / k


# ------------------------------------------------------------------------------------------ seams
def border_lines(starts: list[int], window: int, length: int, px_per_token: int = 1) -> list[int]:
    """Pixel positions of window borders (starts and ends inside the image), deduplicated."""
    lines = {s for s in starts if s > 0} | {s + window for s in starts if s + window < length}
    return sorted(p * px_per_token for p in lines)


def overlap_lines(starts: list[int], window: int, length: int, px_per_token: int = 1) -> list[int]:
    """Pixel positions of every line inside the windows' overlaps, borders included: where any splice moves from
    one window to the next. A splice that crossfades inside the overlap (``splice="feather"``) leaves its seam
    between the border lines, where :func:`border_lines` does not look."""
    lines = set()
    for a, b in zip(starts, starts[1:]):
        lines.update(range(b * px_per_token, min(a + window, length) * px_per_token + 1))
    return sorted(p for p in lines if 0 < p < length * px_per_token)


def seam_score(image: np.ndarray, rows: list[int], cols: list[int]) -> float:
    """Mean gradient energy across the given border lines over that elsewhere (1 = no seam).

    ``rows``/``cols`` are pixel positions of horizontal/vertical borders; the gradient across a
    border at ``p`` is ``image[p] - image[p - 1]``.
    """
    gy = np.diff(image, axis=1) ** 2  # [3, H-1, W]; index p-1 is the step from p-1 to p
    gx = np.diff(image, axis=2) ** 2
    on_y = np.zeros(gy.shape[1], bool)
    on_y[[p - 1 for p in rows if 0 < p < image.shape[1]]] = True
    on_x = np.zeros(gx.shape[2], bool)
    on_x[[p - 1 for p in cols if 0 < p < image.shape[2]]] = True
    on = np.concatenate([gy[:, on_y].ravel(), gx[:, :, on_x].ravel()])
    off = np.concatenate([gy[:, ~on_y].ravel(), gx[:, :, ~on_x].ravel()])
    if on.size == 0:
        return float("nan")
    return float(on.mean() / max(off.mean(), 1e-12))


# ------------------------------------------------------------------------------------------ KID
class RandomFeatures:
    """A fixed random feature extractor for the toy world: random 5x5 conv filters at three scales,
    ReLU, global average and max pooling. Deterministic in ``seed``; no weights to download."""

    def __init__(self, dim: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.filters = rng.standard_normal((dim, 3, 5, 5)) / math.sqrt(75)
        self.bias = rng.standard_normal(dim) * 0.1

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``[N, 3, H, W]`` -> ``[N, 2 * dim * 3]``."""
        import torch
        import torch.nn.functional as F

        x = torch.as_tensor(images, dtype=torch.float32) * 2 - 1
        w = torch.as_tensor(self.filters, dtype=torch.float32)
        b = torch.as_tensor(self.bias, dtype=torch.float32)
        feats = []
        for scale in (1, 2, 4):
            xs = F.avg_pool2d(x, scale) if scale > 1 else x
            if min(xs.shape[-2:]) < 5:
                xs = F.interpolate(xs, size=(5, 5), mode="bilinear", align_corners=False)
            h = F.relu(F.conv2d(xs, w, b))
            feats += [h.mean((-2, -1)), h.amax((-2, -1))]
        return torch.cat(feats, 1).numpy().astype(np.float64)


def kid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Unbiased kernel inception distance (cubic polynomial kernel) between two feature sets."""
    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    d = features_a.shape[1]
    kxx = (features_a @ features_a.T / d + 1) ** 3
    kyy = (features_b @ features_b.T / d + 1) ** 3
    kxy = (features_a @ features_b.T / d + 1) ** 3
    m, n = len(features_a), len(features_b)
    if m < 2 or n < 2:
        raise ValueError("KID needs at least two samples per set.")
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def base_size_crops(images: np.ndarray, size: tuple[int, int], per_image: int = 4, seed: int = 0) -> np.ndarray:
    """Random crops of ``size`` pixels (patch-KID compares these with base-size renders)."""
    rng = np.random.default_rng(seed)
    out = []
    for im in images:
        _, h, w = im.shape
        for _ in range(per_image):
            y, x = rng.integers(0, h - size[0] + 1), rng.integers(0, w - size[1] + 1)
            out.append(im[:, y:y + size[0], x:x + size[1]])
    return np.stack(out)


def truth(scene: Scene, height: int, width: int):
    """The exact render of a scene at a size: ``(image, masks)``."""
    r = render(scene, height, width)
    return r.image, r.masks
