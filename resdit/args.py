"""Argument types and the parser class shared by the command lines (``resdit`` and the analysis commands it
discovers): options are checked as they are parsed, and errors are one ``error:`` line with exit status 2."""

from __future__ import annotations

import argparse
import math
import sys


class Parser(argparse.ArgumentParser):
    """Errors as one ``error: ...`` line and exit status 2 (argparse's own usage dump is not an error message)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def positive_int(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return int(value)


def overlap_rule(text: str) -> int | str:
    """``--window-overlap``: a whole number of tokens >= 1, or ``quarter`` (a quarter of the window)."""
    if text == "quarter":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of tokens >= 1 or 'quarter'") from None


def non_negative_int(text: str) -> int:
    try:
        return 0 if float(text) == 0 else positive_int(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 0") from None


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number > 0")
    return value


def shard(text: str) -> tuple[int, int]:
    """``i/n`` with ``0 <= i < n``: run every n-th group starting at i."""
    i, sep, n = text.partition("/")
    try:
        i, n = int(i), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not i/n (e.g. 0/2)") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: shard i/n needs 0 <= i < n (shards 0/{max(n, 1)} .. "
                                         f"{max(n, 1) - 1}/{max(n, 1)})")
    return i, n


def size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        return positive_int(h), positive_int(w or h)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW in pixels ({err})") from None


def chunk(text: str):
    return text if text == "auto" else positive_int(text)


def mu(text: str):
    return text if text in ("base", "pipeline") else finite_float(text)


def run_command(func, args) -> int:
    """One rule for every subcommand: a bad option, path or model folder (any ValueError, ResDiTConfigError and
    ModelLoadError included) is one ``error:`` line and exit status 2; an interrupt is one line and exit status 130
    (no half-written file either way: results are written atomically)."""
    try:
        return func(args)
    except ValueError as err:
        message = " ".join(str(err).split())  # one line
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # on a line of its own: a progress bar cut off mid-line has no newline after it
        print("\ninterrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
