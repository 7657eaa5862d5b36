"""The lint the project agreed on (pyproject [tool.ruff]: pyflakes, pycodestyle at 130 columns, import
order, bugbear) holds over the whole tree."""

import subprocess
import sys

from tests.helpers import REPO


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
