"""``Streamed``: what long-running verbs return (ingest, reindex).

One value serves both callers: a front end iterates it for progress, a script awaits it for
the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from typing import Any, Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")


class Streamed(Generic[P, R]):
    """A verb's progress events, which can also be simply awaited for its result.

    ``async for event in library.ingest(...)`` yields the progress events and then the
    result; ``await library.ingest(...)`` runs to the end and returns only the result.
    Closing the iteration early (``aclose``, Ctrl-C) stops the work cleanly.
    """

    def __init__(self, events: AsyncGenerator[P | R, None], result_type: type[R]) -> None:
        self._events = events
        self._result_type = result_type

    def __aiter__(self) -> AsyncIterator[P | R]:
        return self

    async def __anext__(self) -> P | R:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop early (the run is recorded as interrupted)."""
        await self._events.aclose()

    def __await__(self) -> Generator[Any, None, R]:
        return self._drain().__await__()

    async def _drain(self) -> R:
        result: R | None = None
        async with contextlib.aclosing(self._events) as events:
            async for event in events:
                if isinstance(event, self._result_type):
                    result = event
        assert result is not None
        return result
