"""ResDiT configuration: one dataclass, one name per mode, validated before any work.

Each mode is a point in a small design space (:class:`ModeSpec`): which position indices
the global branch uses, whether and how a local branch runs, how the two are fused, and
over which steps. The paper's method and every ablation of its Figure 6, plus the
intervention conditions of its Figure 2, are rows of :data:`MODES`.

Example:
    >>> cfg = ResDiTConfig(base_size=(1024, 1024), mode="resdit")
    >>> cfg.spec.fusion
    'spectral'
"""

from __future__ import annotations

import math
import warnings
import numbers
from dataclasses import InitVar, dataclass


#: ``window_overlap``'s rule for a share of the window: neighbours overlap by a quarter of the window on each axis
#: (at least 1 token), ``mode="resdit"``'s default (docs/decisions.md, "A least window overlap")
QUARTER = "quarter"


@dataclass(frozen=True)
class ModeSpec:
    """What a mode does.

    Attributes:
        global_ids: index grid of the global branch: ``"extrapolate"`` (plain integers),
            ``"scaled"`` (PES, indices scaled back to the base grid) or ``"patch"`` (every token
            gets its index inside the nearest window).
        local_ids: index grid of the local branch: ``"window"`` (PIPE: every window its own
            ``0..h-1``), ``"global"`` (the global branch's indices, cut per window) or None
            (no local branch).
        windows: ``"mop"`` (minimum-overlap partition) or ``"grid"`` (hard, non-overlapping).
        weights: ``"gaussian"`` (GWS) or ``"uniform"`` splice weights.
        fusion: ``"spectral"`` (PSF) or ``"average"`` (spatial mean) in the fused phase.
        schedule: ``"global"`` (global branch every step), ``"local"`` (local branch every
            step) or ``"phased"`` (global, fused, then local, SPEC 1).
        patched: False only for ``direct``, which leaves the model untouched.
        rope: RoPE frequencies of the global branch: ``"base"`` (FLUX's own), ``"ntk"`` (I-Max's
            NTK-aware theta scaling, clipped by interpolation), ``"time_aware"`` (Lumina-Next:
            interpolation before the watershed, NTK after) or ``"dype"`` (NTK whose scale decays
            with the noise level as ``t^2``).
        proportional: the mode's proportional attention: ``"on"`` or ``"off"`` when the config leaves
            ``proportional_attention`` unset (on for ``resdit``, ``resdit_fast`` and ``time_aware``: the v2 study at
            2x, 0.75 -> 0.97 correct when fusing to the end; off for the paper's method, its ablations and the
            intervention conditions, which must mean exactly their names), or ``"always"`` (I-Max's ``ntk``,
            whatever the config says). Read once, as :attr:`ResDiTConfig.uses_proportional_attention`.
        local_fraction: the local-only phase's share of the steps when ``local_steps`` is not given
            (the paper: 15 of 35; 0 fuses to the last step).
        global_pool: the fused phase's global branch runs on ``p x p``-pooled queries, keys and values and
            its output is upsampled (1: full resolution). PSF keeps only its frequencies up to the cutoff
            (0.1 cycles per token at 0.2), below the pooled grid's Nyquist limit for ``p <= 5``.
        global_tokens: ``"full"`` (the global branch attends over every image token) or ``"base"`` (it runs on
            blocks of ``ceil(H/h) x ceil(W/w)`` tokens, so it attends over at most the base size's token count:
            :func:`resdit.plan.base_token_factors`).
        window_align: the local windows start on multiples of this many tokens (MOP layout;
            :func:`resdit.geometry.window_starts`): 2 for ``resdit`` and ``resdit_fast`` (at 3x the toy study's
            stripes, two tokens a period, came out in opposite phases in windows 11 tokens apart and the splice
            cancelled them), 1 (MOP as specified) elsewhere.
        window_overlap: the local windows' least overlap (:func:`resdit.geometry.window_starts`): ``"quarter"`` of
            the window for ``resdit`` (at 6x to 8x the toy's minimum-overlap windows share 2 tokens and leave specks
            of the object's colour along its edge), 1 (MOP as specified) elsewhere.
        tiled: run the whole transformer on base-size tiles (MultiDiffusion) instead of
            changing attention.
        two_pass: a pipeline-level baseline run by :func:`resdit.generate` (``"two_stage"`` or
            ``"upscale"``); :func:`resdit.apply_resdit` refuses it.
    """

    global_ids: str = "scaled"
    local_ids: str | None = "window"
    windows: str = "mop"
    weights: str = "gaussian"
    fusion: str = "spectral"
    schedule: str = "phased"
    patched: bool = True
    rope: str = "base"
    proportional: str = "off"
    global_pool: int = 1
    global_tokens: str = "full"
    local_fraction: float = 15 / 35
    window_align: int = 1
    window_overlap: int | str = 1
    tiled: bool = False
    two_pass: str | None = None

    @property
    def overlapping_windows(self) -> bool:
        """Whether the mode runs minimum-overlap windows (a local branch) or tiles, which ``window_align`` and
        ``window_overlap`` lay out (not the hard grid of ``resdit_no_mop_gws``)."""
        return (self.local_ids is not None or self.tiled) and self.windows == "mop"

    @property
    def sd3(self) -> bool:
        """Whether the mode means something for SD3, whose only position signal is an additive sin-cos
        table: not for RoPE-frequency modes or per-patch indices inside global attention."""
        return self.rope == "base" and self.global_ids != "patch" and self.global_pool == 1


MODES: dict[str, ModeSpec] = {
    # Intervention conditions (paper Fig. 2).
    "direct": ModeSpec(global_ids="extrapolate", local_ids=None, schedule="global", patched=False),
    "extrapolate": ModeSpec(global_ids="extrapolate", local_ids=None, schedule="global"),
    "scaled_pe": ModeSpec(global_ids="scaled", local_ids=None, schedule="global"),
    "patch_pe": ModeSpec(global_ids="patch", local_ids=None, schedule="global"),
    "patch_pe_local": ModeSpec(local_ids="window", schedule="local"),
    # The method with the defaults the toy study supports (docs/decisions.md): the global branch at the training
    # token count (blocks of ceil(H/h) x ceil(W/w) tokens in every phase, FFT upsampling), proportional attention
    # and fusion to the last step (no local-only phase). SD3, whose global branch is the whole model, keeps it full.
    # The local windows start on even tokens (window_align=2).
    "resdit": ModeSpec(proportional="on", local_fraction=0.0, global_tokens="base", window_align=2,
                       window_overlap="quarter"),
    # The v2 study's fast variant: the full-size global branch pooled 2x2 in the fused phase. Superseded from 3x on
    # (the defaults above are faster and keep the layout: docs/decisions.md, "Fast ResDiT"); kept so that study's
    # condition keeps its meaning.
    "resdit_fast": ModeSpec(proportional="on", local_fraction=0.0, global_pool=2, window_align=2),
    # The paper's method as specified: 10 global / 10 fused / 15 local steps of 35, no attention scaling.
    "resdit_paper": ModeSpec(),
    # Ablations (paper Fig. 6): one factor each against the paper's method.
    "resdit_no_pes": ModeSpec(global_ids="extrapolate"),
    "resdit_no_pipe": ModeSpec(local_ids="global"),
    "resdit_no_psf": ModeSpec(fusion="average"),
    "resdit_no_mop_gws": ModeSpec(windows="grid", weights="uniform"),
    "resdit_mop_only": ModeSpec(weights="uniform"),
    # Baselines: RoPE frequency scaling, global attention only. (Position interpolation is scaled_pe.)
    "ntk": ModeSpec(global_ids="extrapolate", local_ids=None, schedule="global", rope="ntk", proportional="always"),
    "time_aware": ModeSpec(local_ids=None, schedule="global", rope="time_aware", proportional="on"),
    "dype": ModeSpec(global_ids="extrapolate", local_ids=None, schedule="global", rope="dype"),
    # Baselines: tiling and two passes.
    "tiling": ModeSpec(local_ids=None, schedule="global", weights="uniform", tiled=True, patched=False),
    "tiling_gaussian": ModeSpec(local_ids=None, schedule="global", tiled=True, patched=False),
    "two_stage": ModeSpec(local_ids=None, schedule="global", patched=False, two_pass="two_stage"),
    "upscale": ModeSpec(local_ids=None, schedule="global", patched=False, two_pass="upscale"),
}

# SPEC 1: of 35 steps, the first 10 global only and the last 15 local only.
REFERENCE_STEPS = 35
#: the narrowest splice (window units): at 0.01 the farther window's weight one token past the midpoint of two
#: windows of >= 8 tokens is below exp(-600), a hard nearest-centre cut, so narrower widths give the same splice
SIGMA_MIN = 0.01
DEFAULT_GLOBAL_FRACTION = 10 / REFERENCE_STEPS
DEFAULT_LOCAL_FRACTION = 15 / REFERENCE_STEPS


class ResDiTConfigError(ValueError):
    """A configuration or request ResDiT cannot run; the message says what to change."""


def check_size(height, width, px: int) -> tuple[int, int]:
    """A requested size in pixels as a token grid; ResDiTConfigError for a size no model can take."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < px:
            raise ResDiTConfigError(f"{name}={value!r} must be a whole number (int) of pixels >= {px} (one token).")
        if value % px:
            lower, upper = value - value % px, value - value % px + px
            raise ResDiTConfigError(
                f"{name}={value} is not divisible by {px} pixels per token (the model's patch size); "
                f"use {lower} or {upper}."
            )
    return int(height) // px, int(width) // px


def modes_for(family: str) -> list[str]:
    """The modes a model family supports (``"sd3"``: those whose ``ModeSpec.sd3``; the RoPE families: all).
    :meth:`resdit.families.Family.check_mode` is the check for any family."""
    return [m for m, spec in MODES.items() if family != "sd3" or spec.sd3]


def check_mode_for(family: str, mode: str) -> None:
    if mode not in modes_for(family):
        raise ResDiTConfigError(
            f"Mode {mode!r} does not apply to {family.upper()}: it changes RoPE frequencies or per-patch indices "
            f"inside global attention, and SD3's only position signal is a sin-cos table added at the input. "
            f"{family.upper()} modes: {', '.join(modes_for(family))}."
        )


@dataclass
class ResDiTConfig:
    """How to run a FLUX-family transformer beyond its training resolution.

    Args:
        base_size: the model's training size ``(height, width)`` in pixels (1024x1024 for
            FLUX.1). For a bare transformer pass ``base_grid`` to :func:`resdit.apply_resdit`.
        mode: one of :data:`MODES`.
        cutoff: PSF's normalised radial frequency cutoff, in ``[0, sqrt(2)]``; the global
            branch keeps frequencies with ``rho <= cutoff``. ``sqrt(2)`` keeps all of them.
        splice_width: Gaussian splice width (GWS's sigma) in window units (per axis: ``splice_width * window
            side``). ``sigma=`` is its deprecated alias: ``sigma`` means the noise level everywhere else.
        global_steps / local_steps: phase lengths in steps; None keeps the paper's
            fractions 10/35 and 15/35 of the step count, rounded. With ``phase_by="sigma"`` they
            count steps of the paper's 35-step schedule at the base size (None: 10 and 15).
        phase_by: ``"steps"`` (phases are step counts, the paper's fractions for other step counts)
            or ``"sigma"`` (phases switch at the noise levels that steps 10 and 20 of the paper's 35
            have on the base size's schedule, so a phase means the same noise range whatever the
            step count or the shift).
        proportional_attention: multiply the global branch's logits by
            ``sqrt(log N / log n)`` (N, n: image tokens now and at base), as I-Max and
            Lumina-Next do, against attention dilution at high resolution. None (default): the
            mode's own default (``ModeSpec.proportional``: on for ``resdit``, ``resdit_fast``
            and ``time_aware``, off elsewhere, so ``resdit_paper``, its ablations, ``extrapolate`` and
            ``scaled_pe`` mean exactly their names). It is the identity at or below the base size.
        mu: the scheduler shift (``mu``) of a pipeline whose scheduler shifts by resolution (FLUX's
            grows linearly and unclamped with the token count: every sigma but the last is ~1 at
            4096^2). ``"base"``: the shift the pipeline uses at the base size, as every training-free
            FLUX method does (DyPE, HiFlow, I-Max); ``"pipeline"``: the pipeline's own rule; a number.
            None (default): ``"pipeline"`` for ``direct`` (the untouched model), ``"base"`` otherwise.
        window_chunk: at most this many windows per local-branch call (memory bound); None = all;
            ``"auto"``: as many as fit in half the memory free at the call (:mod:`resdit.memory`).
        vae_tiling: decode with the VAE's own tiling: ``"auto"`` above ``vae_tiling_above`` pixels
            (FLUX's VAE needs tens of GB to decode 4096^2 in one piece), True or False always.
        global_pool: pooling factor of the fused phase's global branch (None: the mode's own,
            ``ModeSpec.global_pool``: 2 for ``resdit_fast``, 1 elsewhere).
        global_tokens: ``"full"`` or ``"base"``: the global branch at the training token count, on blocks of
            ``ceil(H/h) x ceil(W/w)`` tokens (mean q, k, v; RoPE at the blocks' mean scaled positions), its output
            upsampled (None: the mode's own, ``ModeSpec.global_tokens``). Phased ResDiT modes only; the identity at
            or below the base size.
        pool_phases: where a pooled global branch runs: ``"all"`` (global-only and fused phases) or ``"fused"``
            (None: ``"all"`` with ``global_tokens="base"``, ``"fused"`` with ``global_pool``).
        key_bias: add ``log(tokens in the block)`` to each block key's logits, so a block carries the attention
            mass of the tokens it stands for (None: on with ``global_pool``, off with ``global_tokens="base"``).
        upsampler: how pooled outputs return to the token grid: ``"bilinear"`` or ``"fft"`` (band-limited: zero-
            padded spectrum with the block mean's response divided out, exact for a periodic field below the pooled
            grid's Nyquist limit). None: ``"fft"`` with ``global_tokens="base"``, ``"bilinear"`` with ``global_pool``.
        window_align: the local windows (MOP) start on multiples of this many tokens, so that where two overlap
            their origins differ by a multiple of it (None: the mode's own, ``ModeSpec.window_align``: 2 for
            ``resdit`` and ``resdit_fast``, 1 elsewhere). A model that draws a texture in phase with its canvas'
            edge draws it in phase with each window's edge; windows an odd number of tokens apart then draw a
            two-token texture in opposite phases and the splice cancels it (docs/decisions.md). It costs no
            window at 2x, 3x, 4x or 8x; at most one more per axis where the minimum-overlap stride is odd.
        window_overlap: the local windows (MOP; tiling's tiles) overlap their neighbours by at least this many tokens,
            or ``"quarter"``: by a quarter of the window on each axis (:func:`resdit.geometry.window_starts`; None: the
            mode's own, ``ModeSpec.window_overlap``: ``"quarter"`` for ``resdit``, 1 elsewhere, the minimum-overlap
            partition as specified). A splice crossfades over the overlap; at 6x to 8x of a 16-token window MOP's
            neighbours share only 2 tokens, nearly a cut, and the windows' disagreement along an object's edge is
            left as specks of its colour; a quarter of the window takes most of them away at the cost of more
            windows (11 a side instead of 9 at 8x on the toy, 1.15x the time; docs/decisions.md). It changes no
            window at 2x, 3x or 4x. Refused where a mode has no overlapping windows.
        splice: the splice weights of the local windows (GWS; tiling's tiles): ``"gaussian"`` (the paper's, a Gaussian of
            ``splice_width`` truncated by the window, so a window's weight steps at its edge), ``"uniform"``, or
            ``"feather"`` (1 inside, a raised-cosine crossfade over each overlap: no step at any window border).
            None: the mode's own (``ModeSpec.weights``). Feathering removes the seams a local-only phase leaves
            on the window borders (docs/decisions.md).
        nyquist_cutoff: with a pooled global branch whose blocks cannot hold the frequencies up to ``cutoff``
            (``ph`` or ``pw`` above ``1 / cutoff``: 8x8 blocks at 8x, with the paper's 0.2), lower PSF's cutoff in
            the fused phase to the blocks' Nyquist limit ``rho = 1 / max(ph, pw)``, so that the local branch draws
            the band the blocks do not have (otherwise neither branch does). None: off.
        ntk_factor: theta multiplier of the ``ntk`` and ``time_aware`` modes (I-Max: 10).
        watershed: fraction of the steps after which ``time_aware`` switches from
            interpolation to NTK (Lumina-Next: 0.3).
        strength: ``two_stage``'s re-noising strength: the second pass starts at step
            ``T * (1 - strength)`` of ``T`` (SDEdit).
    """

    base_size: tuple[int, int] | None = None
    mode: str = "resdit"
    cutoff: float = 0.2
    splice_width: float = 0.5
    sigma: InitVar[float | None] = None  # deprecated alias of splice_width (one release)
    global_steps: int | None = None
    local_steps: int | None = None
    phase_by: str = "steps"
    proportional_attention: bool | None = None
    mu: float | str | None = None
    window_chunk: int | str | None = None
    global_pool: int | None = None
    global_tokens: str | None = None
    pool_phases: str | None = None
    key_bias: bool | None = None
    upsampler: str | None = None
    nyquist_cutoff: bool | None = None
    window_align: int | None = None
    window_overlap: int | str | None = None
    splice: str | None = None
    vae_tiling: bool | str = "auto"
    vae_tiling_above: int = 2048 * 2048
    ntk_factor: float = 10.0
    watershed: float = 0.3
    strength: float = 0.6

    def __post_init__(self, sigma=None):
        if sigma is not None:
            warnings.warn("ResDiTConfig(sigma=...) is the Gaussian splice width, now named splice_width (sigma means "
                          "the noise level everywhere else); the alias goes in the next release.", FutureWarning,
                          stacklevel=3)
            self.splice_width = sigma
        if not isinstance(self.mode, str) or self.mode not in MODES:
            raise ResDiTConfigError(f"Unknown mode {self.mode!r}; choose one of {sorted(MODES)}.")
        for name in ("cutoff", "splice_width", "watershed", "strength", "ntk_factor", "mu", "vae_tiling_above"):
            value = getattr(self, name)
            if name == "mu" and (value is None or isinstance(value, str)):
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ResDiTConfigError(f"{name}={value!r} must be a number (got {type(value).__name__}).")
            if not math.isfinite(value):
                raise ResDiTConfigError(f"{name}={value} is not a finite number.")
        for name in ("proportional_attention", "key_bias", "nyquist_cutoff"):
            if not any(getattr(self, name) is v for v in (None, True, False)):
                raise ResDiTConfigError(f"{name}={getattr(self, name)!r}: use True, False or None (the mode's own).")
        if not (0.0 <= self.cutoff <= math.sqrt(2) + 1e-12):
            raise ResDiTConfigError(
                f"cutoff={self.cutoff} is outside [0, sqrt(2)]: it is a normalised radial frequency "
                "(0 keeps no global frequency, sqrt(2) keeps all of them; the paper uses 0.2)."
            )
        if not self.splice_width >= SIGMA_MIN:
            raise ResDiTConfigError(
                f"splice_width={self.splice_width} is below {SIGMA_MIN} window units: the splice is already a hard cut "
                f"at the nearest window centre there (default 0.5); use splice_width={SIGMA_MIN} for it.")
        for name in ("global_steps", "local_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value != int(value) or value < 0):
                raise ResDiTConfigError(f"{name}={value} must be a whole number of steps >= 0.")
        if self.phase_by not in ("steps", "sigma"):
            raise ResDiTConfigError(f"phase_by={self.phase_by!r}: use 'steps' or 'sigma'.")
        if self.phase_by == "sigma" and (self.global_steps or 0) + (self.local_steps or 0) > REFERENCE_STEPS:
            raise ResDiTConfigError(
                f"With phase_by='sigma', global_steps and local_steps count steps of the paper's {REFERENCE_STEPS}-step "
                f"schedule: together at most {REFERENCE_STEPS}.")
        if not 0.0 <= self.watershed <= 1.0:
            raise ResDiTConfigError(f"watershed={self.watershed} must lie in [0, 1] (a fraction of the steps).")
        if isinstance(self.mu, str) and self.mu not in ("base", "pipeline"):
            raise ResDiTConfigError(f"mu={self.mu!r}: use 'base' (the base size's shift), 'pipeline' or a number.")
        if not 0.0 < self.strength <= 1.0:
            raise ResDiTConfigError(f"strength={self.strength} must lie in (0, 1].")
        if self.ntk_factor < 1.0:
            raise ResDiTConfigError(f"ntk_factor={self.ntk_factor} must be >= 1.")
        if self.window_chunk is not None and self.window_chunk != "auto" and (
                isinstance(self.window_chunk, str) or self.window_chunk < 1):
            raise ResDiTConfigError(f"window_chunk={self.window_chunk!r} must be >= 1, 'auto' or None.")
        if self.global_pool is not None and (isinstance(self.global_pool, bool) or not isinstance(self.global_pool, int)
                                             or self.global_pool < 1):
            raise ResDiTConfigError(f"global_pool={self.global_pool!r} must be a whole number >= 1 (1: no pooling).")
        if self.window_align is not None and (isinstance(self.window_align, bool)
                                              or not isinstance(self.window_align, numbers.Integral)
                                              or self.window_align < 1):
            raise ResDiTConfigError(f"window_align={self.window_align!r} must be a whole number of tokens >= 1 (1: the "
                                    "minimum-overlap starts as specified; None: the mode's own).")
        if self.window_overlap is not None:
            if self.window_overlap != QUARTER and (
                    isinstance(self.window_overlap, bool) or not isinstance(self.window_overlap, numbers.Integral)
                    or self.window_overlap < 1):
                raise ResDiTConfigError(f"window_overlap={self.window_overlap!r} must be a whole number of tokens >= 1 "
                                        f"or {QUARTER!r} (a quarter of the window; 1: the minimum-overlap partition "
                                        "as specified; None: the mode's own).")
            if not self.spec.overlapping_windows:
                raise ResDiTConfigError(
                    f"window_overlap={self.window_overlap!r} sets how far overlapping windows or tiles overlap, and mode "
                    f"{self.mode!r} has none; use it with resdit, resdit_fast, resdit_paper, an ablation with "
                    "minimum-overlap windows or tiling (or leave window_overlap unset).")
        if self.splice not in (None, "gaussian", "uniform", "feather"):
            raise ResDiTConfigError(f"splice={self.splice!r}: use 'gaussian' (GWS), 'uniform' or 'feather'.")
        if self.splice is not None and self.spec.local_ids is None and not self.spec.tiled:
            raise ResDiTConfigError(
                f"splice={self.splice!r} weighs local windows or tiles, and mode {self.mode!r} has neither; use it "
                "with resdit, resdit_fast, resdit_paper, an ablation or tiling (or leave splice unset).")
        if self.global_tokens not in (None, "full", "base"):
            raise ResDiTConfigError(f"global_tokens={self.global_tokens!r}: use 'full' or 'base'.")
        if self.pool_phases not in (None, "all", "fused"):
            raise ResDiTConfigError(f"pool_phases={self.pool_phases!r}: use 'all' or 'fused'.")
        if self.upsampler not in (None, "bilinear", "fft"):
            raise ResDiTConfigError(f"upsampler={self.upsampler!r}: use 'bilinear' or 'fft'.")
        if self.tokens == "base":
            if self.spec.schedule != "phased" or not self.spec.patched:
                raise ResDiTConfigError(
                    f"global_tokens='base' runs ResDiT's global branch at the training token count; mode "
                    f"{self.mode!r} has no phased global branch. Use it with resdit, resdit_paper or an ablation.")
            if self.global_tokens == "base" and self.global_pool not in (None, 1):
                raise ResDiTConfigError(
                    f"global_pool={self.global_pool} and global_tokens='base' both set the global branch's pooling; "
                    "choose one (global_tokens='base' picks the factor from the size).")
        if self.vae_tiling not in (True, False, "auto"):
            raise ResDiTConfigError(f"vae_tiling={self.vae_tiling!r}: use 'auto', True or False.")
        if self.base_size is not None:
            size = self.base_size
            if (isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2
                    or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0 for v in size)):
                raise ResDiTConfigError(
                    f"base_size={size!r} must be (height, width): two whole numbers of pixels > 0, e.g. (1024, 1024).")
            self.base_size = (int(size[0]), int(size[1]))

    @property
    def spec(self) -> ModeSpec:
        return MODES[self.mode]

    @property
    def uses_proportional_attention(self) -> bool:
        rule = self.spec.proportional
        if rule == "always" or self.proportional_attention is None:
            return rule != "off"
        return self.proportional_attention

    @property
    def local_fraction(self) -> float:
        """The local-only phase's share of the steps when ``local_steps`` is None (the mode's own)."""
        return self.spec.local_fraction

    @property
    def pool(self) -> int:
        """The fused phase's global pooling factor this config runs."""
        return self.spec.global_pool if self.global_pool is None else self.global_pool

    @property
    def align(self) -> int:
        """The local windows' start alignment (tokens) this config runs."""
        return self.spec.window_align if self.window_align is None else int(self.window_align)

    @property
    def overlap(self) -> int | str:
        """The least overlap of neighbouring local windows this config runs: tokens, or ``"quarter"`` of the window
        (resolved per axis by :func:`resdit.geometry.least_overlap`)."""
        rule = self.spec.window_overlap if self.window_overlap is None else self.window_overlap
        return rule if rule == QUARTER else int(rule)

    @property
    def weighting(self) -> str:
        """The local windows' splice weights this config runs (:meth:`resdit.geometry.WindowPartition.build`)."""
        return self.spec.weights if self.splice is None else self.splice

    @property
    def tokens(self) -> str:
        """The global branch's token count this config runs: ``"full"`` or ``"base"`` (an explicit ``global_pool``
        with ``global_tokens`` unset means the pooled full-size branch of ``resdit_fast``)."""
        if self.global_tokens is not None:
            return self.global_tokens
        if self.global_pool not in (None, 1):
            return "full"
        return self.spec.global_tokens

    @property
    def pooled_phases(self) -> str:
        """``"all"`` or ``"fused"``: the phases whose global branch is pooled (when it is)."""
        if self.pool_phases is not None:
            return self.pool_phases
        return "all" if self.tokens == "base" else "fused"

    @property
    def upsampling(self) -> str:
        """The upsampler of a pooled global branch this config runs."""
        if self.upsampler is not None:
            return self.upsampler
        return "fft" if self.tokens == "base" else "bilinear"

    @property
    def uses_key_bias(self) -> bool:
        return (self.tokens != "base") if self.key_bias is None else self.key_bias

    def psf_cutoff(self, factors: tuple[int, int] = (1, 1)) -> float:
        """PSF's cutoff in the fused phase with a global branch on ``factors`` blocks: ``cutoff``, or with
        ``nyquist_cutoff`` at most the blocks' Nyquist limit ``1 / max(factors)`` (normalised radius)."""
        if self.nyquist_cutoff and max(factors) > 1:
            return min(self.cutoff, 1.0 / max(factors))
        return self.cutoff

    @property
    def shift(self) -> float | str:
        """The scheduler shift this config asks for: ``"base"``, ``"pipeline"`` or a number."""
        if self.mu is None:
            return "pipeline" if self.mode == "direct" else "base"
        return self.mu


def _deprecated_sigma(self) -> float:
    warnings.warn("ResDiTConfig.sigma is now splice_width; the alias goes in the next release.", FutureWarning,
                  stacklevel=2)
    return self.splice_width


ResDiTConfig.sigma = property(_deprecated_sigma)  # reading the old name: the splice width, with a warning
