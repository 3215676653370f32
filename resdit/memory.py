"""How many windows to batch in one local-branch call.

``ResDiTConfig(window_chunk=...)``: an int is a fixed chunk, None batches every window, and
``"auto"`` sizes the chunk from the memory free on the device right now (CUDA: free device
memory; CPU: available physical memory), keeping the local branch's transient tensors under
``AUTO_FRACTION`` of it. Outputs do not depend on the chunk beyond float rounding (kernels block by batch size).
"""

from __future__ import annotations

import os

import torch

#: share of the free memory the local branch's transient tensors may take under ``window_chunk="auto"``
AUTO_FRACTION = 0.5


def _device_bytes(device, free: bool) -> int:
    """CUDA's ``mem_get_info`` (free or total), else available or all physical memory (Linux; 2**62 where unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0 if free else 1])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES" if free else "SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not Linux: no bound known
        return 1 << 62


def free_bytes(device) -> int:
    """Memory free on ``device`` now: CUDA's ``mem_get_info``, else available physical memory (Linux)."""
    return _device_bytes(device, free=True)


def attention_window_bytes(batch: int, seq: int, heads: int, head_dim: int, itemsize: int = 4) -> int:
    """Transient bytes of one window's attention call: q, k, v, roped q and k, output, and the
    ``heads x seq x seq`` score matrix a non-fused attention kernel materialises (twice: scores, softmax)."""
    return itemsize * batch * (6 * seq * heads * head_dim + 2 * heads * seq * seq)


def window_chunk(config, num_windows: int, per_window_bytes: int, device) -> int:
    """Windows per call for ``config.window_chunk`` (int, None or ``"auto"``)."""
    chunk = config.window_chunk
    if chunk is None:
        return num_windows
    if chunk == "auto":
        budget = AUTO_FRACTION * free_bytes(device)
        return int(max(1, min(num_windows, budget // max(per_window_bytes, 1))))
    return int(min(chunk, num_windows))


def total_bytes(device) -> int:
    """All memory of ``device``: CUDA's total, else physical memory (Linux; 2**62 where unknown)."""
    return _device_bytes(device, free=False)


#: live copies of a block's token activations (q, k, v, attention output, the MLP's 4x hidden, residual)
ACTIVATION_COPIES = 8


def generation_bytes(height: int, width: int, pixels_per_token: int, hidden: int, itemsize: int = 4) -> int:
    """A lower bound on a generation's peak memory: ``ACTIVATION_COPIES`` copies of one block's image-token
    activations (``tokens x hidden``). FLUX.1 at 4096^2 in bf16: 3.2 GB; attention scores, weights and the VAE
    come on top."""
    tokens = (height // pixels_per_token) * (width // pixels_per_token)
    return ACTIVATION_COPIES * tokens * hidden * itemsize


def check_memory(height: int, width: int, pixels_per_token: int, hidden: int | None, device="cpu",
                 itemsize: int = 4) -> None:
    """ValueError before any work if even :func:`generation_bytes` exceeds the device's memory."""
    if hidden is None:
        return
    need, have = generation_bytes(height, width, pixels_per_token, hidden, itemsize), total_bytes(device)
    if need > have:
        raise ValueError(f"{height}x{width} px needs at least {need / 2**30:.1f} GiB of activations on {device} "
                         f"(tokens x width x {ACTIVATION_COPIES}), more than its {have / 2**30:.1f} GiB; ask for a "
                         "smaller size, or pass --force-size to try anyway.")
