"""Patch-wise spectral fusion (PSF): low frequencies from the global branch, high from the local.

For one window pair ``x = F^-1(M F(x_g) + (1 - M) F(x_l))`` with a binary radial mask ``M``.
By linearity this is ``x_l + F^-1(M F(x_g - x_l))``: one forward and one inverse FFT per
window instead of two forward ones.

The radius is normalised: ``rho = sqrt((2 f_y)^2 + (2 f_x)^2)`` with ``f`` in cycles per
token in ``[-0.5, 0.5]``, so ``rho`` runs from 0 (DC) to ``sqrt(2)`` (the corner);
``M = 1`` where ``rho <= cutoff`` (the FreeInit convention).

Example:
    >>> radial_mask((4, 4), 0.0).sum().item()   # only the DC term
    1.0
"""

from __future__ import annotations

import torch


def radial_frequency(size: tuple[int, int]) -> torch.Tensor:
    """Normalised radius ``rho`` of every ``rfft2`` coefficient, ``[h, w // 2 + 1]``."""
    fy = torch.fft.fftfreq(size[0], dtype=torch.float64)
    fx = torch.fft.rfftfreq(size[1], dtype=torch.float64)
    return torch.sqrt((2 * fy)[:, None] ** 2 + (2 * fx)[None, :] ** 2)


def radial_mask(size: tuple[int, int], cutoff: float) -> torch.Tensor:
    """Binary low-pass mask ``[h, w // 2 + 1]`` (float32), 1 where ``rho <= cutoff``."""
    return (radial_frequency(size) <= cutoff + 1e-9).float()


def spectral_fuse(global_windows: torch.Tensor, local_windows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fuse window pairs: global low frequencies, local high ones.

    Args:
        global_windows, local_windows: ``[..., h, w, channels]``.
        mask: ``[h, w // 2 + 1]`` from :func:`radial_mask`.

    Returns:
        ``[..., h, w, channels]``, the fused windows, in the inputs' dtype.
    """
    h, w = global_windows.shape[-3:-1]
    diff = (global_windows - local_windows).float()
    spectrum = torch.fft.rfft2(diff, dim=(-3, -2)) * mask.to(diff.device)[:, :, None]
    low = torch.fft.irfft2(spectrum, s=(h, w), dim=(-3, -2))
    return (local_windows.float() + low).to(local_windows.dtype)


def band_energy(windows: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral energy below and above the cutoff of ``[..., h, w, channels]`` windows.

    Counts each ``rfft2`` coefficient once per conjugate pair it stands for, so the two
    energies add up to the windows' total energy (Parseval).

    Returns:
        ``(low, high)``, each ``[...]`` summed over frequencies and channels.
    """
    h, w = windows.shape[-3:-1]
    power = torch.fft.rfft2(windows.float(), dim=(-3, -2)).abs().pow(2)
    fold = torch.full((w // 2 + 1,), 2.0, device=windows.device)
    fold[0] = 1.0
    if w % 2 == 0:
        fold[-1] = 1.0
    power = power * fold[None, :, None]
    m = mask.to(windows.device)[:, :, None]
    low = (power * m).sum((-3, -2, -1)) / (h * w)
    high = (power * (1 - m)).sum((-3, -2, -1)) / (h * w)
    return low, high
