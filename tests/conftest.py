"""Test-suite set-up: verify the IR after every pass, and helpers shared by the tests."""

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TENSORLANG_VERIFY", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/*.txt from the current compiler output")


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


def run_python(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (so that a crash fails the test, not the run)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
