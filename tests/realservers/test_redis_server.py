"""The Redis fixture itself: the server answers, persistence is off, each test starts empty."""

from __future__ import annotations

import redis

from tests.realservers.redis_server import RedisServer


def test_redis_answers_and_is_flushed_between_tests(redis_server: RedisServer, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0  # flushed for this test
        client.set("k", "v")
        assert client.config_get("save")["save"] == "" and client.config_get("appendonly")["appendonly"] == "no"
    finally:
        client.close()
    assert redis_server.running and redis_url.startswith("redis://127.0.0.1:")


def test_a_second_test_sees_nothing_of_the_first(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get("k") is None
    finally:
        client.close()


def test_a_restart_keeps_the_port(redis_server: RedisServer, redis_url: str) -> None:
    port = redis_server.port
    redis_server.restart()
    assert redis_server.port == port and redis_server.ping()
