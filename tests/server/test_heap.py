"""The garbage collector's settings once the server is up (server/heap.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from server import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    yield
    if heap._frozen_after_full in gc.callbacks:
        gc.callbacks.remove(heap._frozen_after_full)
    gc.unfreeze()


class Node:
    other: object = None


def cycle(holder: list[Node]) -> weakref.ref[Node]:
    """Two objects that refer to each other, held by ``holder`` until it lets them go."""
    one, two = Node(), Node()
    one.other, two.other = two, one
    holder.append(one)
    return weakref.ref(one)


async def test_settle_freezes_what_the_start_built(restored_gc: None) -> None:
    gc.unfreeze()
    heap.settle()
    assert gc.get_freeze_count() > 1000  # this test process's modules, at least
    assert heap._frozen_after_full in gc.callbacks


async def test_survivors_of_a_whole_heap_collection_are_frozen(restored_gc: None) -> None:
    heap.settle()
    frozen = gc.get_freeze_count()
    kept = [Node() for _ in range(1000)]
    gc.collect()
    await asyncio.sleep(0)  # the freeze runs in the loop's next turn
    assert gc.get_freeze_count() >= frozen + 1000
    assert all(gc.is_tracked(node) for node in kept)


async def test_new_garbage_cycles_go_at_once_and_frozen_ones_at_the_refresh(
    restored_gc: None,
) -> None:
    heap.settle()
    held: list[Node] = []
    fresh = cycle(held)
    held.clear()
    gc.collect(1)
    assert fresh() is None  # never frozen: the younger generations free it

    frozen = cycle(held)
    gc.collect()
    await asyncio.sleep(0)  # frozen while held (a connection's objects, say) ...
    held.clear()
    gc.collect()
    assert frozen() is not None  # ... then garbage: kept until the refresh
    took = heap.refresh()
    assert frozen() is None
    assert took >= 0
