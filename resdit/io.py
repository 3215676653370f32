"""File writing that never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | Path, binary: bool = False):
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a written result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def finite_or_none(obj):
    """``obj`` with every NaN or infinity replaced by None (strict JSON has no NaN), recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return finite_or_none(obj.item())
    return obj


def dumps_strict(obj, **kwargs) -> str:
    """``json.dumps`` that writes undefined values as ``null`` and refuses anything else non-standard."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
