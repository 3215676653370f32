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


def check_writable(path: str | Path, directory: bool = False) -> None:
    """ValueError now, before any work, if ``path`` cannot be written: an existing directory where a file is
    due (or a file where a folder is), or a place where no file can be created. Creates nothing that stays."""
    path = Path(path)
    if path.exists() and path.is_dir() != directory:
        kind = "a directory" if path.is_dir() else "a file"
        raise ValueError(f"{path} is {kind}; give {'a folder' if directory else 'a file name'}.")
    probe_in = path if directory and path.is_dir() else path.parent
    while not probe_in.exists():  # the nearest folder that exists: atomic_write creates the rest
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise ValueError(f"cannot write {path}: {probe_in} is a file, not a folder.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".resdit-write-check.", dir=probe_in)
    except OSError as err:
        raise ValueError(f"cannot write {path}: {probe_in} is not writable ({err.strerror}).") from None
    os.close(fd)
    os.unlink(tmp)


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
