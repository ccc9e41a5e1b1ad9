"""Stopping background tasks the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None], *, swallow_errors: bool = False) -> None:
    """Cancel every task, then wait for each to end. An error a task raised on its way
    out reaches the caller unless ``swallow_errors`` (for tasks that log their own)."""
    live = [t for t in tasks if t is not None]
    quiet: tuple[type[BaseException], ...] = (asyncio.CancelledError, Exception) if swallow_errors else (
        asyncio.CancelledError,)
    for task in live:
        task.cancel()
    for task in live:
        with contextlib.suppress(*quiet):
            await task


async def outlive(future: asyncio.Future[Any]) -> None:
    """Wait for ``future`` to end without raising its error (the caller is already
    raising a more telling one), and mark that error as seen."""
    await asyncio.wait([future])
    if not future.cancelled():
        future.exception()
