"""The stall watch (tests/fixtures/loop_stalls.py) sees a callback that blocks the loop."""

from __future__ import annotations

import asyncio
import time

from tests.fixtures.loop_stalls import StallWatch, no_loop_stalls  # noqa: F401  (fixture)


async def test_a_callback_that_blocks_the_loop_is_reported() -> None:
    watch = StallWatch(asyncio.get_running_loop(), threshold=0.05).start()
    try:

        async def blocking() -> None:
            time.sleep(0.3)  # the stall itself: blocking the loop is what is detected

        await asyncio.create_task(blocking())
    finally:
        watch.stop()
    assert watch.stalls and watch.worst >= 0.3
    assert "blocking" in watch.report()


async def test_the_fixture_watches_the_test_loop(no_loop_stalls: StallWatch) -> None:  # noqa: F811
    assert no_loop_stalls.loop is asyncio.get_running_loop()
    assert no_loop_stalls.loop.get_debug()
