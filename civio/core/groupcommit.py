"""Group commit: concurrent writers share one transaction instead of one each.

Under load most of an accept's cost is the transaction around one tiny insert (begin,
statement round trips, commit, the WAL flush). ``GroupCommitter.submit`` parks the caller
until its item is committed, and a single flusher writes everything that queued up in the
meantime in one transaction, so 64 concurrent accepts cost a handful of commits instead of
64. Durability is unchanged: ``submit`` returns only after the commit that holds the item,
and raises if that commit failed. No timer is involved: an idle system writes an item as
soon as it arrives; batching only happens when writers are already waiting.

A batch that fails is retried one item at a time, so one bad item fails alone; but not
when the database connection was lost (``is_database_unavailable``): then no item is to
blame, and every one of them is reported failed at once (the API's 503), never written
again. Writing a batch again after a dropped connection could only fail item by item
while the database is away, or, had the lost connection's COMMIT landed after all, try to
store the same items a second time. PostgreSQL's fast shutdown (a restart) answers a
COMMIT it has received before it ends the session, so a 503 means "not stored"; only a
connection cut between the commit and its answer (a crash, a network partition) leaves
the outcome unknown, as for any database client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from civio.core.db_unavailable import is_database_unavailable

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchWriter = Callable[[list[Item]], Awaitable[list[Result]]]


class GroupCommitter(Generic[Item, Result]):
    """Coalesces concurrent ``submit`` calls into batches written by ``write``.

    ``write`` receives the batch and returns one result per item, in order, after its
    transaction committed. ``max_inflight`` batches may be in flight at once (each on its own
    connection), so the next batch is being filled while the previous one commits.
    """

    def __init__(
        self,
        write: BatchWriter[Item, Result],
        *,
        max_batch: int = 200,
        max_inflight: int = 2,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flushing = 0  # counted synchronously: a finished flusher is never counted
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until done

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flushing < self._max_inflight:
            self._flushing += 1
            flusher = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(flusher)
            flusher.add_done_callback(self._tasks.discard)
        # The write goes on even if this caller goes away (a client disconnect): the item
        # is either committed or reported failed to nobody, never half-written.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            # One turn of the loop lets every request already in flight join this batch.
            await asyncio.sleep(0)
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write_batch(batch)
        finally:
            self._flushing -= 1

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or is_database_unavailable(exc):
                for _, future in batch:
                    _settle(future, exc)
                return
            for one in batch:  # isolate the item that failed the batch
                await self._write_batch([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)


def _settle(future: asyncio.Future[Result], outcome: Result | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
