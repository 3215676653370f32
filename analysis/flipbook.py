"""Offline counterparts of the notebooks' sliders: precomputed frames switched by a range input and a few lines of
inline JavaScript, so the static HTML report moves through the settings with no kernel and no network (no widget
manager, no CDN).

    >>> from analysis.flipbook import flipbook
    >>> html = flipbook([("cutoff 0.1", fig_a), ("cutoff 0.2", fig_b)], title="PSF cutoff")   # doctest: +SKIP
    >>> from IPython.display import HTML; HTML(html)                                            # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import itertools

import numpy as np

_IDS = itertools.count()
#: marks every flipbook in the HTML (the report's tests count them)
MARKER = "resdit-flipbook"


def _png(frame) -> bytes:
    """PNG bytes of a matplotlib figure, an image array ``[3, H, W]`` / ``[H, W, 3]`` in [0, 1], or PNG bytes."""
    if isinstance(frame, bytes | bytearray):
        return bytes(frame)
    if hasattr(frame, "savefig"):
        buf = io.BytesIO()
        frame.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        return buf.getvalue()
    from PIL import Image

    a = np.asarray(frame.detach().cpu().numpy() if hasattr(frame, "detach") else frame, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    a = np.clip(a, 0, 1)
    scale = max(1, 256 // max(a.shape[:2]))  # nearest-neighbour enlargement of small images
    a = np.kron(a, np.ones((scale, scale, 1)))
    buf = io.BytesIO()
    Image.fromarray((a * 255).round().astype(np.uint8).squeeze()).save(buf, format="PNG")
    return buf.getvalue()


def flipbook(frames, title: str = "", label: str = "setting") -> str:
    """An HTML fragment: ``frames`` (``[(caption, figure | image | png bytes), ...]``) behind one slider.

    Every frame is embedded (base64 PNG); the slider shows one at a time and its caption. Works in a static
    HTML file opened from disk.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("a flipbook needs at least one frame")
    uid = f"{MARKER}-{next(_IDS)}"
    imgs = "".join(
        f'<img class="{uid}-frame" data-caption="{html.escape(cap)}" alt="{html.escape(cap)}" '
        f'src="data:image/png;base64,{base64.b64encode(_png(fr)).decode()}" '
        f'style="display:{"block" if i == 0 else "none"};max-width:100%">'
        for i, (cap, fr) in enumerate(frames))
    switch = (f"var f=document.querySelectorAll('.{uid}-frame');for(var i=0;i<f.length;i++)"
              f"{{f[i].style.display=(i==this.value)?'block':'none';}}"
              f"document.getElementById('{uid}-cap').textContent=f[this.value].getAttribute('data-caption');")
    return (
        f'<div class="{MARKER}" id="{uid}" style="font-family:sans-serif;margin:0.5em 0">'
        f'<div style="font-weight:bold">{html.escape(title)}</div>'
        f'<label>{html.escape(label)}: <input type="range" min="0" max="{len(frames) - 1}" value="0" step="1" '
        f'oninput="{switch}"></label> <span id="{uid}-cap">{html.escape(frames[0][0])}</span>{imgs}</div>'
    )
