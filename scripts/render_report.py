"""Screenshot a run's ``report.html`` with headless Chromium, to look at the report without a browser window.

    python scripts/render_report.py RUN_DIR [--out PNG] [--height 4000]

Writes the report first when the run folder has none. Exits 1 with a message when Chromium is not installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def chromium() -> str | None:
    """The Chromium executable on PATH, if any."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def render(html_file: Path, out: Path, width: int = 1280, height: int = 4000) -> Path:
    """Screenshot ``html_file`` into ``out`` (PNG) with headless Chromium."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (e.g. `apt-get install chromium`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:  # a throw-away profile: no state shared with other runs
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
                        f"--window-size={width},{height}", html_file.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, help="PNG to write (default RUN_DIR/report.png)")
    parser.add_argument("--height", type=int, default=4000, help="window height in pixels (the page is cut there)")
    args = parser.parse_args(argv)
    if chromium() is None:
        print("chromium is not installed: install it (e.g. `apt-get install chromium`) to render reports",
              file=sys.stderr)
        return 1
    html_file = args.run_dir / "report.html"
    if not html_file.is_file():
        from monai_app.reports import write_report

        html_file = write_report(args.run_dir)[0]
    out = render(html_file, args.out or args.run_dir / "report.png", height=args.height)
    print(f"screenshot of {html_file} written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
