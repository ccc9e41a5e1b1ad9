"""Real servers for tests: PostgreSQL, SeaweedFS (and Redis), started on loopback on free
ports in private temporary directories, and stopped, with nothing left running, at the
end of the session. Each module is a pytest plugin registered in ``tests/conftest.py``.

Installed by ``make postgres`` / ``make seaweedfs`` (``make test`` runs both). Where a
server is missing, its fixtures skip, unless ``STREAMING_TEST_REQUIRE_SERVERS=1``
(``make test`` sets it): then they fail, so CI never passes by skipping.
"""
