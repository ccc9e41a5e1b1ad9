"""Fault and fuzz suite: a real server (``python -m backend``) treated badly.

The fast subset runs in ``make test``; ``make test-faults`` runs the same tests bigger:

- ``FAULTS_N``: crash-loop uploads (10 by default, 100 in ``make test-faults``).
- ``FAULTS_EXAMPLES``: Schemathesis examples per operation (25 by default, 200 there).
- ``FAULTS_SEED``: the random seed (random by default; every test prints the one it used).
"""

from __future__ import annotations

import os
import random

import pytest

from tests.e2e.conftest import make_server, server  # noqa: F401  (fixtures, re-exported)

HOOKED_BACKEND = "tests.faults.hooked_backend"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


@pytest.fixture
def seed() -> int:
    """The run's seed: printed, so a failure can be replayed with ``FAULTS_SEED=...``."""
    value = env_int("FAULTS_SEED", random.randrange(1 << 32))
    print(f"FAULTS_SEED={value}")
    return value
