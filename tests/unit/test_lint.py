"""The code has no mistakes a linter finds without running it (pyproject's [tool.ruff.lint]):
a name used but never defined, an import left unused, a logging call with one argument too
many (that one lost /metrics warnings to a logging error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing_in_the_services_the_tests_and_the_deploy_scripts():
    ruff = Path(sys.executable).with_name("ruff")
    run = subprocess.run([str(ruff), "check", "--no-cache", "services", "tests", "deploy"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
