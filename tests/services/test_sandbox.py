"""Sandbox: calls in a child process under a memory and a time limit."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from backend.errors import SecurityRejected
from backend.services.sandbox import ChildCrashed, LimitExceeded, Sandbox
from tests.services import sandbox_calls as calls

MIB = 1 << 20


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(memory_bytes=128 * MIB, timeout=5.0, workers=2, preload=("tests.services.sandbox_calls",),
                  retire_growth=16 * MIB)
    yield box
    box.close()


def test_a_call_runs_in_a_child_and_returns(sandbox: Sandbox) -> None:
    assert sandbox.call(calls.add, 2, 3) == 5
    assert sandbox.call(calls.pid) != os.getpid()
    assert sandbox.children == 1
    assert sandbox.call(calls.pid) == sandbox.call(calls.pid)  # the child is reused


def test_a_refusal_reaches_the_caller_whole(sandbox: Sandbox) -> None:
    with pytest.raises(SecurityRejected) as caught:
        sandbox.call(calls.refuse, "app.alert(1)")
    assert caught.value.message == "refused: app.alert(1)"
    assert caught.value.body()["findings"] == [{"kind": "javascript", "detail": "app.alert(1)"}]
    assert sandbox.call(calls.add, 1, 1) == 2


def test_past_the_memory_limit_the_call_is_refused_and_the_child_replaced(sandbox: Sandbox) -> None:
    first = sandbox.call(calls.pid)
    with pytest.raises(LimitExceeded) as caught:
        sandbox.call(calls.allocate, 256)
    assert caught.value.limit == "memory"
    assert sandbox.call(calls.allocate, 32) == 32 * MIB  # within the limit
    assert sandbox.call(calls.pid) != first


def test_past_the_time_limit_the_child_is_killed() -> None:
    box = Sandbox(memory_bytes=64 * MIB, timeout=0.5, preload=("tests.services.sandbox_calls",))
    try:
        child = box.call(calls.pid)
        started = time.monotonic()
        with pytest.raises(LimitExceeded) as caught:
            box.call(calls.sleep, 30)
        assert caught.value.limit == "time" and time.monotonic() - started < 3
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        assert box.call(calls.add, 1, 2) == 3
    finally:
        box.close()


def test_a_crash_is_reported_and_the_next_call_works(sandbox: Sandbox) -> None:
    with pytest.raises(ChildCrashed, match="exit code"):
        sandbox.call(calls.crash)
    assert sandbox.call(calls.add, 2, 2) == 4


def test_a_child_that_kept_memory_retires(sandbox: Sandbox) -> None:
    first = sandbox.call(calls.pid)
    sandbox.call(calls.allocate, 48)  # past retire_growth: the child exits after answering
    assert sandbox.call(calls.pid) != first


def test_cpu_work_in_the_child_does_not_hold_the_callers_gil(sandbox: Sandbox) -> None:
    worker = threading.Thread(target=sandbox.call, args=(calls.spin, 1.0))
    worker.start()
    time.sleep(0.1)
    gaps = []
    while worker.is_alive():
        t = time.perf_counter()
        time.sleep(0.005)
        gaps.append(time.perf_counter() - t)
    worker.join()
    assert max(gaps) < 0.1


def test_an_idle_child_exits_by_itself() -> None:
    box = Sandbox(memory_bytes=64 * MIB, timeout=5, preload=("tests.services.sandbox_calls",), idle_seconds=0.4)
    try:
        child = psutil.Process(box.call(calls.pid))
        child.wait(timeout=5)
        assert box.call(calls.add, 3, 4) == 7  # a new child
    finally:
        box.close()


def test_close_ends_every_child(sandbox: Sandbox) -> None:
    child = psutil.Process(sandbox.call(calls.pid))
    sandbox.close()
    child.wait(timeout=5)
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.call(calls.add, 1, 1)


def test_an_idle_child_leaves_and_is_collected() -> None:
    """A child with nothing to do exits after ``idle_seconds``, and the sandbox collects
    it then (no zombie left until the next call); the next call starts a new one."""
    box = Sandbox(memory_bytes=256 << 20, timeout=10, idle_seconds=0.5)
    try:
        assert box.call(os.getpid) != os.getpid()
        child = box._idle[0].process
        deadline = time.monotonic() + 10
        while box._idle and time.monotonic() < deadline:
            time.sleep(0.1)
        assert box.children == 0 and box._idle == []
        assert child.returncode is not None, "exited but not collected: a zombie"
        assert box.call(os.getpid) != child.pid
    finally:
        box.close()
