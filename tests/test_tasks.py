"""``cancel_and_wait`` ends a task even when the task swallows a cancellation, as a task inside
``asyncio.wait_for`` does before Python 3.12 when the cancellation arrives just as the awaited
operation completes (redis-py sends every command through ``wait_for``)."""

from __future__ import annotations

import asyncio
import sys
import time

from websocket_realtime_engine.tasks import RECANCEL_AFTER, cancel_and_wait


async def a_watch_loop(sent: asyncio.Future[None], looping: asyncio.Event) -> None:
    """Like the broker's health watch: send (through wait_for), then go on looping until cancelled."""
    await asyncio.wait_for(sent, timeout=10)
    while True:
        looping.set()
        await asyncio.sleep(0.01)


async def started_and_cancelled_as_it_sends() -> tuple[asyncio.Task[None], asyncio.Event]:
    """A watch loop cancelled in the loop iteration in which its send completes."""
    sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    looping = asyncio.Event()
    task = asyncio.create_task(a_watch_loop(sent, looping))
    await asyncio.sleep(0)  # the task now waits inside wait_for
    sent.set_result(None)
    task.cancel()
    return task, looping


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again() -> None:
    task, looping = await started_and_cancelled_as_it_sends()
    started = time.monotonic()
    await cancel_and_wait(task)
    assert task.cancelled()
    assert time.monotonic() - started < RECANCEL_AFTER * 4
    if sys.version_info < (3, 12):  # the race this module exists for: the first cancellation was lost
        assert looping.is_set()


async def test_before_python_3_12_a_plain_cancel_and_await_would_wait_forever() -> None:
    task, looping = await started_and_cancelled_as_it_sends()
    done, _ = await asyncio.wait({task}, timeout=0.3)
    if sys.version_info < (3, 12):
        assert not done and looping.is_set(), "wait_for no longer swallows the cancellation"
    else:
        assert done
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_results_errors_and_none_are_taken_in_stride() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def returns() -> int:
        return 1

    failing, returning = asyncio.create_task(fails()), asyncio.create_task(returns())
    await asyncio.sleep(0)
    sleeping = asyncio.create_task(asyncio.sleep(60))
    await cancel_and_wait(failing, None, returning, sleeping)
    assert failing.done() and returning.result() == 1 and sleeping.cancelled()


async def test_cancelled_itself_while_it_waits_it_still_ends_its_tasks_then_raises() -> None:
    """As the broker's reader ends its health watch in a ``finally`` while ``stop()`` cancels it again."""
    swallow_until = time.monotonic() + RECANCEL_AFTER * 2.5

    async def stubborn() -> None:  # swallows every cancellation for a while
        while True:
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                if time.monotonic() >= swallow_until:
                    raise

    inner = asyncio.create_task(stubborn())

    async def outer() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await cancel_and_wait(inner)

    task = asyncio.create_task(outer())
    await asyncio.sleep(0)
    try:
        await cancel_and_wait(task)  # cancels outer, then again while outer is still ending inner
        assert task.cancelled()
        assert inner.cancelled(), "outer gave up on inner when it was cancelled again"
    finally:
        await cancel_and_wait(inner)  # a failed run leaves no task behind
