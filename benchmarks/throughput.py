"""Throughput benchmark: runs per second and API overhead per step, two deployment shapes side by side.

Both shapes serve a fresh copy of the example agent (`examples/support_agent`, scripted model, no
network). Each run is "Where is my order 12345?" as user u1: model -> `lookup_order` -> model, 3 steps.

  (a) serve:  one `tether serve` process (API + embedded worker) on SQLite;
  (b) split:  one `tether api` + `--workers` `tether worker` processes on PostgreSQL (a scratch
              database on the `--database-url` server, dropped afterwards).

Per shape: wait for /readyz, run `--warmup` runs (not measured), then submit `--runs` runs through
HTTP with `--client-concurrency` requests in flight and poll until all are final. Reported:

- runs/s = runs / (first submit -> all final), the final moment detected by polling every 50 ms;
- run latency = finished_at - created_at (server clocks), mean / p50 / p95;
- in-loop latency = the sum of the run's step `latency_ms` (model and tool calls) from
  GET /v1/runs/{id}/steps;
- overhead per step = (mean run latency - mean in-loop latency) / steps: queueing, claiming, the
  durable step writes and polling, spread over the run's steps. It is split into the wait before a
  worker claimed the run (started_at - created_at) and the rest.

Then `--probe-runs` runs one at a time (POST with wait=30): the same numbers without a queue, and how
long after the run finished the API answered.

    python benchmarks/throughput.py --runs 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import (  # noqa: E402 (after the path tweak)
    Api,
    Fleet,
    Proc,
    create_key,
    free_port,
    machine_info,
    scratch_postgres,
    service_env,
)

EXAMPLE = REPO / "examples" / "support_agent"
TASK = "Where is my order 12345?"
DEFAULT_REDIS = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEFAULT_PG = os.environ.get("TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Shape:
    name: str
    description: str
    runs: int = 0
    wall_s: float = 0.0
    latency_s: list[float] = field(default_factory=list)
    queue_s: list[float] = field(default_factory=list)
    loop_s: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    submit_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    probe_client_s: list[float] = field(default_factory=list)
    """Unloaded: POST /v1/runs with wait=30, one run at a time, as the client saw it."""
    probe_latency_s: list[float] = field(default_factory=list)
    probe_queue_s: list[float] = field(default_factory=list)
    probe_loop_s: list[float] = field(default_factory=list)
    probe_steps: list[int] = field(default_factory=list)

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.wall_s

    @property
    def mean_steps(self) -> float:
        return statistics.fmean(self.steps)

    def overhead_per_step_ms(self) -> float:
        return (statistics.fmean(self.latency_s) - statistics.fmean(self.loop_s)) / self.mean_steps * 1000

    def queue_per_step_ms(self) -> float:
        return statistics.fmean(self.queue_s) / self.mean_steps * 1000

    def loop_per_step_ms(self) -> float:
        return statistics.fmean(self.loop_s) / self.mean_steps * 1000

    def probe_overhead_per_step_ms(self) -> float:
        steps = statistics.fmean(self.probe_steps)
        return (statistics.fmean(self.probe_latency_s) - statistics.fmean(self.probe_loop_s)) / steps * 1000

    def probe_queue_per_step_ms(self) -> float:
        return statistics.fmean(self.probe_queue_s) / statistics.fmean(self.probe_steps) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _open_runs(client: httpx.AsyncClient) -> int:
    """Runs not final yet (queued or running; nothing in this workload waits for approval)."""
    total = 0
    for status in ("queued", "running", "waiting_for_approval"):
        answer = await client.get("/v1/runs", params={"status": status, "limit": 1})
        answer.raise_for_status()
        total += len(answer.json()["runs"])
    return total


async def _batch(
    port: int, key: str, n: int, concurrency: int, bound_s: float
) -> tuple[float, list[str], list[float]]:
    """Submit n runs (at most `concurrency` requests in flight); return wall time to all final."""
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=limits,
    ) as client:
        gate = asyncio.Semaphore(concurrency)
        submit_s: list[float] = []

        async def submit() -> str:
            async with gate:
                began = time.monotonic()
                answer = await client.post("/v1/runs", json={"input": TASK})
                submit_s.append(time.monotonic() - began)
                answer.raise_for_status()
                return str(answer.json()["run_id"])

        began = time.monotonic()
        ids = await asyncio.gather(*(submit() for _ in range(n)))
        deadline = began + bound_s
        while await _open_runs(client):
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs still open after {bound_s}s")
            await asyncio.sleep(0.05)
        return time.monotonic() - began, list(ids), submit_s


def measure(
    shape: Shape, port: int, key: str, procs: list[Proc], workers: int, args: argparse.Namespace
) -> None:
    with Api(port, key) as api:
        api.wait_ready(workers=workers, timeout=120, procs=procs)
        if args.warmup:
            asyncio.run(_batch(port, key, args.warmup, args.client_concurrency, args.timeout))
        wall, ids, submit_s = asyncio.run(_batch(port, key, args.runs, args.client_concurrency, args.timeout))
        shape.runs, shape.wall_s, shape.submit_s = len(ids), wall, submit_s
        for _ in range(args.probe_runs):  # unloaded: one run at a time, the API waits for it
            began = time.monotonic()
            answer = api.client.post("/v1/runs", json={"input": TASK, "wait": 30})
            shape.probe_client_s.append(time.monotonic() - began)
            answer.raise_for_status()
            run = answer.json()
            if run["status"] != "succeeded":
                raise RuntimeError(f"probe run {run['run_id']} ended {run['status']}: {run['error']}")
            created, started, finished = (stamp(run[k]) for k in ("created_at", "started_at", "finished_at"))
            shape.probe_latency_s.append((finished - created).total_seconds())
            shape.probe_queue_s.append((started - created).total_seconds())
            steps = api.steps(run["run_id"])
            shape.probe_steps.append(len(steps))
            shape.probe_loop_s.append(sum(s["latency_ms"] or 0.0 for s in steps) / 1000)
        runs = api.runs()
        for run_id in ids:
            run = runs[run_id]
            shape.statuses[run["status"]] = shape.statuses.get(run["status"], 0) + 1
            created, started, finished = (stamp(run[k]) for k in ("created_at", "started_at", "finished_at"))
            shape.latency_s.append((finished - created).total_seconds())
            shape.queue_s.append((started - created).total_seconds())
            steps = api.steps(run_id)
            shape.steps.append(len(steps))
            shape.loop_s.append(sum(s["latency_ms"] or 0.0 for s in steps) / 1000)


def fresh_example(root: Path) -> Path:
    target = root / "support_agent"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".tether", "data", "__pycache__"))
    return target


def run_serve(args: argparse.Namespace, root: Path) -> Shape:
    shape = Shape("serve", f"`tether serve --concurrency {args.serve_concurrency}`, SQLite")
    project = fresh_example(root)
    env = service_env(
        database_url=f"sqlite+aiosqlite:///{root / 'tether.db'}",
        data_dir=root / "data",
        code_cache=root / "code",
        lease_s=args.lease_seconds,
        poll_s=args.poll_s,
    )
    key = create_key(project, env, user="u1", scopes="runs:write,runs:read")
    port = free_port()
    with Fleet(project, env, root / "logs") as fleet:
        server = fleet.start_serve(port, args.serve_concurrency)
        measure(shape, port, key, [server], 1, args)
    return shape


def run_split(args: argparse.Namespace, root: Path, database_url: str) -> Shape:
    shape = Shape(
        "split",
        f"`tether api` + {args.workers} x `tether worker --concurrency {args.worker_concurrency}`, "
        f"PostgreSQL{' + Redis' if args.redis_url else ''}",
    )
    project = fresh_example(root)
    env = service_env(
        database_url=database_url,
        redis_url=args.redis_url or None,
        data_dir=root / "data",
        code_cache=root / "code",
        lease_s=args.lease_seconds,
        poll_s=args.poll_s,
    )
    key = create_key(project, env, user="u1", scopes="runs:write,runs:read")
    port = free_port()
    with Fleet(project, env, root / "logs") as fleet:
        procs = [fleet.start_api(port)]
        procs += [fleet.start_worker(args.worker_concurrency) for _ in range(args.workers)]
        measure(shape, port, key, procs, args.workers, args)
    return shape


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def spread(values: list[float]) -> str:
    return f"{ms(pct(values, 0.5))} / {ms(pct(values, 0.95))}"


def mean_gap(later: list[float], earlier: list[float]) -> str:
    return ms(statistics.fmean(later) - statistics.fmean(earlier))


def rows(shapes: list[Shape]) -> list[tuple[str, ...]]:
    def row(label: str, cell: Callable[[Shape], str]) -> tuple[str, ...]:
        return (label, *(cell(s) for s in shapes))

    return [
        row("runs", lambda s: str(s.runs)),
        row("statuses", lambda s: ", ".join(f"{k}={v}" for k, v in sorted(s.statuses.items()))),
        row("steps per run (mean)", lambda s: f"{s.mean_steps:.2f}"),
        row("wall time, first submit -> all final (s)", lambda s: f"{s.wall_s:.2f}"),
        row("**runs/s**", lambda s: f"**{s.runs_per_s:.1f}**"),
        row("POST /v1/runs latency p50 / p95 (ms)", lambda s: spread(s.submit_s)),
        row("run latency mean (ms)", lambda s: ms(statistics.fmean(s.latency_s))),
        row("run latency p50 / p95 (ms)", lambda s: spread(s.latency_s)),
        row("in-loop model+tool latency per run, mean (ms)", lambda s: ms(statistics.fmean(s.loop_s))),
        row("in-loop latency per step (ms)", lambda s: f"{s.loop_per_step_ms():.2f}"),
        row("**overhead per step (ms)**", lambda s: f"**{s.overhead_per_step_ms():.1f}**"),
        row("... of which waiting to be claimed (ms/step)", lambda s: f"{s.queue_per_step_ms():.1f}"),
        row(
            "... of which executing: step writes, claims (ms/step)",
            lambda s: f"{s.overhead_per_step_ms() - s.queue_per_step_ms():.1f}",
        ),
        row("*unloaded: one run at a time, POST wait=30*", lambda s: ""),
        row("runs", lambda s: str(len(s.probe_steps))),
        row("run latency mean (ms)", lambda s: ms(statistics.fmean(s.probe_latency_s))),
        row("**overhead per step (ms)**", lambda s: f"**{s.probe_overhead_per_step_ms():.1f}**"),
        row("... of which waiting to be claimed (ms/step)", lambda s: f"{s.probe_queue_per_step_ms():.1f}"),
        row("POST wait=30 answered after, mean (ms)", lambda s: ms(statistics.fmean(s.probe_client_s))),
        row(
            "... later than the run finished, mean (ms)",
            lambda s: mean_gap(s.probe_client_s, s.probe_latency_s),
        ),
    ]


def ratios(a: Shape, b: Shape) -> list[tuple[str, str]]:
    def executing(s: Shape) -> float:
        return s.overhead_per_step_ms() - s.queue_per_step_ms()

    latency = statistics.fmean(b.latency_s) / statistics.fmean(a.latency_s)
    return [
        ("runs/s, split / serve", f"{b.runs_per_s / a.runs_per_s:.2f}x"),
        ("mean run latency, split / serve", f"{latency:.2f}x"),
        ("overhead per step, split / serve", f"{b.overhead_per_step_ms() / a.overhead_per_step_ms():.2f}x"),
        ("... executing part, split / serve", f"{executing(b) / executing(a):.2f}x"),
        (
            "unloaded overhead per step, split / serve",
            f"{b.probe_overhead_per_step_ms() / a.probe_overhead_per_step_ms():.2f}x",
        ),
    ]


def markdown(header: tuple[str, ...], body: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=300, help="measured runs per shape")
    p.add_argument("--warmup", type=int, default=16, help="unmeasured runs first (loads code, seeds data)")
    p.add_argument("--probe-runs", type=int, default=20, help="then this many, one at a time")
    p.add_argument("--client-concurrency", type=int, default=8, help="POSTs in flight at once")
    p.add_argument("--serve-concurrency", type=int, default=8, help="(a) embedded worker concurrency")
    p.add_argument("--workers", type=int, default=2, help="(b) worker processes")
    p.add_argument("--worker-concurrency", type=int, default=4, help="(b) runs per worker process")
    p.add_argument("--database-url", default=DEFAULT_PG, help="PostgreSQL server for the scratch database")
    p.add_argument("--redis-url", default=DEFAULT_REDIS, help="(b) TETHER_REDIS_URL; '' for none")
    p.add_argument("--poll-s", type=float, default=0.2, help="TETHER_WORKER_POLL_S (0.2 is the default)")
    p.add_argument("--lease-seconds", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=600.0, help="bound on one batch (s)")
    p.add_argument("--shapes", default="serve,split", help="comma-separated subset of serve,split")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--no-write", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wanted = {s.strip() for s in args.shapes.split(",")}
    started = datetime.now(UTC)
    machine = machine_info(args.database_url if "split" in wanted else None)
    shapes: list[Shape] = []
    with tempfile.TemporaryDirectory(prefix="tether-throughput-") as tmp:
        if "serve" in wanted:
            print("measuring (a) tether serve on SQLite ...", flush=True)
            shapes.append(run_serve(args, Path(tmp) / "serve"))
        if "split" in wanted:
            print("measuring (b) tether api + workers on PostgreSQL ...", flush=True)
            with scratch_postgres(args.database_url, "tether_throughput") as url:
                shapes.append(run_split(args, Path(tmp) / "split", url))

    header = ("", *(f"({chr(97 + i)}) {s.name}" for i, s in enumerate(shapes)))
    body = rows(shapes)
    print()
    width = max(len(r[0]) for r in body)
    for row in [header, *body]:
        print(row[0].replace("**", "").ljust(width), *(c.replace("**", "").rjust(16) for c in row[1:]))
    extra = ratios(shapes[0], shapes[1]) if len(shapes) == 2 else []
    for name, value in extra:
        print(name.ljust(width), value.rjust(16))

    if not args.no_write:
        args.results.mkdir(parents=True, exist_ok=True)
        out = args.results / f"throughput-{started:%Y-%m-%d}.md"
        out.write_text(render(args, shapes, header, body, extra, machine, started), encoding="utf-8")
        print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    ok = all(s.statuses == {"succeeded": s.runs} for s in shapes)
    return 0 if ok else 1


def render(
    args: argparse.Namespace,
    shapes: list[Shape],
    header: tuple[str, ...],
    body: list[tuple[str, ...]],
    extra: list[tuple[str, str]],
    machine: list[tuple[str, str]],
    started: datetime,
) -> str:
    lines: list[Any] = [
        f"# Throughput, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"`python benchmarks/throughput.py --runs {args.runs} --client-concurrency {args.client_concurrency} "
        f"--serve-concurrency {args.serve_concurrency} --workers {args.workers} "
        f"--worker-concurrency {args.worker_concurrency}`",
        "",
        f'Workload: the example support agent (scripted model), "{TASK}" as user u1 '
        f"(model -> lookup_order -> model). {args.warmup} warm-up runs per shape are not measured. "
        f"Worker poll {args.poll_s:g} s, lease {args.lease_seconds:g} s; rate limits raised out of the way.",
        "",
        "## Machine",
        "",
        markdown(("", ""), machine),
        "",
        "## Shapes",
        "",
        *[f"- ({chr(97 + i)}) {s.name}: {s.description}" for i, s in enumerate(shapes)],
        "",
        "## Results",
        "",
        markdown(header, body),
        "",
    ]
    if extra:
        lines += ["## Ratios", "", markdown(("", ""), extra), ""]
    lines += [
        "## How to read it",
        "",
        "- Overhead per step = (mean run latency - mean in-loop latency) / steps. It includes the wait "
        "for a worker to claim the run, the durable writes before and after every step (the "
        "lease-fenced transactions), and the run's final write.",
        f"- Under load (all {args.runs} runs submitted at once) submissions outpace execution, so the "
        "loaded overhead is mostly queueing: a run waits for the runs ahead of it. The executing part "
        "and the unloaded rows are the per-step cost of Tether itself.",
        f"- Unloaded, a run waits on average half a poll interval ({args.poll_s:g} s) or more to be "
        "claimed by a `tether worker`, which polls when idle; `tether serve`'s embedded worker is woken "
        "by the API when it accepts a run or records a decision.",
        "- POST /v1/runs with `wait` answers as soon as the API hears the run changed. In (a) the "
        "worker shares the API's notifier; in (b) `tether worker` publishes a wake-up through Redis "
        "for every event it writes (without Redis, the API would notice on its 1 s poll): the "
        "'later than the run finished' row.",
        "- The in-loop latency is what the model and the tool took (the scripted model answers in "
        "microseconds and `lookup_order` is one SQLite query), so almost all of the latency here is "
        "Tether's own. SQLite opens a new connection for every store call (NullPool; about 20 per "
        "3-step run, ~6 ms each on this machine), and (a) runs the API, the worker and all SQLite "
        "I/O in one process.",
        "- Both shapes run on the same machine as the client and PostgreSQL; with 2 CPUs they compete "
        "for them.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
