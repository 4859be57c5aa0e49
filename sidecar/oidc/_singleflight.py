"""One in-flight fetch per cache, shared by every concurrent caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs ``fn`` at most once at a time; concurrent callers share its outcome.

    A sign-in burst (or a flood of tokens with an unknown ``kid``) therefore
    costs Entra one request, not one per caller. The fetch runs as its own task
    so that a caller giving up (client disconnect, cancellation) does not abort
    it for the others.
    """

    def __init__(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._fn = fn
        self._task: asyncio.Task[T] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> asyncio.Task[T]:
        """Start a run unless one is in flight; return the in-flight task."""
        if self._task is None:
            task = asyncio.create_task(self._fn())
            self._task = task
            task.add_done_callback(self._finished)
        return self._task

    async def run(self) -> T:
        """Join the in-flight run (starting one if needed) and return its result."""
        return await asyncio.shield(self.start())

    async def wait(self) -> None:
        """Wait for the in-flight run, if any, ignoring its outcome."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])

    async def aclose(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    def _finished(self, task: asyncio.Task[T]) -> None:
        if self._task is task:
            self._task = None
        # Mark the outcome as retrieved: background runs nobody awaits must not
        # trigger asyncio's "exception was never retrieved" report; the fetch
        # functions log their own failures.
        if not task.cancelled():
            task.exception()
