"""Schemathesis against ``/openapi.json`` of a real server on loopback.

Every operation of the schema is called with generated requests (the examples,
coverage and fuzzing phases: valid and invalid data), then in sequences that follow
the links between operations (the stateful phase: ``/initiate`` then the chunk,
``/resume``, ``/complete`` and ``/cancel`` of the session it made). Checked on every
answer: never a 5xx, a status the schema lists for the operation, and a body and
headers that match the schema's response for that status.

``FAULTS_EXAMPLES`` sets the examples per operation (25 in ``make test``, 200 in
``make test-faults``); ``FAULTS_SEED`` replays a run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess
from tests.faults.conftest import env_int

pytestmark = pytest.mark.e2e

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance",
])
TIMEOUT = 900
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_finds_nothing(make_server: object, tmp_path: Path, seed: int,
                                    report: Callable[[str], None]) -> None:
    examples = env_int("FAULTS_EXAMPLES", 25)
    # many sessions at once (the fuzzer opens hundreds), so the chunk endpoints are reached
    server: ServerProcess = make_server(STREAMING_MAX_CONCURRENT_UPLOADS="100000")  # type: ignore[operator]
    output = tmp_path / "schemathesis.txt"
    argv = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{server.base_url}/openapi.json",
        "--checks", CHECKS, "--max-examples", str(examples), "--seed", str(seed),
        "--workers", "1", "--request-timeout", "30", "--no-color", "--suppress-health-check", "all",
    ]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "SCHEMATHESIS_HOOKS": ""}
    done = subprocess.run(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=TIMEOUT)
    output.write_text(done.stdout)
    wanted = ("generated", "Scenarios:", "API Links:")
    summary = [line.strip() for line in done.stdout.splitlines() if any(w in line for w in wanted)]
    report(f"schemathesis, {examples} examples per operation (FAULTS_SEED={seed}): {'; '.join(summary)}")
    assert done.returncode == 0, f"schemathesis found problems (FAULTS_SEED={seed}):\n{done.stdout[-20000:]}"
    server.assert_no_tracebacks()
