"""The study's conditions: each a name for a :class:`~resdit.ResDiTConfig` (the paper's Figure 2 conditions and
Figure 6 ablations, baselines, and conditions beyond the paper, marked +, @ for a shift or schedule factor).
"""

from __future__ import annotations

from resdit import ResDiTConfig

# name -> ResDiTConfig keyword arguments. The paper's conditions and ablations first, then
# baselines, then conditions beyond the paper (marked +).
CONDITIONS: dict[str, dict] = {
    "base": dict(proportional_attention=False, mode="direct"),  # (a): generated at the base size whatever the scale
    "extrapolate": dict(proportional_attention=False, mode="extrapolate"),  # (b)
    "scaled_pe": dict(proportional_attention=False, mode="scaled_pe"),  # (c)
    "patch_pe": dict(proportional_attention=False, mode="patch_pe"),  # (d)
    "patch_pe_local": dict(proportional_attention=False, mode="patch_pe_local"),  # (e)
    "resdit": dict(proportional_attention=False, mode="resdit_paper"),  # the paper's method as specified
    "resdit_no_pes": dict(proportional_attention=False, mode="resdit_no_pes"),
    "resdit_no_pipe": dict(proportional_attention=False, mode="resdit_no_pipe"),
    "resdit_no_psf": dict(proportional_attention=False, mode="resdit_no_psf"),
    "resdit_no_mop_gws": dict(proportional_attention=False, mode="resdit_no_mop_gws"),
    "resdit_mop_only": dict(proportional_attention=False, mode="resdit_mop_only"),
    "direct": dict(proportional_attention=False, mode="direct"),
    "ntk": dict(proportional_attention=False, mode="ntk"),
    "time_aware": dict(proportional_attention=False, mode="time_aware"),
    "dype": dict(proportional_attention=False, mode="dype"),
    "tiling": dict(proportional_attention=False, mode="tiling"),
    "tiling_gaussian": dict(proportional_attention=False, mode="tiling_gaussian"),
    "two_stage": dict(proportional_attention=False, mode="two_stage"),
    "upscale": dict(proportional_attention=False, mode="upscale"),
    "scaled_pe+pa": dict(mode="scaled_pe", proportional_attention=True),
    "resdit+pa": dict(mode="resdit_paper", proportional_attention=True),
    # Beyond the paper: fuse until the last step (no local-only phase), so the global branch keeps
    # the low frequencies that the local-only phase lets drift window by window (seams).
    "resdit+fuse_to_end": dict(proportional_attention=False, mode="resdit_paper", local_steps=0),
    "resdit+fuse_to_end+pa": dict(mode="resdit_paper", local_steps=0, proportional_attention=True),
    # The scheduler shift as a factor: FLUX's own, linear in the token count and unclamped.
    "scaled_pe@pipeline_shift": dict(proportional_attention=False, mode="scaled_pe", shift="pipeline"),
    "resdit@pipeline_shift": dict(proportional_attention=False, mode="resdit_paper", shift="pipeline"),
    # The toy model card's best 4x setting, and the proposed fix under the same shift.
    "scaled_pe+pa@pipeline_shift": dict(mode="scaled_pe", proportional_attention=True, shift="pipeline"),
    "resdit+fuse_to_end+pa@pipeline_shift": dict(mode="resdit_paper", local_steps=0, proportional_attention=True,
                                                 shift="pipeline"),
    # Exactly ResDiTConfig(mode=...)'s defaults, whatever they are when the study runs.
    "resdit@defaults": dict(mode="resdit"),
    "resdit_fast@defaults": dict(mode="resdit_fast"),
    # Phases at the base schedule's noise levels of the paper's steps 10 and 20 of 35 (instead of step counts).
    "resdit@sigma": dict(mode="resdit_paper", proportional_attention=False, phase_by="sigma"),
    "resdit+pa@sigma": dict(mode="resdit_paper", proportional_attention=True, phase_by="sigma"),
    # ResDiT's defaults with a longer global-only phase: until the noise level of step 16 or 21 of the paper's 35
    # (10 or 12 of 20 at the base size's shift; the defaults' 10 of 35 is 6 of 20 either way).
    "resdit@global_16of35": dict(mode="resdit", phase_by="sigma", global_steps=16),
    "resdit@global_21of35": dict(mode="resdit", phase_by="sigma", global_steps=21),
    # The global branch at the training token count (global_tokens="base"): the global branch on ceil(H/h) x
    # ceil(W/w) blocks in every phase, no key bias, bilinear upsampling, proportional attention, fusion to the last
    # step; then one factor each. Every factor is spelled out, so the names keep their meaning when defaults move.
    "resdit+base_tokens": dict(mode="resdit", global_tokens="base", upsampler="bilinear", key_bias=False,
                               pool_phases="all", proportional_attention=True, nyquist_cutoff=False),
    "resdit+base_tokens+fft": dict(mode="resdit", global_tokens="base", upsampler="fft", key_bias=False,
                                   pool_phases="all", proportional_attention=True, nyquist_cutoff=False),
    "resdit+base_tokens+key_bias": dict(mode="resdit", global_tokens="base", upsampler="bilinear", key_bias=True,
                                        pool_phases="all", proportional_attention=True, nyquist_cutoff=False),
    "resdit+base_tokens-pa": dict(mode="resdit", global_tokens="base", upsampler="bilinear", key_bias=False,
                                  pool_phases="all", proportional_attention=False, nyquist_cutoff=False),
    "resdit+base_tokens@fused_only": dict(mode="resdit", global_tokens="base", upsampler="bilinear",
                                          key_bias=False, pool_phases="fused", proportional_attention=True,
                                          nyquist_cutoff=False),
    # PSF's cutoff lowered to the blocks' Nyquist limit where the blocks cannot hold it (8x8 blocks at 8x): the
    # local branch then draws the band 1/p < rho <= 0.2 that no branch draws otherwise.
    "resdit+base_tokens+fft+nyquist": dict(mode="resdit", global_tokens="base", upsampler="fft", key_bias=False,
                                           pool_phases="all", proportional_attention=True, nyquist_cutoff=True),
    # The defaults before the base-token branch: the full-size global branch (rows named resdit@defaults made before
    # the switch ran exactly this).
    "resdit+full_tokens": dict(mode="resdit", global_tokens="full"),
}
SMOKE_CONDITIONS = ["base", "extrapolate", "scaled_pe", "patch_pe_local", "resdit", "tiling", "two_stage"]


def condition_config(name: str, base: tuple[int, int], shift: str = "base") -> ResDiTConfig:
    """The :class:`ResDiTConfig` of a condition. With ``shift="base"`` every condition that does
    not ask for the pipeline's own shift runs with the base size's (``mu="base"``): FLUX's shift
    grows without bound with the token count (toy: mu 3.75 at 2x, 14 at 4x), which leaves no steps
    to denoise and confounds every other factor."""
    kwargs = dict(CONDITIONS[name])
    own = kwargs.pop("shift", shift)
    return ResDiTConfig(base_size=base, mu=own, **kwargs)
