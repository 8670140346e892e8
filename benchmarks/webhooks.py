"""Webhooks: what the outbox adds to ending a run, and how fast the dispatcher delivers.

1. Outbox cost. `Store.finish_run` of a production run (origin `api`) also writes a webhook event and
   an online-eval job in its transaction; an eval run (origin `eval`) writes neither. Both kinds
   are finished here interleaved (api, eval, api, eval, ...) on the same store, so the difference
   of their medians is what the outbox costs per finished run.
2. Delivery. With one endpoint subscribed (a local HTTP receiver), `--events` runs end, then one
   dispatcher relays and sends until every delivery succeeded: deliveries/s, and per delivery the
   time from the run's end to the receiver's answer (p50/p99/max).

    python benchmarks/webhooks.py --databases sqlite,postgresql --runs 300 --events 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from service_helpers import machine_info, markdown_table, scratch_postgres  # noqa: E402

from tether.settings import Settings  # noqa: E402
from tether.store.records import RunOrigin, RunStatus, RunTotals  # noqa: E402
from tether.store.repository import Store  # noqa: E402
from tether.webhooks.dispatcher import Dispatcher  # noqa: E402

DEFAULT_PG = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 refuses a dispatcher's concurrent batch
    daemon_threads = True


class Receiver:
    def __init__(self) -> None:
        self.answered: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.answered[self.headers["webhook-id"]] = time.perf_counter()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


async def finish_one(store: Store, release: Any, origin: RunOrigin) -> float:
    run = await store.create_run(release=release, user_id="u", input="x", origin=origin, lease=("w", 60))
    started = time.perf_counter()
    await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=RunTotals(), output="ok")
    return (time.perf_counter() - started) * 1000


async def measure(url: str, runs: int, events: int) -> dict[str, str]:
    store = await Store.open(url)
    receiver = Receiver()
    try:
        release = await store.add_release(
            version="bench",
            agent_name="bench",
            kind="release",
            content_hash="0" * 64,
            snapshot={"config": {}},
        )
        # 1. interleaved finishes: production (outbox) and eval (none)
        api_ms: list[float] = []
        eval_ms: list[float] = []
        for _ in range(runs):
            api_ms.append(await finish_one(store, release, RunOrigin.API))
            eval_ms.append(await finish_one(store, release, RunOrigin.EVAL))
        # Events of those runs match no endpoint yet: relay them away (deleted) before subscribing.
        dispatcher = Dispatcher(store, Settings(webhook_allow_cidrs="127.0.0.1/32"))
        while await store.webhooks.pending_events():
            await dispatcher.relay()
        await store.webhooks.add_endpoint(
            tenant_id="default", url=receiver.url, events=["run.*"], created_by="b"
        )
        # 2. delivery
        ended: dict[str, float] = {}
        for _ in range(events):
            run = await store.create_run(
                release=release, user_id="u", input="x", origin=RunOrigin.API, lease=("w", 60)
            )
            await store.finish_run(run.id, "w", 60, status=RunStatus.SUCCEEDED, totals=RunTotals())
            ended[run.id] = time.perf_counter()
        started = time.perf_counter()
        delivered = 0
        while delivered < events:
            delivered += sum(1 for d in await dispatcher.tick() if d.status == "succeeded")
        took = time.perf_counter() - started
        await dispatcher.close()
        events_by_run = {
            e.run_id: e.id
            for e in [
                await store.webhooks.get_event(d.event_id)
                for d, _ in await store.webhooks.list_deliveries(limit=events)
            ]
        }
        lags = sorted((receiver.answered[events_by_run[r]] - t) * 1000 for r, t in ended.items())
    finally:
        receiver.server.shutdown()
        await store.close()
    api_med, eval_med = statistics.median(api_ms), statistics.median(eval_ms)
    return {
        "finish_run p50 api / eval (ms)": f"{api_med:.2f} / {eval_med:.2f}",
        "outbox cost p50 (ms)": f"{api_med - eval_med:+.2f}",
        "finish_run min/max api (ms)": f"{min(api_ms):.2f} / {max(api_ms):.2f}",
        "finish_run min/max eval (ms)": f"{min(eval_ms):.2f} / {max(eval_ms):.2f}",
        "deliveries/s": f"{events / took:.0f}",
        "end -> answered p50 / p99 / max (ms)": (
            f"{lags[len(lags) // 2]:.0f} / {lags[int(len(lags) * 0.99) - 1]:.0f} / {lags[-1]:.0f}"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--databases", default="sqlite", help="sqlite, postgresql, or both (comma-separated)")
    parser.add_argument("--runs", type=int, default=300, help="runs of each origin for the outbox cost")
    parser.add_argument("--events", type=int, default=300, help="events to deliver")
    args = parser.parse_args()
    rows: list[dict[str, str]] = []
    for database in args.databases.split(","):
        if database == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{folder}/bench.db"
                rows.append({"database": "sqlite", **asyncio.run(measure(url, args.runs, args.events))})
        else:
            with scratch_postgres(DEFAULT_PG) as url:
                rows.append({"database": "postgresql", **asyncio.run(measure(url, args.runs, args.events))})
    print(markdown_table(machine_info()))
    print()
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[c] for c in columns) + " |")


if __name__ == "__main__":
    main()
