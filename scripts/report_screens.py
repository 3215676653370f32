"""Screenshots of every page of a built report, taken by headless Chromium (what a reader sees with no kernel and no
network), as small PNGs under ``docs/report-screens/``.

    resdit report --out out/full                     # or --smoke
    python scripts/report_screens.py out/full [--out docs/report-screens] [--browser /usr/bin/chromium]

Each page is opened from disk (``file://``) in a fresh profile with networking off, at 1280 px wide and tall enough
for the whole page (the height is measured first with a page-height probe, capped at ``--max-height``); the shot is
cropped to the page, scaled to ``--width`` px and written as ``<page>.png`` beside ``screens.json`` (the pages, their
sizes and the browser's version). Chromium: Debian's ``chromium`` package (``apt-get install chromium``) or any
Chrome; the script says so when none is found.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resdit.io import atomic_write  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--hide-scrollbars",
         "--force-device-scale-factor=1")
VIEW_WIDTH = 1280


def find_browser(given: str | None) -> str:
    for name in ([given] if given else BROWSERS):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise SystemExit("No Chromium found: install Debian's `chromium` package (apt-get install chromium) or pass "
                     "--browser PATH to a Chrome or Chromium binary.")


def _run(browser: str, args: list[str], profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def page_height(browser: str, page: Path, profile: Path) -> int:
    """The page's scroll height at the shot's width, read from the DOM Chromium dumps after running the page's
    scripts (a probe script appended to a copy writes the height into the document's title)."""
    probe = page.with_name(f".height-probe-{page.name}")
    script = ("<script>window.addEventListener('load',()=>{setTimeout(()=>{document.title='H='+"
              "document.documentElement.scrollHeight},300)});</script>")
    probe.write_text(page.read_text(encoding="utf-8") + script, encoding="utf-8")
    try:
        done = _run(browser, [f"--window-size={VIEW_WIDTH},1000", "--virtual-time-budget=5000", "--dump-dom",
                              probe.as_uri()], profile)
    finally:
        probe.unlink()
    found = re.search(r"<title>H=(\d+)</title>", done.stdout)
    if not found:
        raise SystemExit(f"Could not measure {page.name}: Chromium printed {done.stderr[-400:]!r}")
    return int(found.group(1))


def shoot(browser: str, page: Path, dest: Path, width: int, max_height: int, profile: Path) -> dict:
    from PIL import Image

    height = min(page_height(browser, page, profile), max_height)
    raw = dest.with_suffix(".raw.png")
    done = _run(browser, [f"--window-size={VIEW_WIDTH},{height}", "--virtual-time-budget=5000",
                          f"--screenshot={raw}", page.as_uri()], profile)
    if not raw.exists():
        raise SystemExit(f"Chromium wrote no screenshot of {page.name}: {done.stderr[-400:]!r}")
    with Image.open(raw) as im:
        shot = im.convert("RGB")
    raw.unlink()
    small = shot.resize((width, round(shot.height * width / shot.width)), Image.LANCZOS)
    small = small.quantize(colors=256, method=Image.Quantize.MEDIANCUT)  # a page of text and plots: 256 colours read
    with atomic_write(dest, binary=True) as f:
        small.save(f, format="PNG", optimize=True)
    return {"page": page.name, "png": dest.name, "page_height_px": height, "size": list(small.size),
            "cut_at_max_height": height == max_height}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, help="a folder written by `resdit report --out`")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "report-screens")
    p.add_argument("--browser", default=None, help="Chromium or Chrome binary (default: the first on PATH)")
    p.add_argument("--width", type=int, default=640, help="width of the PNGs in px (default 640)")
    p.add_argument("--max-height", type=int, default=12000, help="longest page height shot, in CSS px")
    args = p.parse_args(argv)
    args.report = args.report.resolve()
    pages = sorted(args.report.glob("*.html"), key=lambda q: (q.name != "index.html", q.name))
    if not pages:
        raise SystemExit(f"{args.report} has no HTML pages: build it with `resdit report --out {args.report}`.")
    browser = find_browser(args.browser)
    version = subprocess.run([browser, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    shots = []
    with tempfile.TemporaryDirectory() as profile:
        for page in pages:
            shots.append(shoot(browser, page, args.out / f"{page.stem}.png", args.width, args.max_height,
                               Path(profile)))
            print(f"{page.name}: {shots[-1]['size'][0]}x{shots[-1]['size'][1]} px -> {args.out / shots[-1]['png']}")
    with atomic_write(args.out / "screens.json") as f:
        json.dump({"report": args.report.name, "browser": version, "view_width_px": VIEW_WIDTH, "shots": shots}, f,
                  indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
