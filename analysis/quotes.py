"""Numbers quoted in prose, checked against the result files they come from.

A quoted number carries its source in an HTML comment right after it (invisible when the markdown is rendered)::

    ResDiT places the object correctly in 0.97<!-- q:results/study-v3/summary.json#groups[condition=resdit,scale=2].correct.mean -->
    of samples.

The reference is ``FILE#PATH``: a JSON file relative to the repository, then a path of keys (``.key``), list
indices (``[3]``) and list selections (``[field=value,field=value]``: the one element whose fields equal the values;
numbers compare as numbers). :func:`check` reads every tagged number of a markdown file and says where the written
number differs from the file's value rounded to the written number of decimals (``+`` and ``%`` are allowed:
``+0.12``, ``62 %`` with ``*100`` after the path: ``...correct.mean*100``; a ratio of two values: ``REF~REF``). ``python -m analysis.quotes FILE...``
prints the mismatches; ``tests/test_quotes.py`` runs it on README, the docs and the model card.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAG = re.compile(r"(?P<number>[+-]?\d+(?:\.\d+)?)\s*%?\s*<!--\s*q:(?P<ref>[^\s>]+)\s*-->")
STEP = re.compile(r"\.([\w@+\-]+)|\[(\d+)\]|\[([^\]]+)\]")


def _match(element, selector: str) -> bool:
    for clause in selector.split(","):
        key, _, want = clause.partition("=")
        have = element.get(key.strip()) if isinstance(element, dict) else None
        try:
            if float(have) != float(want):
                return False
        except (TypeError, ValueError):
            if str(have) != want.strip():
                return False
    return True


def resolve(ref: str, root: Path = REPO):
    """The value a reference ``FILE#PATH[*factor]`` points at (``REF~REF``: the first divided by the second)."""
    if "~" in ref:
        top, bottom = ref.split("~", 1)
        return resolve(top, root) / resolve(bottom, root)
    target, _, path = ref.partition("#")
    path, _, factor = path.partition("*")
    value = json.loads((root / target).read_text())
    for key, index, selector in STEP.findall("." + path if path and path[0] not in ".[" else path):
        if key:
            value = value[key]
        elif index:
            value = value[int(index)]
        else:
            found = [e for e in value if _match(e, selector)]
            if len(found) != 1:
                raise KeyError(f"{ref}: [{selector}] selects {len(found)} elements, not one")
            value = found[0]
    return value * float(factor) if factor else value


def check(markdown: str | Path, root: Path = REPO) -> list[str]:
    """Every tagged number in a markdown file that differs from its source (empty: all agree)."""
    text = Path(markdown).read_text()
    problems = []
    for m in TAG.finditer(text):
        written = m.group("number")
        line = text.count("\n", 0, m.start()) + 1
        try:
            value = float(resolve(m.group("ref"), root))
        except (OSError, KeyError, IndexError, TypeError, ValueError) as err:
            problems.append(f"{markdown}:{line}: {written}: cannot read {m.group('ref')} ({err})")
            continue
        decimals = len(written.split(".")[1]) if "." in written else 0
        expected = f"{value:.{decimals}f}"
        if abs(float(written) - float(expected)) > 10 ** -(decimals + 3):
            problems.append(f"{markdown}:{line}: written {written}, {m.group('ref')} gives {expected}")
    return problems


def tagged(markdown: str | Path) -> int:
    return len(TAG.findall(Path(markdown).read_text()))


def main(argv: list[str] | None = None) -> int:
    files = argv if argv is not None else sys.argv[1:]
    problems = [p for f in files for p in check(f)]
    print("\n".join(problems) if problems else f"{sum(tagged(f) for f in files)} quoted numbers agree")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
