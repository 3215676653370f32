"""What a model family must say, and the registry of families."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_REGISTRY: dict[str, "Family"] = {}


@dataclass(frozen=True)
class Family:
    """One model family.

    Attributes:
        name: short name (``"flux"``, ``"chroma"``, ``"sd3"``), used in errors and ``peek``.
        label: how people write it (``"FLUX.1"``).
        transformers: class names in ``diffusers`` of its denoising transformers.
        controlnets: class names of its ControlNet models (installed with the transformer's positions and phases).
        pipelines: prefixes of the pipelines' ``_class_name`` in ``model_index.json``.
        install: ``install(state, controlnet)`` puts ResDiT on ``state.transformer`` (processors, pre-hooks,
            forward wrappers), each change registered for undo with the state.
        patch: latent pixels per token side from the transformer's config dict (FLUX packs 2x2 latents: 2).
        base_size: the training size in pixels from a pipeline (None: the family's published size).
        default_base: the published training size in pixels.
        takes: ``takes(spec)``: whether the family can run a :class:`~resdit.config.ModeSpec`.
        why_not: the reason given when a mode is refused.
        record_points: what :func:`resdit.record` can read from it (its processors emit them; empty: not recordable).
        img2img: class name in ``diffusers`` of the family's image-to-image pipeline (two-stage's second pass).
        base_mu: ``base_mu(scheduler, base_grid, num_steps)``: the scheduler shift its pipelines use at the base
            size, where it is not FLUX.1's linear rule in the token count (None: that rule).
    """

    name: str
    label: str
    transformers: tuple[str, ...]
    install: Callable
    controlnets: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ()
    patch: Callable[[dict], int] = lambda config: 2
    base_size: Callable | None = None
    default_base: tuple[int, int] = (1024, 1024)
    takes: Callable = lambda spec: True
    why_not: str = ""
    record_points: tuple[str, ...] = ("probs", "entropy", "distance", "rope_ids", "spectrum", "bands")
    img2img: str | None = None
    base_mu: Callable | None = None

    def classes(self) -> dict[type, bool]:
        """``{class: is_controlnet}`` of the classes this diffusers install has."""
        import diffusers

        found = {}
        for names, is_net in ((self.transformers, False), (self.controlnets, True)):
            for name in names:
                cls = getattr(diffusers, name, None)
                if cls is not None:
                    found[cls] = is_net
        return found

    def modes(self) -> list[str]:
        from ..config import MODES

        return [m for m, spec in MODES.items() if self.takes(spec)]

    def check_mode(self, mode: str) -> None:
        from ..config import MODES, ResDiTConfigError

        if mode in MODES and not self.takes(MODES[mode]):
            raise ResDiTConfigError(
                f"Mode {mode!r} does not apply to {self.label}: {self.why_not} {self.label} modes: "
                f"{', '.join(self.modes())}."
            )

    def check_img2img(self) -> type:
        """The family's image-to-image pipeline class, or a clear error (two-stage's second pass needs one)."""
        import diffusers

        from ..config import ResDiTConfigError

        cls = getattr(diffusers, self.img2img or "", None)
        if cls is None:
            raise ResDiTConfigError(f"Two-stage needs an image-to-image pipeline, which diffusers has not for "
                                    f"{self.label}; use a single-stage mode (or upscale).")
        return cls

    def img2img_pipeline(self, pipe):
        """The family's image-to-image pipeline sharing ``pipe``'s modules (``from_pipe``)."""
        return self.check_img2img().from_pipe(pipe)

    def pipeline_base_size(self, pipe) -> tuple[int, int]:
        return tuple(self.base_size(pipe)) if self.base_size is not None else self.default_base


def register(family: Family) -> Family:
    _REGISTRY[family.name] = family
    return family


def by_name(name: str) -> Family:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"Unknown model family {name!r}; known: {', '.join(_REGISTRY)}.") from None


def supported_classes() -> dict[type, tuple[Family, bool]]:
    """``{class: (family, is_controlnet)}`` over every registered family."""
    table = {}
    for fam in _REGISTRY.values():
        for cls, is_net in fam.classes().items():
            table[cls] = (fam, is_net)
    return table


def family_of(model) -> tuple[Family, bool]:
    """``(family, is_controlnet)`` of a transformer or ControlNet; TypeError naming what is supported otherwise."""
    table = supported_classes()
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper
    found = table.get(type(model))
    if found is None:
        names = ", ".join(sorted(c.__name__ for c in table))
        raise TypeError(
            f"ResDiT does not support {type(model).__name__}; supported models: {names}. Pass a pipeline of one of "
            "these families (any pipeline with such a .transformer) or the transformer itself."
        )
    return found


def pipeline_family(class_name: str) -> Family | None:
    """The family of a pipeline's ``_class_name`` (longest matching prefix: ``Flux2...`` is not ``Flux...``)."""
    best, length = None, -1
    for fam in _REGISTRY.values():
        for prefix in fam.pipelines:
            if class_name.startswith(prefix) and len(prefix) > length:
                best, length = fam, len(prefix)
    return best
