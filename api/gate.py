"""At most ``limit`` requests of one process at work at once; the others wait their turn
without holding a thread, and get 503 with ``Retry-After`` after a bounded wait.

Why: sync handlers and dependencies run in anyio's thread pool (40 threads). A request holds
its store connection from its first dependency to its response, and between those it holds
no thread. Without a limit, 64 clients meant 40 threads each waiting for one of the pool's 15
connections while the requests holding those connections waited for a thread: nothing moved
until the pool's 30 s timeout (issue 16). With at most ``limit`` requests at work, each holding
at most one connection, and a pool of at least ``limit`` connections, no request ever waits
for a connection, and the waiting happens here, on the event loop, where it costs nothing.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import busy

BUSY = "the server is busy (every worker slot is taken); nothing was written, retry shortly"


class InFlightGate:
    def __init__(self, app: ASGIApp, *, limit: int, wait: float) -> None:
        self.app = app
        self.limit = limit
        self.wait = wait
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # made on the server's event loop, at its first request
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), self.wait)
            except TimeoutError:
                await busy(Request(scope), BUSY)(scope, receive, send)
                return
        else:
            await slots.acquire()
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()
