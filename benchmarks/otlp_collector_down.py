"""Does an OTLP collector that is down slow `tether run`? Four collectors, side by side.

Each sample is one process doing what `tether run` does on a copy of the example support agent
("Where is my order 12345?", scripted model, SQLite): build the telemetry, run, close the telemetry
(store spans, flush OTLP). It reports the **exit wait** (the close, timed inside the process: what a
collector that is down can add) and the whole process's wall time, with the collector:

- `none`: OTLP not configured (the baseline);
- `up`: a local receiver that answers every export with 200;
- `refused`: an address where nothing listens (connections are refused);
- `silent`: an address that accepts connections and never answers.

The sides are interleaved (one of each per round, in a shuffled order) so they share the machine's
noise (process wall time on a shared machine is dominated by imports and load: the exit wait is
the number to read). Reported per side: median, min and max, and the warning/error lines on stderr.
`--src` runs another checkout's code instead (its `src` folder first on PYTHONPATH), to measure the
code before a change the same way.

    python benchmarks/otlp_collector_down.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from service_helpers import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SIDES = ("none", "up", "refused", "silent")


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def collectors() -> Iterator[dict[str, str | None]]:
    """The address of each side's collector (None: OTLP not configured)."""
    up = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(128)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused_port = probe.getsockname()[1]
    try:
        yield {
            "none": None,
            "up": f"http://127.0.0.1:{up.server_address[1]}",
            "refused": f"http://127.0.0.1:{refused_port}",
            "silent": f"http://127.0.0.1:{silent.getsockname()[1]}",
        }
    finally:
        up.shutdown()
        up.server_close()
        silent.close()


# What `tether run` does, with the two phases timed: the run (claim to end) and the close of the
# telemetry at exit (storing spans, then flushing OTLP), the part a collector that is down slows.
PHASES = """
import asyncio, json, sys, time
from pathlib import Path
from tether.observe.logs import configure_logging
from tether.observe.service import Telemetry
from tether.rollout.releases import working_copy_release
from tether.runtime.service import Runtime
from tether.settings import Settings
from tether.store.repository import Store

async def main(project):
    settings = Settings()
    store = await Store.open(settings.database_url)
    telemetry = Telemetry(store, settings)
    runtime = Runtime(store, settings, data_dir=project / "data", observer=telemetry.observer)
    release = await working_copy_release(store, project)
    started = time.perf_counter()
    run = await runtime.submit(release, user_id="u1", origin="cli", input="Where is my order 12345?")
    run = await runtime.execute(run.id)
    ran = time.perf_counter()
    await telemetry.close()
    closed = time.perf_counter()
    await store.close()
    print(json.dumps({"status": str(run.status), "run_s": ran - started, "close_s": closed - ran}))

configure_logging(fmt="json", level="WARNING")
asyncio.run(main(Path(sys.argv[1])))
"""


def one_run(project: Path, endpoint: str | None, src: Path | None) -> tuple[float, float, int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["TETHER_DATABASE_URL"] = f"sqlite+aiosqlite:///{project / 'bench.db'}"
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    if src is not None:
        env["PYTHONPATH"] = str(src)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PHASES, str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the run failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    status = result["status"]
    warnings = 0
    for line in done.stderr.splitlines():
        try:
            level = json.loads(line).get("level")
        except ValueError:
            level = "warning" if "WARNING" in line or "ERROR" in line else None
        warnings += level in ("warning", "error", "critical")
    return elapsed, float(result["close_s"]), warnings, status


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="samples per side")
    parser.add_argument("--src", type=Path, default=None, help="another checkout's src folder to run instead")
    parser.add_argument(
        "--label", default="this commit", help="what --src (or this checkout) is, for the report"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    warnings: dict[str, list[int]] = {side: [] for side in SIDES}
    closes: dict[str, list[float]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp, collectors() as addresses:
        project = Path(tmp) / "support_agent"
        shutil.copytree(
            ROOT / "examples" / "support_agent", project, ignore=shutil.ignore_patterns(".tether")
        )
        one_run(project, None, args.src)  # warm-up: creates the database and the release
        for round_no in range(args.rounds):
            order = list(SIDES)
            rng.shuffle(order)
            for side in order:
                elapsed, close_s, warned, status = one_run(project, addresses[side], args.src)
                assert status == "succeeded", (side, status)
                times[side].append(elapsed)
                closes[side].append(close_s)
                warnings[side].append(warned)
            print(
                f"round {round_no + 1}/{args.rounds}: "
                + ", ".join(f"{s} {closes[s][-1]:.2f}s" for s in SIDES)
            )
    rows = [
        "| collector | runs | exit wait median s | min | max | process median s | min | max | warnings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side in SIDES:
        values, waits = times[side], closes[side]
        rows.append(
            f"| {side} | {len(values)} | {statistics.median(waits):.2f} | {min(waits):.2f} | "
            f"{max(waits):.2f} | "
            f"{statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} | "
            f"{', '.join(map(str, sorted(set(warnings[side]))))} |"
        )
    table = "\n".join(rows)
    print(table)
    if args.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    today = datetime.now(UTC).date().isoformat()
    slug = "before" if args.src is not None else "after"
    out = RESULTS / f"otlp-collector-down-{today}-{slug}.md"
    machine = "\n".join(f"- {key}: {value}" for key, value in machine_info())
    command = "python benchmarks/otlp_collector_down.py " + " ".join(
        a if not a.startswith("/") else "<checkout>/src" for a in sys.argv[1:]
    )
    out.write_text(
        f"# otlp_collector_down.py, {today} ({args.label})\n\n`{command}`\n\n{machine}\n\n{table}\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
