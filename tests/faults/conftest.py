"""Fault and fuzz suite: a real server (``python -m backend``) treated badly.

The fast subset runs in ``make test``; ``make test-faults`` runs the same tests bigger:

- ``FAULTS_N``: crash-loop uploads (10 by default, 100 in ``make test-faults``).
- ``FAULTS_EXAMPLES``: Schemathesis examples per operation (25 by default, 200 there).
- ``FAULTS_SEED``: the random seed (random by default; every test prints the one it used).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import ServerProcess, make_server  # noqa: F401  (a fixture, re-exported)
from tests.faults.victim import IDLE_TIMEOUT, SIZE
from tests.pdfgen import make_pdf

HOOKED_BACKEND = "tests.faults.hooked_backend"
_REPORTS: list[str] = []


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


@pytest.fixture
def report() -> Callable[[str], None]:
    """``report(line)``: a line for the "fault suite" section at the end of the run
    (shown with ``-q`` too: what was counted, not only that it passed)."""
    return _REPORTS.append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORTS:
        terminalreporter.section("fault suite")
        for line in _REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture
def seed() -> int:
    """The run's seed: printed, so a failure can be replayed with ``FAULTS_SEED=...``."""
    value = env_int("FAULTS_SEED", random.randrange(1 << 32))
    print(f"FAULTS_SEED={value}")
    return value


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("bad_input") / "victim.pdf"
    make_pdf(path, SIZE, text="Bad input", seed=7)
    return path.read_bytes()


@pytest.fixture(scope="session")
def bad_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for every bad-input and race test (each has its own session); many
    sessions may be open at once; a quiet body is dropped after a second."""
    server = ServerProcess(tmp_path_factory.mktemp("bad_server"), {
        "STREAMING_MAX_CONCURRENT_UPLOADS": "1000", "STREAMING_PROGRESS_INTERVAL_SECONDS": "0",
        "STREAMING_BODY_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        # the perimeter's limits have tests of their own (tests/api/test_limits.py)
        "STREAMING_RATE_LIMIT_PER_MINUTE": "0", "STREAMING_IP_RATE_LIMIT_PER_MINUTE": "0",
        "STREAMING_MAX_OPEN_SESSIONS_PER_OWNER": "1000",
    })
    server.start()
    yield server
    server.stop(timeout=5)
    print(f"----- server log {server.log_path} -----\n{server.log_tail()}")
