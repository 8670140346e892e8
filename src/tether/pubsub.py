"""Listening on a Redis channel for as long as a process lives, through Redis outages.

Event-stream wake-ups (runtime/notify.py) and live-configuration announcements (live/config.py)
both only say "look again": a message lost while Redis is away costs one poll interval. So the
listener resubscribes with a growing pause after a failure and logs the outage once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tether.outages import OutageLog


async def listen_forever(
    redis: Any, channel: str, on_message: Callable[[str], None], outage: OutageLog
) -> None:
    """Call `on_message` with each message's text on `channel` until cancelled."""
    pause = 0.5
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                pause = 0.5
                outage.succeeded()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        on_message(data.decode() if isinstance(data, bytes) else str(data))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # callers fall back to polling meanwhile
            outage.failed(exc)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 30.0)
