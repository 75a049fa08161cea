"""Make the README's pictures again: docs/screenshots/<role>.png and map.png (issue 19).

    python scripts/screenshots.py [PYTEST-ARGS...]

The browser tests (tests/test_browser.py) take these screenshots in Debian's Chromium while
each role does its main task. Run by pytest they save them in a temporary folder, so that the
test suite leaves the tree clean; this script runs them with ALLUVIAL_SCREENSHOTS pointing at
docs/screenshots, and fails when Playwright or /usr/bin/chromium is missing rather than
skipping. Review the pictures with `git diff --stat docs/screenshots` before committing them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def main(argv: list[str]) -> int:
    env = dict(os.environ, ALLUVIAL_SCREENSHOTS=str(SCREENSHOTS), ALLUVIAL_REQUIRE_BROWSER="1")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "browser",
               str(ROOT / "tests" / "test_browser.py"), *argv]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode == 0:
        print(f"Screenshots written to {SCREENSHOTS.relative_to(ROOT)}/", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
