"""The study's conditions: each a name for a :class:`~resdit.ResDiTConfig` (the paper's Figure 2 conditions and
Figure 6 ablations, baselines, and conditions beyond the paper, marked +, @ for a shift or schedule factor).
"""

from __future__ import annotations

from resdit import ResDiTConfig

# Every condition of mode resdit but ``resdit`` itself spells ``window_overlap=1``: its rows ran on the
# minimum-overlap windows, before ``mode="resdit"`` took a quarter-window overlap (which changes the toy's windows at
# 3.5x and 5x to 8x only), so its name keeps meaning what ran. ``resdit@overlap4`` is the defaults at every toy scale.
# name -> ResDiTConfig keyword arguments. The paper's conditions and ablations first, then
# baselines, then conditions beyond the paper (marked +).
CONDITIONS: dict[str, dict] = {
    "base": dict(proportional_attention=False, mode="direct"),  # (a): generated at the base size whatever the scale
    "extrapolate": dict(proportional_attention=False, mode="extrapolate"),  # (b)
    "scaled_pe": dict(proportional_attention=False, mode="scaled_pe"),  # (c)
    "patch_pe": dict(proportional_attention=False, mode="patch_pe"),  # (d)
    "patch_pe_local": dict(proportional_attention=False, mode="patch_pe_local"),  # (e)
    "resdit_paper": dict(proportional_attention=False, mode="resdit_paper"),  # the paper's method as specified
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
    "resdit_paper+pa": dict(mode="resdit_paper", proportional_attention=True),
    # Beyond the paper: fuse until the last step (no local-only phase), so the global branch keeps
    # the low frequencies that the local-only phase lets drift window by window (seams).
    "resdit_paper+fuse_to_end": dict(proportional_attention=False, mode="resdit_paper", local_steps=0),
    "resdit_paper+fuse_to_end+pa": dict(mode="resdit_paper", local_steps=0, proportional_attention=True),
    # The scheduler shift as a factor: FLUX's own, linear in the token count and unclamped.
    "scaled_pe@pipeline_shift": dict(proportional_attention=False, mode="scaled_pe", shift="pipeline"),
    "resdit_paper@pipeline_shift": dict(proportional_attention=False, mode="resdit_paper", shift="pipeline"),
    # The toy model card's best 4x setting, and the proposed fix under the same shift.
    "scaled_pe+pa@pipeline_shift": dict(mode="scaled_pe", proportional_attention=True, shift="pipeline"),
    "resdit_paper+fuse_to_end+pa@pipeline_shift": dict(mode="resdit_paper", local_steps=0, proportional_attention=True,
                                                 shift="pipeline"),
    # resdit_fast as the library runs it (the pooled full-size branch in the fused phase).
    "resdit_fast": dict(mode="resdit_fast"),
    # Phases at the base schedule's noise levels of the paper's steps 10 and 20 of 35 (instead of step counts).
    "resdit_paper@sigma": dict(mode="resdit_paper", proportional_attention=False, phase_by="sigma"),
    "resdit_paper+pa@sigma": dict(mode="resdit_paper", proportional_attention=True, phase_by="sigma"),
    # ResDiT's defaults with a longer global-only phase: until the noise level of step 16 or 21 of the paper's 35
    # (10 or 12 of 20 at the base size's shift; the defaults' 10 of 35 is 6 of 20 either way).
    "resdit+full_tokens@global_16of35": dict(mode="resdit", window_overlap=1, global_tokens="full", window_align=1, phase_by="sigma", global_steps=16),
    "resdit+full_tokens@global_21of35": dict(mode="resdit", window_overlap=1, global_tokens="full", window_align=1, phase_by="sigma", global_steps=21),
    # The global branch at the training token count (global_tokens="base"): the global branch on ceil(H/h) x
    # ceil(W/w) blocks in every phase, no key bias, bilinear upsampling, proportional attention, fusion to the last
    # step; then one factor each. Every factor is spelled out, so the names keep their meaning when defaults move.
    "resdit+base_tokens": dict(mode="resdit", window_overlap=1, window_align=1, global_tokens="base", upsampler="bilinear", key_bias=False,
                               pool_phases="all", proportional_attention=True, nyquist_cutoff=False),
    "resdit+base_tokens+fft": dict(mode="resdit", window_overlap=1, window_align=1, global_tokens="base", upsampler="fft", key_bias=False,
                                   pool_phases="all", proportional_attention=True, nyquist_cutoff=False),
    "resdit+base_tokens+key_bias": dict(mode="resdit", window_overlap=1, window_align=1, global_tokens="base", upsampler="bilinear", key_bias=True,
                                        pool_phases="all", proportional_attention=True, nyquist_cutoff=False),
    "resdit+base_tokens-pa": dict(mode="resdit", window_overlap=1, window_align=1, global_tokens="base", upsampler="bilinear", key_bias=False,
                                  pool_phases="all", proportional_attention=False, nyquist_cutoff=False),
    "resdit+base_tokens@fused_only": dict(mode="resdit", window_overlap=1, window_align=1, global_tokens="base", upsampler="bilinear",
                                          key_bias=False, pool_phases="fused", proportional_attention=True,
                                          nyquist_cutoff=False),
    # PSF's cutoff lowered to the blocks' Nyquist limit where the blocks cannot hold it (8x8 blocks at 8x): the
    # local branch then draws the band 1/p < rho <= 0.2 that no branch draws otherwise.
    "resdit+base_tokens+fft+nyquist": dict(mode="resdit", window_overlap=1, window_align=1, global_tokens="base", upsampler="fft", key_bias=False,
                                           pool_phases="all", proportional_attention=True, nyquist_cutoff=True),
    # The defaults before the base-token branch: the full-size global branch.
    "resdit+full_tokens": dict(mode="resdit", window_overlap=1, global_tokens="full", window_align=1),
    # The base-token branch with the local windows on even starts (window_align=2): where the minimum-overlap
    # stride is odd (3x on the toy: windows 11 tokens apart), the toy's two-token stripes come out in opposite phases
    # in neighbouring windows and the splice cancels them. At 2x, 4x and 8x the starts are even already.
    "resdit+base_tokens+fft+align2": dict(mode="resdit", window_overlap=1, window_align=2, global_tokens="base", upsampler="fft",
                                          key_bias=False, pool_phases="all", proportional_attention=True,
                                          nyquist_cutoff=False),
    # The library's defaults, whatever they are when the study runs (the provenance of each row has the config).
    "resdit": dict(mode="resdit"),
    # The defaults with a local-only phase of 3 of 20 steps, under the call's prompt and under each prompt's window
    # prompt (``local_prompt``: the prompt without its place, resdit.toy.world.window_prompt). ``local_prompt`` is
    # the study's key, not a config field: :func:`condition_local_prompt`.
    "resdit+local_steps3": dict(mode="resdit", window_overlap=1, local_steps=3),
    "resdit+window_prompt": dict(mode="resdit", window_overlap=1, local_steps=3, local_prompt="window_prompt"),
    # the local-only phase's length as a factor (the seams a local-only phase leaves against the detail it draws)
    "resdit+window_prompt@local_steps1": dict(mode="resdit", window_overlap=1, local_steps=1, local_prompt="window_prompt"),
    "resdit+window_prompt@local_steps2": dict(mode="resdit", window_overlap=1, local_steps=2, local_prompt="window_prompt"),
    # the splice weights as a factor: GWS's truncated Gaussian steps at each window's edge; feathering crossfades
    # over each overlap (no step at any border), with the local-only phase and without it
    "resdit+window_prompt+feather": dict(mode="resdit", window_overlap=1, local_steps=3, local_prompt="window_prompt", splice="feather"),
    "resdit+feather": dict(mode="resdit", window_overlap=1, splice="feather"),
    # the windows' least overlap as a factor: at 8x minimum-overlap windows of 16 tokens share 2, so a feathered
    # crossfade is nearly a cut; 4 tokens (11 windows a side instead of 9). At 2x-4x the toy's windows overlap by 4
    # or more already, so these conditions are their parents' runs there (resdit.geometry.window_starts).
    "resdit+window_prompt+feather@overlap4": dict(mode="resdit", local_steps=3, local_prompt="window_prompt",
                                                  splice="feather", window_overlap=4),
    "resdit@overlap4": dict(mode="resdit", window_overlap=4),
    # the same overlap with every start but the last on a multiple of 12 tokens, where the toy's grounds (periods of 4
    # and 3 tokens) repeat: separates what the overlap does from what the windows' phase does (a control, not a
    # candidate default: 12 is the toy world's number)
    "resdit+align12@overlap4": dict(mode="resdit", window_overlap=4, window_align=12),
    # the global-only phase's length as a factor: none of 20 steps instead of the defaults' 6 (fused from the first
    # step), with the defaults' quarter-window overlap spelled out (at 2x-4x the same windows as the minimum overlap's,
    # so it pairs with resdit+base_tokens+fft+align2 there and with resdit@overlap4 at 5x-8x)
    "resdit@global0": dict(mode="resdit", window_overlap=4, global_steps=0),
}

#: values of a condition's ``local_prompt``: how the local-only phase's prompt follows from the call's
LOCAL_PROMPTS = ("window_prompt",)

# Names the study used before a condition's name began with the mode it runs (rows are renamed when read:
# :func:`current_name`). ``resdit`` ran the paper's schedule; ``resdit@defaults`` ran the then defaults, the
# full-size global branch; ``resdit_fast@defaults`` ran mode resdit_fast.
RENAMED: dict[str, str] = {
    "resdit": "resdit_paper", "resdit+pa": "resdit_paper+pa", "resdit+fuse_to_end": "resdit_paper+fuse_to_end",
    "resdit+fuse_to_end+pa": "resdit_paper+fuse_to_end+pa", "resdit@pipeline_shift": "resdit_paper@pipeline_shift",
    "resdit+fuse_to_end+pa@pipeline_shift": "resdit_paper+fuse_to_end+pa@pipeline_shift",
    "resdit@sigma": "resdit_paper@sigma", "resdit+pa@sigma": "resdit_paper+pa@sigma",
    "resdit@defaults": "resdit+full_tokens", "resdit_fast@defaults": "resdit_fast",
    "resdit@global_16of35": "resdit+full_tokens@global_16of35",
    "resdit@global_21of35": "resdit+full_tokens@global_21of35",
}


def current_name(row: dict) -> dict:
    """A result row under today's condition names (its ``condition`` and ``key``), judged by what it ran: a row
    named ``resdit`` whose provenance says mode ``resdit`` (none so far) keeps its name."""
    old = row.get("condition")
    new = RENAMED.get(old)
    ran = ((row.get("provenance") or {}).get("config") or {}).get("mode")
    if new is None or (old == "resdit" and ran == "resdit"):
        return row
    row = dict(row, condition=new)
    if "key" in row and row["key"].startswith(f"{old}|"):
        row["key"] = new + row["key"][len(old):]
    return row
SMOKE_CONDITIONS = ["base", "extrapolate", "scaled_pe", "patch_pe_local", "resdit_paper", "tiling", "two_stage"]


def condition_config(name: str, base: tuple[int, int], shift: str = "base") -> ResDiTConfig:
    """The :class:`ResDiTConfig` of a condition. With ``shift="base"`` every condition that does
    not ask for the pipeline's own shift runs with the base size's (``mu="base"``): FLUX's shift
    grows without bound with the token count (toy: mu 3.75 at 2x, 14 at 4x), which leaves no steps
    to denoise and confounds every other factor."""
    kwargs = dict(CONDITIONS[name])
    own = kwargs.pop("shift", shift)
    kwargs.pop("local_prompt", None)
    return ResDiTConfig(base_size=base, mu=own, **kwargs)


def condition_local_prompt(name: str, prompts: list[str], world: str | None) -> list[str] | None:
    """The local-only phase's prompt per image of a condition that names one (None: the call's prompt)."""
    kind = CONDITIONS[name].get("local_prompt")
    if kind is None:
        return None
    if kind not in LOCAL_PROMPTS:
        raise ValueError(f"condition {name!r}: local_prompt={kind!r}; known: {sorted(LOCAL_PROMPTS)}")
    from resdit.toy.world import window_prompt

    return [window_prompt(p, world) for p in prompts]
