"""Client tests reuse the end-to-end fixtures (a real ``python -m backend`` process).

Imported explicitly: ``pytest_plugins`` is only allowed in the root conftest. ``blackhole``
is a server that never answers a connect.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import make_server, server  # noqa: F401  (fixtures)


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose TCP connects hang: a listener that never accepts, its queue full, so
    the kernel drops further SYNs (what a firewalled or vanished host looks like)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers: list[socket.socket] = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for c in fillers:
            c.close()
        srv.close()
