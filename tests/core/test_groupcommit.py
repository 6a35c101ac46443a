"""Group commit: callers wait for the commit holding their item, and share it."""

from __future__ import annotations

import asyncio

import pytest

from civio.core.groupcommit import GroupCommitter


class Store:
    def __init__(self, *, poison: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.poison = poison

    async def write(self, batch: list[int]) -> list[int]:
        await asyncio.sleep(0.01)  # a commit takes time; callers queue up meanwhile
        if self.poison in batch:
            raise ValueError(f"cannot store {self.poison}")
        self.batches.append(batch)
        return [item * 10 for item in batch]


async def test_concurrent_items_share_batches_and_each_gets_its_result() -> None:
    store = Store()
    committer = GroupCommitter(store.write, max_batch=8, max_inflight=2)
    results = await asyncio.gather(*(committer.submit(i) for i in range(40)))
    assert results == [i * 10 for i in range(40)]
    assert sorted(i for batch in store.batches for i in batch) == list(range(40))
    assert len(store.batches) < 40
    assert max(len(batch) for batch in store.batches) <= 8


async def test_a_lone_item_is_written_without_waiting_for_company() -> None:
    store = Store()
    committer = GroupCommitter(store.write)
    assert await asyncio.wait_for(committer.submit(7), timeout=1) == 70
    assert store.batches == [[7]]


async def test_a_bad_item_fails_alone_and_the_others_are_stored() -> None:
    store = Store(poison=13)
    committer = GroupCommitter(store.write, max_batch=50)
    outcomes = await asyncio.gather(
        *(committer.submit(i) for i in range(20)), return_exceptions=True
    )
    assert isinstance(outcomes[13], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 13] == [i * 10 for i in range(20) if i != 13]
    assert 13 not in {i for batch in store.batches for i in batch}


async def test_a_caller_that_goes_away_does_not_cancel_the_write() -> None:
    store = Store()
    committer = GroupCommitter(store.write)
    waiting = asyncio.ensure_future(committer.submit(5))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.05)
    assert store.batches == [[5]]  # committed, never half-written
