"""The toy scene world: prompts, an exact renderer at any size, and a colour-based object detector.

A scene is one or two objects on a dark, desaturated ground. Layout (shape, colour, place,
size) scales with the canvas; texture has a fixed period in *pixels*, so a canvas twice as
large shows objects twice as large with equally fine texture. That split is what lets the
study tell layout (positional encoding) from detail (receptive field).

Two worlds share the grammar and renderer (:data:`WORLDS`):

* ``v1``: objects of radius 0.13-0.18 of the canvas, always at a named place, on a smooth ground.
* ``v2``: object scale from small to close-ups larger than the canvas (a base-size window of a
  large object is then in distribution, as crops are for FLUX); at least three texture periods
  across a typical object at the base size; grounds with a fixed-pixel-period texture
  (``on tiles``, ``on waves``), so detail can be read away from objects; place and ground may
  be left out of a prompt (then random in training). ``a <colour> <texture> <shape> at <place>``
  means the same in both.

Example:
    >>> scene = parse_prompt("a red striped circle at top left")
    >>> out = render(scene, 32, 48)
    >>> out.image.shape, out.masks.shape
    ((3, 32, 48), (1, 32, 48))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

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
# Grounds: "plain" is v1's smooth gradient; the others add a fixed-pixel-period texture to it.
GROUNDS = ("plain", "tiles", "waves")
GROUND_PERIOD_PX: dict[str, float] = {"tiles": 8.0, "waves": 6.0}
GROUND_DEPTH = 0.35
# v1's words keep their ids; v2's are appended, so a v1 text encoder reads every v1 prompt unchanged.
VOCABULARY_V1: tuple[str, ...] = (
    "<pad>", "a", "an", "and", "at", *COLOURS, *TEXTURES, *SHAPES, "top", "bottom", "left", "right", "center",
)
VOCABULARY: tuple[str, ...] = (*VOCABULARY_V1, "on", *GROUNDS)
# Object radius as a fraction of the canvas' shorter side (v1).
RADIUS_RANGE = (0.13, 0.18)
CENTRE_JITTER = 0.04  # fraction of the canvas side


@dataclass(frozen=True)
class World:
    """The parameters that differ between toy worlds.

    Attributes:
        texture_period_px: object texture periods in pixels.
        placed_radius: radius range (fraction of the shorter side) of an object at a named place;
            sampled log-uniformly in training; ``canonical_radius`` is what a prompt renders to.
        free_radius: radius range of an object whose prompt names no place (None: places are
            always named); its centre is uniform in ``free_centre`` x ``free_centre``.
        p_place / p_ground: training probability that a prompt names the place / the ground.
        grounds: the grounds a scene may stand on.
    """

    name: str
    texture_period_px: dict
    placed_radius: tuple[float, float]
    canonical_radius: float
    free_radius: tuple[float, float] | None = None
    free_centre: tuple[float, float] = (0.1, 0.9)
    p_place: float = 1.0
    p_ground: float = 0.0
    grounds: tuple[str, ...] = ("plain",)

    @property
    def min_radius(self) -> float:
        return self.placed_radius[0] if self.free_radius is None else min(self.placed_radius[0], self.free_radius[0])


WORLDS: dict[str, World] = {
    "v1": World("v1", dict(TEXTURE_PERIOD_PX), RADIUS_RANGE, sum(RADIUS_RANGE) / 2),
    # Typical placed object at the 32 px base: diameter 15 px = 3.8 stripe periods, 3.1 checker periods.
    "v2": World("v2", {"striped": 4.0, "checkered": 5.0}, (0.16, 0.34), 0.24, free_radius=(0.16, 1.2),
                p_place=0.6, p_ground=0.6, grounds=GROUNDS),
}
DEFAULT_WORLD = "v1"


def get_world(world: str | World | None) -> World:
    if isinstance(world, World):
        return world
    name = DEFAULT_WORLD if world is None else world
    if name not in WORLDS:
        raise ValueError(f"Unknown toy world {name!r}; choose one of {list(WORLDS)}.")
    return WORLDS[name]


@dataclass(frozen=True)
class SceneObject:
    """One object; geometry in canvas fractions so it is resolution independent."""

    colour: str
    texture: str
    shape: str
    place: str | None  # None: the prompt names no place (v2)
    cx: float  # centre x, fraction of width
    cy: float  # centre y, fraction of height
    radius: float  # fraction of min(height, width)

    @property
    def cell(self) -> tuple[int, int] | None:
        return None if self.place is None else PLACES[self.place]

    def phrase(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        where = "" if self.place is None else f" at {self.place}"
        return f"{article} {self.colour} {self.texture} {self.shape}{where}"


@dataclass(frozen=True)
class Scene:
    """Objects plus a background gradient (two RGB colours and a direction in radians)."""

    objects: tuple[SceneObject, ...]
    background: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.2, 0.2, 0.22), (0.3, 0.28, 0.3))
    background_angle: float = 0.0
    ground: str = "plain"
    ground_named: bool = False  # the prompt says "on <ground>"
    world: str = DEFAULT_WORLD

    @property
    def prompt(self) -> str:
        text = " and ".join(o.phrase() for o in self.objects)
        return f"{text} on {self.ground}" if self.ground_named else text


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
    r"^an? (?P<colour>\w+) (?P<texture>\w+) (?P<shape>\w+)"
    r"(?: at (?P<place>(?:top|bottom)(?: left| right)?|left|right|center))?$"
)


def parse_prompt(prompt: str, world: str | World | None = None) -> Scene:
    """Parse ``a <colour> <texture> <shape>[ at <place>][ and ...][ on <ground>]`` into a canonical scene.

    Objects sit exactly at their cell centres (the canvas centre when no place is named) with the
    world's canonical radius; an unnamed ground is ``plain``. Use :func:`random_scene` for
    jittered training scenes.

    Raises:
        PromptError: naming the unknown words and the vocabulary.
    """
    w = get_world(world)
    words = prompt.lower().strip().rstrip(".").split()
    unknown = sorted({w for w in words if w not in VOCABULARY})
    if unknown:
        raise PromptError(
            f"Words outside the toy vocabulary: {unknown}. The toy world knows: colours {list(COLOURS)}, "
            f"textures {list(TEXTURES)}, shapes {list(SHAPES)}, places {list(PLACES)}. "
            "Write e.g. 'a red striped circle at top left'."
        )
    ground, ground_named = "plain", False
    if len(words) >= 2 and words[-2] == "on":
        ground, ground_named, words = words[-1], True, words[:-2]
        if ground not in w.grounds:
            raise PromptError(f"{ground!r} is not a ground of toy world {w.name}; choose one of {list(w.grounds)}.")
    if "on" in words or any(g in words for g in GROUNDS):
        raise PromptError("A ground goes once, at the end: '... on <ground>'.")
    phrases = " ".join(words).split(" and ")
    if len(phrases) > 2:
        raise PromptError("The toy world draws at most two objects per scene.")
    objects = []
    for phrase in phrases:
        m = _PHRASE.match(phrase)
        if m is None:
            raise PromptError(f"Cannot parse {phrase!r}: expected 'a <colour> <texture> <shape> at <place>' "
                              "(v2: the place may be left out, and the prompt may end with 'on <ground>').")
        g = m.groupdict()
        for key, allowed in (("colour", COLOURS), ("texture", TEXTURES), ("shape", SHAPES)):
            if g[key] not in allowed:
                raise PromptError(f"{g[key]!r} is not a {key}; choose one of {list(allowed)}.")
        if g["place"] is None and w.free_radius is None:
            raise PromptError(f"Toy world {w.name} needs a place: 'a <colour> <texture> <shape> at <place>'.")
        row, col = PLACES[g["place"]] if g["place"] else (1, 1)
        objects.append(SceneObject(g["colour"], g["texture"], g["shape"], g["place"],
                                   (col + 0.5) / 3, (row + 0.5) / 3, w.canonical_radius))
    if len(objects) == 2 and (objects[0].place == objects[1].place or None in (objects[0].place, objects[1].place)):
        raise PromptError("Two objects need two named, different places.")
    return Scene(tuple(objects), ground=ground, ground_named=ground_named, world=w.name)


def window_prompt(prompt: str, world: str | World | None = None) -> str:
    """The prompt a base-size window of ``prompt``'s image is in distribution under: its object without its place
    (the world draws such objects at any size, close-ups larger than the canvas included), the ground kept.

    Prompts of two objects (which need their places) and worlds without free places (v1) come back unchanged.

    Example:
        >>> window_prompt("a red striped circle at top left on tiles", "v2")
        'a red striped circle on tiles'
    """
    scene = parse_prompt(prompt, world)
    if len(scene.objects) != 1 or get_world(world).free_radius is None:
        return scene.prompt
    return Scene((replace(scene.objects[0], place=None),), ground=scene.ground, ground_named=scene.ground_named,
                 world=scene.world).prompt


def random_scene(rng: np.random.Generator, p_two: float = 0.0, world: str | World | None = None) -> Scene:
    """A random scene: jittered objects and a random background (v1: the exact v1 sampler)."""
    w = get_world(world)
    if w.name != "v1":
        return _random_scene_v2(rng, p_two, w)
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


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def _random_scene_v2(rng: np.random.Generator, p_two: float, w: World) -> Scene:
    """Scale from small to close-ups; place and ground named with probability p_place / p_ground."""
    n = 2 if rng.random() < p_two else 1
    named = n == 2 or rng.random() < w.p_place  # two objects are told apart by their places
    places = rng.choice(len(PLACES), size=n, replace=False)
    objects = []
    for p in places:
        colour, texture, shape = (str(rng.choice(list(COLOURS))), str(rng.choice(TEXTURES)), str(rng.choice(SHAPES)))
        if named:
            place = list(PLACES)[int(p)]
            row, col = PLACES[place]
            cx = (col + 0.5) / 3 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER)
            cy = (row + 0.5) / 3 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER)
            radius = _log_uniform(rng, w.placed_radius)
        else:
            place, (cx, cy) = None, rng.uniform(*w.free_centre, size=2)
            radius = _log_uniform(rng, w.free_radius)
        objects.append(SceneObject(colour, texture, shape, place, float(cx), float(cy), radius))
    ground = str(rng.choice(w.grounds))
    return Scene(tuple(objects), background=(_background_colour(rng), _background_colour(rng)),
                 background_angle=float(rng.uniform(0, 2 * math.pi)), ground=ground,
                 ground_named=bool(rng.random() < w.p_ground), world=w.name)


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


def texture_period(texture: str, world: str | World | None = None) -> float:
    """A texture's period in pixels in a world (``striped``: 4 px in both)."""
    return get_world(world).texture_period_px[texture]


def ground_factor(ground: str, x: np.ndarray, y: np.ndarray) -> np.ndarray | float:
    """Brightness factor of a ground's texture in [1 - GROUND_DEPTH, 1] (1 for ``plain``)."""
    if ground == "plain":
        return 1.0
    period = GROUND_PERIOD_PX[ground]
    if ground == "tiles":
        wave = np.cos(2 * math.pi * x / period) * np.cos(2 * math.pi * y / period)
    elif ground == "waves":
        wave = np.cos(2 * math.pi * y / period) + 0 * x
    else:
        raise PromptError(f"Unknown ground {ground!r}")
    return 1.0 - GROUND_DEPTH * (0.5 + 0.5 * wave)


def texture_factor(texture: str, x: np.ndarray, y: np.ndarray, world: str | World | None = None) -> np.ndarray:
    """Brightness factor in [1 - TEXTURE_DEPTH, 1] at pixel coordinates (x, y)."""
    period = texture_period(texture, world)
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
    image = (c0[:, None, None] * (1 - u) + c1[:, None, None] * u) * ground_factor(scene.ground, x, y)
    masks = []
    side = min(height, width)
    for obj in scene.objects:
        r = obj.radius * side
        sd = _signed_distance(obj.shape, x, y, obj.cx * width, obj.cy * height, r)
        alpha = np.clip(0.5 - sd, 0.0, 1.0)  # one-pixel anti-aliased edge
        colour = np.asarray(COLOURS[obj.colour])[:, None, None] * texture_factor(obj.texture, x, y, scene.world)
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


def detect(image: np.ndarray, colour: str, min_area_fraction: float = 0.15,
           world: str | World | None = None) -> Detection:
    """Find connected blobs of ``colour``; a blob counts as an object if its area is at least
    ``min_area_fraction`` of the smallest object the world draws at this canvas size.

    Args:
        image: ``[3, H, W]`` RGB in [0, 1].
    """
    from scipy import ndimage

    _, h, w = image.shape
    mask = ndimage.binary_closing(colour_mask(image, colour), structure=np.ones((3, 3)), iterations=1)
    labels, n = ndimage.label(mask)
    min_area = min_area_fraction * math.pi * (get_world(world).min_radius * min(h, w)) ** 2
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


def prompt_correct(image: np.ndarray, obj: SceneObject, world: str | World | None = None) -> bool:
    """Exactly one object of the prompted colour, with its centre in the prompted cell (anywhere if the
    prompt names no place)."""
    det = detect(image, obj.colour, world=world)
    return det.count == 1 and (obj.cell is None or cell_of(*det.centres[0]) == obj.cell)
