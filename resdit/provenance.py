"""What made a result: commit, model checksum, command, resolved config, versions and machine.

Every result file resdit writes (study rows and summary, eval-toy, bench, dilution, report numbers) carries
:func:`provenance`, so a reader can rerun a committed number from the file alone.

Example:
    >>> p = provenance()
    >>> sorted(p)[:4]
    ['command', 'commit', 'created', 'dirty']
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_COMMAND: list[str] | None = None


def set_command(argv: list[str]) -> None:
    """The command line the results of this process come from (``resdit.cli.main`` calls it; default: sys.argv)."""
    global _COMMAND
    _COMMAND = list(argv)


@functools.lru_cache(maxsize=None)
def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


#: what does not make a result: its outputs and prose (a tree is not dirty for a regenerated result or an edited doc)
NOT_SOURCE = ("results", "figures", "docs", "*.md")


def commit() -> tuple[str | None, bool | None]:
    """``(HEAD's hash, whether tracked source files differ from it)`` (outputs and prose, :data:`NOT_SOURCE`, do not
    count); ``(None, None)`` outside a git checkout."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){p}" for p in NOT_SOURCE))
    return head, None if status is None else bool(status)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


commit()  # read once, when the process starts: a result records the commit its code came from, not the one at its end


def weights_checksum(folder: str | Path | None) -> dict[str, str] | None:
    """sha256 of every ``*.safetensors`` under a model folder (relative name -> hex); None for a hub id or no
    folder."""
    if folder is None or not Path(folder).is_dir():
        return None
    out = {}
    for path in sorted(Path(folder).rglob("*.safetensors")):
        st = path.stat()
        out[str(path.relative_to(folder))] = _sha256(str(path), st.st_size, st.st_mtime_ns)
    return out


def model_id(folder: str | Path | None) -> str:
    """One short name for a model's weights: the first 16 hex digits of the sha256 over its files' checksums
    (``"hub:<id>"`` for a name that is not a folder)."""
    sums = weights_checksum(folder)
    if sums is None:
        return f"hub:{folder}"
    return hashlib.sha256("".join(f"{k}={v};" for k, v in sums.items()).encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "numpy", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _machine(device: str | None) -> dict:
    info = {"platform": platform.platform(terse=True), "cpu_count": os.cpu_count(), "device": device or "cpu"}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # the kernels' instruction set, e.g. AVX512
        if device and str(device).startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    info["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    info["cpu"] = _cpu_model()
    if hasattr(os, "getloadavg"):  # what else ran: a timing beside a busy process is not a timing alone
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _cpu_model() -> str:
    """The processor's name, with its family and model numbers where the name is generic (a virtual machine's
    "AMD EPYC" names no generation)."""
    try:
        fields = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor is enough
            fields.setdefault(key.strip(), value.strip())
        if "model name" in fields:
            return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _plain(config):
    if config is None:
        return None
    if dataclasses.is_dataclass(config):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
    return config


def provenance(*, config=None, model: str | Path | None = None, seeds=None, device: str | None = None,
               argv: list[str] | None = None) -> dict:
    """What made a result, as a JSON-ready dict.

    Args:
        config: the resolved configuration (a dataclass such as :class:`~resdit.ResDiTConfig`, or a dict).
        model: the model folder (its weights' checksums are recorded) or hub id; None: the shipped toy model.
        seeds: the seeds the result used (anything JSON can hold).
        device: the torch device it ran on.
        argv: the command line (default: this process's).
    """
    if model is None:
        from .toy.model import WEIGHTS_DIR

        model = WEIGHTS_DIR
    sums, ident = weights_checksum(model), model_id(model)
    if Path(model).is_dir() and Path(model).resolve().is_relative_to(REPO):
        model = Path(model).resolve().relative_to(REPO)  # a path that means the same in any clone
    head, dirty = commit()
    argv = (_COMMAND or sys.argv) if argv is None else argv
    return {
        "commit": head, "dirty": dirty,
        "command": shlex.join([Path(argv[0]).name, *argv[1:]]) if argv else None,
        "model": str(model), "model_id": ident, "weights_sha256": sums,
        "config": _plain(config), "seeds": seeds,
        "versions": _versions(), "machine": _machine(device),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def source_key(prov: dict | None) -> tuple:
    """What must agree between rows merged into one summary: commit, dirtiness and model."""
    if not prov:
        return ("unrecorded",)
    return (prov.get("commit"), prov.get("dirty"), prov.get("model_id"))
