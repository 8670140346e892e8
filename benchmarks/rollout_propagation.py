"""Rollout drills (c) and (d), as real processes on PostgreSQL.

(c) A weight change reaches every process: 2 `tether api` + 2 `tether worker` on a scratch PostgreSQL
    database (with and without Redis). The script starts a canary, then alternately pauses (weight 0)
    and resumes it (weight 5) through the HTTP API, `--changes` times. Every process logs
    `deployment snapshot loaded: <agent>=<revision>` (JSON, with a UTC timestamp) when it loads a new
    deployment revision; the latency of a change on a process is that log line's time minus the time
    the change request was sent (an upper bound: it includes the HTTP round trip and the commit).
(d) Shadow never executes a write: the example support agent, live release v1 and shadow release v2
    with share 1.0, receives refund requests; the live runs park for approval, the shadow copies run
    to the end, and the example's `refunds` and `refund_notes` tables must not change.

    python benchmarks/rollout_propagation.py --out benchmarks/results/rollout-propagation-DATE.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_helpers import (  # noqa: E402
    Api,
    Fleet,
    create_key,
    free_port,
    machine_info,
    markdown_table,
    scratch_postgres,
    service_env,
    tether,
    write_project,
)

MARK = "deployment snapshot loaded: "


def _loads(proc_log: Path, agent: str) -> dict[int, float]:
    """revision -> the first wall time (epoch s) this process logged loading it."""
    seen: dict[int, float] = {}
    for line in proc_log.read_text(errors="replace").splitlines():
        if MARK not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        for part in str(entry.get("event", "")).split(MARK, 1)[-1].split(", "):
            name, _, revision = part.partition("=")
            if name == agent and revision.isdigit():
                stamp = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00")).timestamp()
                seen.setdefault(int(revision), stamp)
    return seen


def propagation(admin_url: str, redis_url: str | None, changes: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="tether-propagation-") as tmp,
        scratch_postgres(admin_url, "tether_propagation") as database_url,
    ):
        root = Path(tmp)
        project = write_project(root / "agent", name="prop-agent")
        data = root / "data"
        data.mkdir()
        env = service_env(
            database_url=database_url, redis_url=redis_url, data_dir=data, code_cache=root / "code"
        )
        env["TETHER_LOG_FORMAT"] = "json"
        tether("release", "create", "--project", project, "--version", "v1", env=env)
        (project / "prompts" / "system.md").write_text("You are a test agent, version two.")
        tether("release", "create", "--project", project, "--version", "v2", env=env)
        key = create_key(project, env, user="ops", scopes="operator,runs:write,runs:read")
        ports = [free_port(), free_port()]
        with Fleet(project, env, root / "logs") as fleet:
            procs = [fleet.start_api(port) for port in ports] + [fleet.start_worker(2), fleet.start_worker(2)]
            apis = [Api(port, key) for port in ports]
            try:
                for api in apis:
                    api.wait_ready(workers=2, timeout=120, procs=procs)
                first = apis[0].client
                answer = first.post(
                    "/v1/rollout/switch", json={"release": "v1", "override": True, "reason": "drill"}
                )
                answer.raise_for_status()
                body = {"release": "v2", "override": True, "reason": "drill", "min_runs": 100000}
                answer = first.post("/v1/rollout/start", json=body)
                answer.raise_for_status()
                sent: dict[int, float] = {}
                for index in range(changes):
                    path = "/v1/rollout/pause" if index % 2 == 0 else "/v1/rollout/resume"
                    started = time.time()
                    answer = apis[index % 2].client.post(path, json={"reason": f"drill change {index}"})
                    answer.raise_for_status()
                    sent[int(answer.json()["revision"])] = started
                    time.sleep(1.5)  # let every process log it before the next change
                time.sleep(2)
                history = first.get("/v1/rollout").json()["history"]
                committed = {int(h["revision"]): datetime.fromisoformat(h["at"]).timestamp() for h in history}
            finally:
                for api in apis:
                    api.client.close()
            latencies: dict[str, list[float]] = {}
            from_commit: list[float] = []
            missing = 0
            for proc in procs:
                seen = _loads(proc.log, "prop-agent")
                for revision, started in sent.items():
                    if revision in seen:
                        latencies.setdefault(proc.name, []).append(seen[revision] - started)
                        from_commit.append(seen[revision] - committed[revision])
                    else:
                        missing += 1
        every = [v for values in latencies.values() for v in values]
        return {
            "per_process": latencies,
            "all": every,
            "from_commit": from_commit,
            "missing": missing,
            "changes": len(sent),
        }


def shadow_writes(admin_url: str, requests: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="tether-shadow-") as tmp,
        scratch_postgres(admin_url, "tether_shadow") as database_url,
    ):
        root = Path(tmp)
        project = root / "support_agent"
        shutil.copytree(REPO / "examples" / "support_agent", project)
        data = root / "data"
        env = service_env(database_url=database_url, data_dir=data, code_cache=root / "code")
        tether("data", "reset", "--project", project, "--yes", env=env)
        tether("release", "create", "--project", project, "--version", "v1", env=env)
        system = project / "prompts" / "system.md"
        system.write_text(system.read_text() + "\nBe brief.\n")
        tether("release", "create", "--project", project, "--version", "v2", env=env)
        key = create_key(project, env, user="u2", scopes="operator,runs:write,runs:read")
        before = _refund_rows(data)
        port = free_port()
        with Fleet(project, env, root / "logs") as fleet, Api(port, key) as api:
            procs = [fleet.start_api(port), fleet.start_worker(4)]
            api.wait_ready(workers=1, timeout=120, procs=procs)
            api.client.post(
                "/v1/rollout/switch", json={"release": "v1", "override": True, "reason": "drill"}
            ).raise_for_status()
            api.client.post(
                "/v1/rollout/start",
                json={"release": "v2", "stage": "shadow", "share": 1.0, "reason": "drill"},
            ).raise_for_status()
            live_ids = [api.submit("I want a refund for order 12352") for _ in range(requests)]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                listed = api.client.get("/v1/runs", params={"origin": "all", "limit": 200}).json()["runs"]
                shadows = [r for r in listed if r["origin"] == "shadow"]
                lives = [r for r in listed if r["run_id"] in live_ids]
                settled = all(
                    r["status"] in ("succeeded", "failed", "escalated", "waiting_for_approval") for r in lives
                )
                if (
                    len(shadows) == requests
                    and settled
                    and all(r["status"] not in ("queued", "running") for r in shadows)
                ):
                    break
                time.sleep(0.5)
            skipped = 0
            for run in shadows:
                steps = api.client.get(f"/v1/runs/{run['run_id']}/steps").json()
                skipped += sum(
                    1 for s in steps if str(s.get("result") or "").startswith("not executed in shadow")
                )
        after = _refund_rows(data)
        shadow_ids = {r["run_id"] for r in shadows}
        by_shadow = [k for keys in after.values() for k in keys if k.split(":", 1)[0] in shadow_ids]
        return {
            "shadow_rows": by_shadow,
            "requests": requests,
            "live": {r["run_id"]: r["status"] for r in lives},
            "shadow_statuses": sorted(r["status"] for r in shadows),
            "writes_skipped": skipped,
            "before": before,
            "after": after,
        }


def _refund_rows(data: Path) -> dict[str, list[str]]:
    """table -> the idempotency keys (`<run id>:<step>`) of its rows, in every database of the data dir."""
    rows: dict[str, list[str]] = {}
    for path in sorted(data.rglob("*.db")):
        with closing(sqlite3.connect(path)) as db:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table in ("refunds", "refund_notes"):
                if table in names:
                    key = f"{path.relative_to(data)}:{table}"
                    rows[key] = [str(r[0]) for r in db.execute(f"SELECT idempotency_key FROM {table}")]
    return rows


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values) * 1000
    return f"median {median:.0f} ms, min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_admin = os.environ.get(
        "TETHER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--database-url", default=default_admin)
    parser.add_argument(
        "--redis-url", default=os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--refunds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    lines = [f"# Rollout propagation and shadow writes ({datetime.now():%Y-%m-%d})", ""]
    lines += [
        "Command: `python benchmarks/rollout_propagation.py "
        f"--changes {args.changes} --refunds {args.refunds}`",
        "",
    ]
    lines += [markdown_table(machine_info()), ""]
    verdicts = []
    shapes = [("PostgreSQL, no Redis (revision poll 0.25 s)", None)]
    if args.redis_url:
        shapes.append(("PostgreSQL + Redis", args.redis_url))
    for title, redis_url in shapes:
        result = propagation(args.database_url, redis_url, args.changes)
        worst = max(result["all"], default=float("inf"))
        ok = result["missing"] == 0 and worst <= 1.0
        verdicts.append(ok)
        lines += [f"## (c) {title}", ""]
        lines.append(
            f"{result['changes']} weight changes x 4 processes; not seen: {result['missing']}; "
            f"worst {worst * 1000:.0f} ms -> {'PASS' if ok else 'FAIL'} (bound 1 s)"
        )
        lines.append("")
        lines.append("| process | latency from request sent to snapshot loaded |")
        lines.append("|---|---|")
        for name, values in sorted(result["per_process"].items()):
            lines.append(f"| {name} | {summary(values)} |")
        lines.append(f"| all | {summary(result['all'])} |")
        lines.append(f"| all, from the revision's commit time | {summary(result['from_commit'])} |")
        lines.append("")
    shadow = shadow_writes(args.database_url, args.refunds)
    refunds = {k: v for k, v in shadow["after"].items() if k.endswith(":refunds")}
    refunds_before = {k: v for k, v in shadow["before"].items() if k.endswith(":refunds")}
    ok = not shadow["shadow_rows"] and refunds == refunds_before and shadow["writes_skipped"] > 0
    verdicts.append(ok)
    lines += ["## (d) Shadow never executes a write", ""]
    lines.append(
        f'{shadow["requests"]} refund requests ("I want a refund for order 12352", user u2) on live v1, '
        f"each copied to shadow v2 (share 1.0)."
    )
    lines.append(f"- live runs: {sorted(shadow['live'].values())}")
    lines.append(
        f"- shadow runs: {shadow['shadow_statuses']}; "
        f"write calls recorded as not executed: {shadow['writes_skipped']}"
    )
    counts = {k: len(v) for k, v in shadow["after"].items()}
    before = {k: len(v) for k, v in shadow["before"].items()}
    lines.append(
        f"- rows before {before}, after {counts} (the live runs' own refund notes, written before they "
        "park for the refund approval); rows written by shadow runs: "
        f"{len(shadow['shadow_rows'])}; refunds unchanged: {refunds == refunds_before} -> "
        f"{'PASS' if ok else 'FAIL'}"
    )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    raise SystemExit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
