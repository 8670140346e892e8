"""Create rate: how many `POST /v1/runs` a deployment accepts while its workers execute at full speed.

Shapes (each on a fresh copy of the example agent, scripted model, no network):

  serve      one `tether serve` (API + embedded worker) on SQLite;
  split-N    one `tether api` + N `tether worker` processes on PostgreSQL (a scratch database).

This process is the client (a separate process on loopback). It offers `--rate` creates per second
for `--seconds` seconds (open loop: a request is sent on schedule whether or not earlier ones were
answered, at most `--in-flight` unanswered; a request that would exceed that cap is counted as
refused by the client, never silently dropped). The queue fills faster than the workers drain it,
so the workers execute at full speed all along. Reported:

- accepted creates/s: 202 answers / (first send -> last answer); p50/p99/max latency of the answers;
- then, with creates over, executed runs/s: the runs created (all of them) / (first create -> all
  final), i.e. the drain rate of the workers with the API busy in the first part.

    python benchmarks/create_rate.py --shapes serve,split-1,split-2,split-4 --rate 600 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))

from raw_http import ConnectionClosed, RawClient  # noqa: E402
from service_helpers import (  # noqa: E402
    Api,
    Fleet,
    create_key,
    free_port,
    machine_info,
    markdown_table,
    scratch_postgres,
    service_env,
)
from throughput import fresh_example  # noqa: E402

TASK = "Where is my order 12345?"
DEFAULT_PG = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Result:
    shape: str
    variant: str = "this checkout"
    round: int = 1
    offered: int = 0
    accepted: int = 0
    refused_by_client: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    create_wall_s: float = 0.0
    latency_s: list[float] = field(default_factory=list)
    executed: int = 0
    execute_wall_s: float = 0.0

    @property
    def creates_per_s(self) -> float:
        return self.accepted / self.create_wall_s

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latency_s)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def offer(port: int, key: str, rate: float, seconds: float, in_flight: int, result: Result) -> None:
    """Open-loop load: one POST every 1/rate seconds, at most `in_flight` unanswered.

    The client is `raw_http.RawClient` (plain asyncio streams), so its own CPU per request stays far
    below the server's and its queueing does not show up as server latency."""
    client = RawClient("127.0.0.1", port, {"Authorization": f"Bearer {key}"}, connections=in_flight)
    body = json.dumps({"input": TASK}).encode()
    pending: set[asyncio.Task[None]] = set()
    last_answer = [0.0]

    async def post() -> None:
        began = time.perf_counter()
        try:
            answer = await client.post("/v1/runs", body)
        except (OSError, ConnectionClosed) as exc:
            name = type(exc).__name__
            result.errors[name] = result.errors.get(name, 0) + 1
            return
        finally:
            last_answer[0] = time.perf_counter()
        if answer.status == 202:
            result.accepted += 1
            result.latency_s.append(last_answer[0] - began)
        else:
            code = str(answer.status)
            result.errors[code] = result.errors.get(code, 0) + 1

    total = int(rate * seconds)
    start = time.perf_counter()
    try:
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            result.offered += 1
            if len(pending) >= in_flight:
                result.refused_by_client += 1
                continue
            task = asyncio.create_task(post())
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=60)
    finally:
        await client.close()
    result.create_wall_s = last_answer[0] - start


def drain(api: Api, result: Result, began: float, bound_s: float) -> None:
    """Wait (bounded) until no run is queued or running; executed runs/s from the first create."""
    deadline = time.monotonic() + bound_s
    while True:
        open_runs = sum(
            len(api.client.get("/v1/runs", params={"status": s, "limit": 1}).json()["runs"])
            for s in ("queued", "running")
        )
        if not open_runs:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs still open after {bound_s}s")
        time.sleep(0.1)
    result.execute_wall_s = time.perf_counter() - began
    result.executed = result.accepted


def measure(
    shape: str, variant: tuple[str, str], round_: int, args: argparse.Namespace, root: Path
) -> Result:
    """One shape, served by one variant's code (`label`, source tree; '' for this checkout)."""
    result = Result(shape, variant[0], round_)
    project = fresh_example(root)
    if shape == "serve":
        database_url = f"sqlite+aiosqlite:///{root / 'tether.db'}"
        workers = 1
    else:
        database_url = args._scratch_url
        workers = int(shape.split("-", 1)[1])
    env = service_env(
        database_url=database_url,
        redis_url=None if shape == "serve" else (args.redis_url or None),
        data_dir=root / "data",
        code_cache=root / "code",
        lease_s=30.0,
        poll_s=0.2,
    )
    if variant[1]:  # the processes import Tether from that tree (PYTHONPATH precedes the install)
        env["PYTHONPATH"] = str(Path(variant[1]).resolve() / "src")
    key = create_key(project, env, user="u1", scopes="runs:write,runs:read")
    port = free_port()
    with Fleet(project, env, root / "logs") as fleet:
        if shape == "serve":
            procs = [fleet.start_serve(port, args.concurrency)]
        else:
            procs = [fleet.start_api(port)]
            procs += [fleet.start_worker(args.concurrency) for _ in range(workers)]
        with Api(port, key, timeout=60) as api:
            api.wait_ready(workers=workers, timeout=120, procs=procs)
            warm = Result("warmup")
            asyncio.run(offer(port, key, 20, 1, 8, warm))  # loads code paths; not measured
            drain(api, warm, time.perf_counter(), args.timeout)
            began = time.perf_counter()
            spy = profile(procs[0].pid, shape, args)
            asyncio.run(offer(port, key, args.rate, args.seconds, args.in_flight, result))
            if spy is not None:
                spy.wait(timeout=60)
            drain(api, result, began, args.timeout)
    return result


def profile(pid: int, shape: str, args: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """With `--profile DIR`: py-spy samples the API process (every thread) while the load is offered."""
    if args.profile is None:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(args.seconds)), "--threads"]
    command += ["--format", "raw", "--output", str(args.profile / f"{shape}.txt"), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _spread(values: list[float], digits: int = 0) -> str:
    """median (min-max)"""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def summary(results: list[Result]) -> list[str]:
    """Per shape and variant over the rounds: median with min and max."""
    lines = [
        "| shape | variant | rounds | **accepted creates/s** | p50 (ms) | p99 (ms) | **executed runs/s** |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.shape, r.variant), []).append(r)
    for (shape, variant), rs in groups.items():
        lines.append(
            f"| {shape} | {variant} | {len(rs)} | **{_spread([r.creates_per_s for r in rs])}** | "
            f"{_spread([r.pct_ms(0.5) for r in rs], 1)} | {_spread([r.pct_ms(0.99) for r in rs], 1)} | "
            f"**{_spread([r.executed / r.execute_wall_s for r in rs], 1)}** |"
        )
    return lines


def report(args: argparse.Namespace, results: list[Result]) -> str:
    header = (
        "| shape | variant | round | offered | accepted | **accepted creates/s** | p50 / p99 / max (ms) | "
        "refused by client (in-flight cap) | errors | **executed runs/s** |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        errors = ", ".join(f"{k}={v}" for k, v in sorted(r.errors.items())) or "0"
        lines.append(
            f"| {r.shape} | {r.variant} | {r.round} | {r.offered} | {r.accepted} | "
            f"**{r.creates_per_s:.0f}** | "
            f"{r.pct_ms(0.5):.1f} / {r.pct_ms(0.99):.1f} / {max(r.latency_s) * 1000:.1f} | "
            f"{r.refused_by_client} | {errors} | **{r.executed / r.execute_wall_s:.1f}** |"
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = (
        f"python benchmarks/create_rate.py --shapes {args.shapes} --rate {args.rate:g} "
        f"--seconds {args.seconds:g} --in-flight {args.in_flight} --concurrency {args.concurrency}"
        + (f" --variants {args.variants} --rounds {args.rounds}" if args.variants else "")
    )
    machine = machine_info(args.database_url if any(r.shape != "serve" for r in results) else None)
    return "\n".join(
        [
            f"# Create rate, {stamp}",
            "",
            f"`{command}`",
            "",
            *summary(results),
            "",
            "Every round, in the order run (shapes and variants interleaved):",
            "",
            *lines,
            "",
            "serve = `tether serve` on SQLite (API + 1 embedded worker); split-N = `tether api` + N x "
            f"`tether worker --concurrency {args.concurrency}` on PostgreSQL"
            f"{' + Redis' if args.redis_url else ''}. Executed runs/s: all accepted runs / "
            "(first create -> all final).",
            "",
            "Machine:",
            "",
            markdown_table(machine),
            "",
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="serve,split-2", help="serve, split-N (N workers), comma-separated")
    p.add_argument("--rate", type=float, default=600.0, help="offered creates per second")
    p.add_argument("--seconds", type=float, default=10.0, help="how long the load is offered")
    p.add_argument("--in-flight", type=int, default=64, help="client cap on unanswered requests")
    p.add_argument("--concurrency", type=int, default=8, help="runs in flight per worker")
    p.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL server for scratch databases")
    p.add_argument("--redis-url", default="", help="TETHER_REDIS_URL for the split shapes ('' for none)")
    p.add_argument("--timeout", type=float, default=900.0, help="bound on draining the queue (s)")
    p.add_argument("--profile", type=Path, help="py-spy the API process into DIR/<shape>.txt (collapsed)")
    p.add_argument(
        "--variants",
        default="",
        help="side by side: label=DIR,... (DIR a source tree, e.g. a `git archive` of main; "
        "empty DIR = this checkout); default: this checkout only",
    )
    p.add_argument("--rounds", type=int, default=1, help="rounds (every shape and variant in each)")
    p.add_argument("--out", type=Path, help="write the Markdown report here as well")
    args = p.parse_args()
    variants = [(label, path) for label, _, path in (v.partition("=") for v in args.variants.split(",") if v)]
    results: list[Result] = []
    for round_ in range(1, args.rounds + 1):
        for shape in [s for s in args.shapes.split(",") if s]:
            for variant in variants or [("this checkout", "")]:
                with tempfile.TemporaryDirectory(prefix="create-rate-") as tmp:
                    if shape == "serve":
                        results.append(measure(shape, variant, round_, args, Path(tmp)))
                    else:
                        with scratch_postgres(args.database_url, prefix="tether_create") as url:
                            args._scratch_url = url
                            results.append(measure(shape, variant, round_, args, Path(tmp)))
                r = results[-1]
                print(
                    f"round {round_} {shape} {variant[0]}: {r.creates_per_s:.0f} creates/s "
                    f"(p99 {r.pct_ms(0.99):.1f} ms), {r.executed / r.execute_wall_s:.1f} executed runs/s",
                    flush=True,
                )
    text = report(args, results)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
