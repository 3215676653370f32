"""The toy scene world: prompts, an exact renderer at any size, and a colour-based object detector.

A scene is one or two objects on a smooth, dark, desaturated background. Layout (shape,
colour, place, size) scales with the canvas; texture has a fixed period in *pixels*, so a
canvas twice as large shows objects twice as large with equally fine texture. That split is
what lets the study tell layout (positional encoding) from detail (receptive field).

Example:
    >>> scene = parse_prompt("a red striped circle at top left")
    >>> out = render(scene, 32, 48)
    >>> out.image.shape, out.masks.shape
    ((3, 32, 48), (1, 32, 48))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.92, 0.16, 0.14),
    "green": (0.18, 0.84, 0.22),
    "blue": (0.20, 0.36, 0.96),
    "yellow": (0.95, 0.88, 0.16),
}
# Hue of each palette colour in degrees, used by the detector.
COLOUR_HUES: dict[str, float] = {"red": 1.0, "green": 123.0, "blue": 225.0, "yellow": 55.0}
SHAPES = ("circle", "square", "triangle")
TEXTURES = ("striped", "checkered")
# Texture periods in pixels: fixed whatever the canvas size.
TEXTURE_PERIOD_PX: dict[str, float] = {"striped": 4.0, "checkered": 6.0}
TEXTURE_DEPTH = 0.4  # texture darkens the object colour to (1 - depth) at its troughs
PLACES: dict[str, tuple[int, int]] = {
    "top left": (0, 0), "top": (0, 1), "top right": (0, 2),
    "left": (1, 0), "center": (1, 1), "right": (1, 2),
    "bottom left": (2, 0), "bottom": (2, 1), "bottom right": (2, 2),
}
VOCABULARY: tuple[str, ...] = (
    "<pad>", "a", "an", "and", "at", *COLOURS, *TEXTURES, *SHAPES, "top", "bottom", "left", "right", "center",
)
# Object radius as a fraction of the canvas' shorter side.
RADIUS_RANGE = (0.13, 0.18)
CENTRE_JITTER = 0.04  # fraction of the canvas side


@dataclass(frozen=True)
class SceneObject:
    """One object; geometry in canvas fractions so it is resolution independent."""

    colour: str
    texture: str
    shape: str
    place: str
    cx: float  # centre x, fraction of width
    cy: float  # centre y, fraction of height
    radius: float  # fraction of min(height, width)

    @property
    def cell(self) -> tuple[int, int]:
        return PLACES[self.place]

    def phrase(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        return f"{article} {self.colour} {self.texture} {self.shape} at {self.place}"


@dataclass(frozen=True)
class Scene:
    """Objects plus a background gradient (two RGB colours and a direction in radians)."""

    objects: tuple[SceneObject, ...]
    background: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.2, 0.2, 0.22), (0.3, 0.28, 0.3))
    background_angle: float = 0.0

    @property
    def prompt(self) -> str:
        return " and ".join(o.phrase() for o in self.objects)


@dataclass
class Rendered:
    """Renderer output. image: [3, H, W] in [0, 1]; masks: [objects, H, W] bool."""

    image: np.ndarray
    masks: np.ndarray
    scene: Scene
    params: dict = field(default_factory=dict)


class PromptError(ValueError):
    """A prompt the toy world cannot draw."""


_PHRASE = re.compile(
    r"^an? (?P<colour>\w+) (?P<texture>\w+) (?P<shape>\w+) at (?P<place>(?:top|bottom)(?: left| right)?|left|right|center)$"
)


def parse_prompt(prompt: str) -> Scene:
    """Parse ``a <colour> <texture> <shape> at <place>[ and ...]`` into a canonical scene.

    Objects sit exactly at their cell centres with the mid-range radius; use
    :func:`random_scene` for jittered training scenes.

    Raises:
        PromptError: naming the unknown words and the vocabulary.
    """
    words = prompt.lower().strip().rstrip(".").split()
    unknown = sorted({w for w in words if w not in VOCABULARY})
    if unknown:
        raise PromptError(
            f"Words outside the toy vocabulary: {unknown}. The toy world knows: colours {list(COLOURS)}, "
            f"textures {list(TEXTURES)}, shapes {list(SHAPES)}, places {list(PLACES)}. "
            "Write e.g. 'a red striped circle at top left'."
        )
    phrases = " ".join(words).split(" and ")
    if len(phrases) > 2:
        raise PromptError("The toy world draws at most two objects per scene.")
    objects = []
    for phrase in phrases:
        m = _PHRASE.match(phrase)
        if m is None:
            raise PromptError(f"Cannot parse {phrase!r}: expected 'a <colour> <texture> <shape> at <place>'.")
        g = m.groupdict()
        for key, allowed in (("colour", COLOURS), ("texture", TEXTURES), ("shape", SHAPES)):
            if g[key] not in allowed:
                raise PromptError(f"{g[key]!r} is not a {key}; choose one of {list(allowed)}.")
        row, col = PLACES[g["place"]]
        objects.append(SceneObject(g["colour"], g["texture"], g["shape"], g["place"],
                                   (col + 0.5) / 3, (row + 0.5) / 3, sum(RADIUS_RANGE) / 2))
    if len(objects) == 2 and objects[0].place == objects[1].place:
        raise PromptError("Two objects need two different places.")
    return Scene(tuple(objects))


def random_scene(rng: np.random.Generator, p_two: float = 0.0) -> Scene:
    """A random scene: jittered objects and a random smooth background."""
    n = 2 if rng.random() < p_two else 1
    places = rng.choice(len(PLACES), size=n, replace=False)
    objects = []
    for p in places:
        place = list(PLACES)[int(p)]
        row, col = PLACES[place]
        objects.append(SceneObject(
            colour=str(rng.choice(list(COLOURS))), texture=str(rng.choice(TEXTURES)), shape=str(rng.choice(SHAPES)),
            place=place,
            cx=(col + 0.5) / 3 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER),
            cy=(row + 0.5) / 3 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER),
            radius=float(rng.uniform(*RADIUS_RANGE)),
        ))
    return Scene(tuple(objects), background=(_background_colour(rng), _background_colour(rng)),
                 background_angle=float(rng.uniform(0, 2 * math.pi)))


def _background_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    grey = rng.uniform(0.12, 0.38)
    return tuple(float(np.clip(grey + rng.uniform(-0.05, 0.05), 0, 1)) for _ in range(3))


def _signed_distance(shape: str, x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """Signed distance in pixels to the shape's outline (negative inside)."""
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return np.hypot(dx, dy) - r
    if shape == "square":
        s = r * 0.886  # same area as the circle of radius r
        return np.maximum(np.abs(dx), np.abs(dy)) - s
    if shape == "triangle":  # upward equilateral triangle with circumradius ~1.2 r
        R = 1.2 * r
        k = math.sqrt(3.0)
        # Distances to the three edge lines (inradius R/2 from the centre).
        d1 = dy - R / 2  # bottom edge
        d2 = (-k * dx - dy) / 2 - R / 2
        d3 = (k * dx - dy) / 2 - R / 2
        return np.maximum(np.maximum(d1, d2), d3)
    raise PromptError(f"Unknown shape {shape!r}")


def texture_factor(texture: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Brightness factor in [1 - TEXTURE_DEPTH, 1] at pixel coordinates (x, y)."""
    period = TEXTURE_PERIOD_PX[texture]
    if texture == "striped":
        wave = np.cos(2 * math.pi * x / period)
    elif texture == "checkered":
        wave = np.cos(2 * math.pi * x / period) * np.cos(2 * math.pi * y / period)
    else:
        raise PromptError(f"Unknown texture {texture!r}")
    return 1.0 - TEXTURE_DEPTH * (0.5 + 0.5 * wave)


def render(scene: Scene, height: int, width: int) -> Rendered:
    """Render a scene exactly at ``height x width`` pixels.

    Returns:
        Rendered with image ``[3, height, width]`` in [0, 1] and masks ``[objects, height, width]``.
    """
    if height < 4 or width < 4:
        raise ValueError(f"Canvas must be at least 4x4 pixels, got {height}x{width}.")
    y, x = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5  # pixel centres
    c0, c1 = (np.asarray(c, dtype=np.float64) for c in scene.background)
    u = ((x / width - 0.5) * math.cos(scene.background_angle) + (y / height - 0.5) * math.sin(scene.background_angle))
    u = np.clip(u + 0.5, 0.0, 1.0)
    image = c0[:, None, None] * (1 - u) + c1[:, None, None] * u
    masks = []
    side = min(height, width)
    for obj in scene.objects:
        r = obj.radius * side
        sd = _signed_distance(obj.shape, x, y, obj.cx * width, obj.cy * height, r)
        alpha = np.clip(0.5 - sd, 0.0, 1.0)  # one-pixel anti-aliased edge
        colour = np.asarray(COLOURS[obj.colour])[:, None, None] * texture_factor(obj.texture, x, y)
        image = image * (1 - alpha) + colour * alpha
        masks.append(alpha >= 0.5)
    return Rendered(image.astype(np.float32), np.stack(masks) if masks else np.zeros((0, height, width), bool), scene,
                    {"height": height, "width": width})


# ----------------------------------------------------------------------------- detection


def rgb_to_hsv(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[3, H, W]`` RGB in [0, 1] -> hue (degrees), saturation, value, each ``[H, W]``."""
    r, g, b = np.clip(image, 0, 1)
    mx, mn = image.max(0), image.min(0)
    delta = mx - mn
    sat = np.where(mx > 1e-6, delta / np.maximum(mx, 1e-6), 0.0)
    d = np.maximum(delta, 1e-6)
    hue = np.select([mx == r, mx == g], [((g - b) / d) % 6, (b - r) / d + 2], (r - g) / d + 4) * 60.0
    return hue, sat, mx


def colour_mask(image: np.ndarray, colour: str, min_saturation: float = 0.45, min_value: float = 0.3) -> np.ndarray:
    """Pixels whose hue is nearest to ``colour`` among the palette and that are saturated and bright."""
    hue, sat, val = rgb_to_hsv(image)
    hues = np.array(list(COLOUR_HUES.values()))
    dist = np.abs((hue[..., None] - hues + 180.0) % 360.0 - 180.0)
    nearest = np.array(list(COLOUR_HUES))[dist.argmin(-1)]
    return (nearest == colour) & (sat >= min_saturation) & (val >= min_value)


@dataclass
class Detection:
    """Objects of one colour found in an image; centres in canvas fractions (x, y)."""

    count: int
    centres: list[tuple[float, float]]
    areas: list[float]  # fraction of the canvas


def detect(image: np.ndarray, colour: str, min_area_fraction: float = 0.15) -> Detection:
    """Find connected blobs of ``colour``; a blob counts as an object if its area is at least
    ``min_area_fraction`` of the smallest object the world draws at this canvas size.

    Args:
        image: ``[3, H, W]`` RGB in [0, 1].
    """
    from scipy import ndimage

    _, h, w = image.shape
    mask = ndimage.binary_closing(colour_mask(image, colour), structure=np.ones((3, 3)), iterations=1)
    labels, n = ndimage.label(mask)
    min_area = min_area_fraction * math.pi * (RADIUS_RANGE[0] * min(h, w)) ** 2
    centres, areas = [], []
    for i in range(1, n + 1):
        ys, xs = np.nonzero(labels == i)
        if len(ys) >= min_area:
            centres.append(((xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h))
            areas.append(len(ys) / (h * w))
    return Detection(len(centres), centres, areas)


def cell_of(cx: float, cy: float) -> tuple[int, int]:
    """The 3x3 cell (row, col) containing a centre given in canvas fractions."""
    return min(int(cy * 3), 2), min(int(cx * 3), 2)


def prompt_correct(image: np.ndarray, obj: SceneObject) -> bool:
    """Exactly one object of the prompted colour, with its centre in the prompted cell."""
    det = detect(image, obj.colour)
    return det.count == 1 and cell_of(*det.centres[0]) == obj.cell
