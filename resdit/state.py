"""The per-model context ResDiT's processors and forwards share: config, base grid, the current call's
step, phase, plan and CFG half, a bounded cache of per-resolution tables, the hook points observers
subscribe to, and how to undo every patch.

Nothing here knows about processors, SD3, tiling or the recorder: they read the state and emit to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .config import ResDiTConfig, ResDiTConfigError
from .plan import Plan, build_plan, rope_variant
from .schedule import GLOBAL, LOCAL, phase_at, phase_at_sigma, phase_lengths

STATE_ATTR = "_resdit_state"
MAX_PLANS = 4
#: what processors and forwards emit, in call order (ResDiTState.subscribe)
HOOK_POINTS = ("call", "attention", "branches")


@dataclass
class ResDiTState:
    """What the processors of one model share.

    Attributes:
        config: the :class:`ResDiTConfig`.
        base_grid: training grid ``(h, w)`` in tokens (None: each call's own grid).
        plan / phase: current per-resolution plan and phase, set before every transformer call.
        step_fn: returns ``(step, num_steps)`` for the current call (from the scheduler).
        sigma_fn: returns the scheduler's noise level of the current step.
        call_context: diffusers' ``cache_context`` name of the current call (``"cond"`` / ``"uncond"``).
        observer: installed only to observe an untouched model (:func:`resdit.record`).
    """

    config: ResDiTConfig
    base_grid: tuple[int, int] | None
    transformer: torch.nn.Module
    pipeline: object | None = None
    step_fn: Callable[[], tuple[int, int]] | None = None
    sigma_fn: Callable[[], float | None] | None = None  # the scheduler's noise level of the current step
    sigma_boundaries: tuple[float, float] | None = None  # phase_by="sigma": see schedule.phase_at_sigma
    plan: Plan | None = None
    phase: str = GLOBAL
    step: int | None = None
    num_steps: int | None = None
    observer: bool = False
    call_context: str | None = None  # diffusers' cache_context name of the current call ("cond" / "uncond")
    pe_override: torch.Tensor | None = None  # SD3: the PE table the next PatchEmbed call returns
    sd3_pass: tuple | None = None  # SD3: the branch pass running now, ("global",) or ("local", first, windows)
    local_text: tuple | None = None  # the local-only phase's (text states, pooled vector) (resdit.local_prompt)
    _plans: dict = field(default_factory=dict)
    _call_plan: tuple | None = None
    _undo: list = field(default_factory=list)
    _listeners: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ hook points
    def subscribe(self, point: str, listener: Callable) -> Callable[[], None]:
        """Call ``listener(*payload)`` whenever the point is emitted; returns the function that unsubscribes.

        Points (see :data:`HOOK_POINTS`): ``"call"`` (once per transformer call, after the phase and plan are
        set: ``(state)``), ``"attention"`` (each attention layer: ``(name, query, key, plan, phase, ran)``: q and k before
        RoPE, and ``ran["global"]``: the roped q, k, v, scale, key bias, token grid and block size the global branch
        attended with, pooled blocks included)
        and ``"branches"`` (each attention layer: ``(name, plan, windows)``, image windows of each branch).
        """
        if point not in HOOK_POINTS:
            raise ValueError(f"Unknown hook point {point!r}; choose among {HOOK_POINTS}.")
        self._listeners.setdefault(point, []).append(listener)
        return lambda: self._listeners[point].remove(listener)

    def listening(self, point: str) -> bool:
        return bool(self._listeners.get(point))

    def listeners(self, point: str) -> tuple:
        """The listeners subscribed to a hook point (a copy)."""
        return tuple(self._listeners.get(point, ()))

    # ------------------------------------------------------------------ undo
    def on_undo(self, undo: Callable[[], None]) -> None:
        """Remember how to reverse one change ResDiT made to a model (run last-in first-out by :meth:`undo_all`)."""
        self._undo.append(undo)

    def undo_all(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def emit(self, point: str, *payload) -> None:
        for listener in list(self._listeners.get(point, ())):
            listener(*payload)

    def __repr__(self):
        return (f"ResDiTState(mode={self.config.mode!r}, base_grid={self.base_grid}, "
                f"grid={None if self.plan is None else self.plan.grid}, phase={self.phase!r}, step={self.step})")

    def prepare(self, img_ids: torch.Tensor, txt_ids: torch.Tensor, image_tokens: int, device,
                sigma: float | None = None, positions=None) -> None:
        """Set ``phase`` and ``plan`` for one transformer call (``sigma``: its noise level; ``positions``: the
        family's rotary tables, default the model's ``pos_embed`` on FLUX-layout ids)."""
        grid = grid_from_ids(img_ids, image_tokens)
        self.phase = self._phase(sigma)
        progress = None if self.step is None else self.step / max(self.num_steps, 1)
        variant = rope_variant(self.config, progress, sigma)
        t = self.transformer
        txt = txt_ids[0] if txt_ids.ndim == 3 else txt_ids  # FLUX.2 passes [B, T, 4]; every row the same
        head_dim = getattr(t.config, "attention_head_dim", None) or t.config.dim // t.config.n_heads  # Z-Image

        def build(text):
            return build_plan(self.config, positions or t.pos_embed, grid, self.base_grid or grid, text, head_dim,
                              device, variant)

        self._call_plan = (("plan", grid, str(device), variant), build)
        self.plan = self.cached(("plan", grid, tuple(txt.shape), str(device), variant), lambda: build(txt))

    def plan_for_text(self, text_len: int):
        """This call's plan for a sequence with ``text_len`` other tokens before the image (zero text ids; a family
        whose layers see different sequences, Z-Image's image refiner and joint layers)."""
        (_, grid, device, variant), build = self._call_plan
        txt = torch.zeros(text_len, 3, device=device)
        return self.cached(("plan", grid, tuple(txt.shape), device, variant), lambda: build(txt))

    def begin_call(self, key, build: Callable[[], object], sigma: float | None = None):
        """Set ``phase`` and ``plan`` for one call of a family that builds its own plan (SD3's whole-model branches):
        ``build()`` once per ``key``. Returns the plan."""
        self.phase = self._phase(sigma)
        self.plan = self.cached(key, build)
        return self.plan

    def cached(self, key, build: Callable[[], object]):
        """``build()`` once per key: per-resolution tensors shared by every layer and step (the oldest of
        more than ``MAX_PLANS`` entries is dropped)."""
        value = self._plans.get(key)
        if value is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.pop(next(iter(self._plans)))
            value = self._plans[key] = build()
        return value

    def _phase(self, call_sigma: float | None = None) -> str:
        """The phase of the current call; ``call_sigma``: the noise level the call was given (used by
        ``phase_by="sigma"`` when no scheduler tells it)."""
        if self.step_fn is not None:
            self.step, self.num_steps = self.step_fn()
        schedule = self.config.spec.schedule
        if schedule == "global":
            return GLOBAL
        if schedule == "local":
            return LOCAL
        if self.config.phase_by == "sigma":
            sigma = self.sigma_fn() if self.sigma_fn is not None else call_sigma
            if sigma is None or self.sigma_boundaries is None:
                raise ResDiTConfigError(
                    "phase_by='sigma' needs the noise level of each call and the base size's schedule: apply ResDiT "
                    "to the pipeline (or pass scheduler= with base_grid to apply_resdit)."
                )
            return phase_at_sigma(sigma, self.sigma_boundaries)
        if self.step_fn is None:
            raise ResDiTConfigError(
                f"Mode {self.config.mode!r} follows the denoising steps, but this transformer has no scheduler. "
                "Pass scheduler= to apply_resdit, apply it to the pipeline, or call resdit.set_step(model, i, T)."
            )
        c = self.config
        phase_lengths(self.num_steps, c.global_steps, c.local_steps, c.local_fraction)  # clear error first
        return phase_at(self.step, self.num_steps, c.global_steps, c.local_steps, c.local_fraction)


def grid_from_ids(img_ids: torch.Tensor, image_tokens: int) -> tuple[int, int]:
    """The ``(H, W)`` token grid of row-major ids ``[H*W, n]`` (or ``[B, H*W, n]``) whose columns 1 and 2 are row and
    column (FLUX.1 and Chroma: ``(0, row, col)``; FLUX.2: ``(t, row, col, layer)``).

    Raises:
        ResDiTConfigError: if the ids are not an integer row-major grid of ``image_tokens``
            tokens (e.g. bf16 ids above 256, which collide; FLUX.2's reference-image tokens).
    """
    ids = (img_ids[0] if img_ids.ndim == 3 else img_ids).float()
    rows, cols = ids[:, 1], ids[:, 2]
    H, W = int(rows.max().round()) + 1, int(cols.max().round()) + 1
    ok = H * W == image_tokens == ids.shape[0]
    if ok:
        r = torch.arange(H, device=ids.device).repeat_interleave(W)
        c = torch.arange(W, device=ids.device).repeat(H)
        ok = bool((rows == r).all() and (cols == c).all())
    if not ok:
        raise ResDiTConfigError(
            f"img_ids do not form an integer row-major grid of {image_tokens} tokens. ResDiT reads the token grid "
            "from them; build them in float32 (bf16 is exact only up to 256) or apply ResDiT to the pipeline, "
            "which does that for you. Image tokens of other images (FLUX.2's reference images) are not supported."
        )
    return H, W


def patch_attr(state: ResDiTState, obj, name: str, value) -> None:
    """Shadow ``obj.name`` on the instance; remember how to undo it exactly."""
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, value)
    state.on_undo(lambda: setattr(obj, name, old) if had else delattr(obj, name))
