"""A recorded check against a real Arize Phoenix: how Tether's traces read in it.

Phoenix is not a Tether dependency; install it in a venv of its own and pass its `phoenix`
command. The script starts `phoenix serve` on free ports in a scratch folder, runs the example
support agent (a copy, SQLite) as real `tether` processes exporting OTLP to it: one question, and a
refund that parks for approval and is approved by a second process. Then it reads Phoenix's REST and
GraphQL APIs and checks what a user of Phoenix sees:

- the traces land in the project named after the agent (`openinference.project.name`);
- each run is one trace with one root span (one row in Phoenix's trace list), every parent is
  present, and every child's time lies inside its parent's;
- the approval wait is a CHAIN span under the root, not a TOOL call; model calls are LLM spans,
  tools TOOL spans, the root an AGENT span;
- with `TETHER_TRACE_CONTENT=true`, the root's input and output are Tether's task and answer.

    python benchmarks/phoenix_check.py --phoenix <phoenix venv>/bin/phoenix
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tether(project: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tether", *args, "--project", str(project), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _wait(check: Any, what: str, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"Phoenix never showed {what}")


def _version(phoenix: str) -> str:
    python = Path(phoenix).parent / "python"
    done = subprocess.run(
        [str(python), "-c", "import phoenix; print(phoenix.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phoenix", required=True, help="the `phoenix` command of a Phoenix install")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append((name, ok, detail))
        print(f"{'ok ' if ok else 'FAIL'} {name} {detail}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env_phoenix = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(work / "phoenix"),
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(_free_port()),
            "PHOENIX_HOST": "127.0.0.1",
        }
        server = subprocess.Popen(
            [args.phoenix, "serve"], env=env_phoenix, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait(lambda: httpx.get(f"{base}/healthz", timeout=2).status_code == 200, "its health check")
            project = work / "support_agent"
            shutil.copytree(
                ROOT / "examples" / "support_agent", project, ignore=shutil.ignore_patterns(".tether")
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            env |= {
                "TETHER_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'tether.db'}",
                "OTEL_EXPORTER_OTLP_ENDPOINT": base,
                "TETHER_TRACE_CONTENT": "true",
            }
            asked = _tether(project, env, "run", "--user", "u1", "Where is my order 12345?")
            parked = _tether(project, env, "run", "--user", "u1", "I want a refund for order 12346")
            approved = _tether(project, env, "approve", parked["run_id"], "--by", "alice")
            runs = {asked["run_id"]: asked, parked["run_id"]: approved}
            check("runs ended", [r["status"] for r in runs.values()] == ["succeeded", "succeeded"])

            def spans() -> list[dict[str, Any]]:
                answer = httpx.get(
                    f"{base}/v1/projects/support-agent/spans", params={"limit": 1000}, timeout=10
                )
                data: list[dict[str, Any]] = (
                    answer.json().get("data", []) if answer.status_code == 200 else []
                )
                roots = [s for s in data if s["parent_id"] is None]
                return data if len(roots) >= 2 else []

            found = _wait(spans, "both runs in project support-agent")
            projects = [p["name"] for p in httpx.get(f"{base}/v1/projects").json()["data"]]
            check("project named after the agent", "support-agent" in projects, f"projects: {projects}")
            by_trace: dict[str, list[dict[str, Any]]] = {}
            for span in found:
                by_trace.setdefault(span["context"]["trace_id"], []).append(span)
            check("one trace per run", len(by_trace) == 2, f"{len(by_trace)} traces")
            for trace_id, members in by_trace.items():
                ids = {s["context"]["span_id"]: s for s in members}
                roots = [s for s in members if s["parent_id"] is None]
                check(f"trace {trace_id[:8]}: one root", len(roots) == 1, f"{[r['name'] for r in roots]}")
                orphans = [s["name"] for s in members if s["parent_id"] and s["parent_id"] not in ids]
                check(f"trace {trace_id[:8]}: no orphan", not orphans, f"{orphans}")
                outside = [
                    s["name"]
                    for s in members
                    if s["parent_id"] in ids
                    and not (
                        ids[s["parent_id"]]["start_time"] <= s["start_time"]
                        and s["end_time"] <= ids[s["parent_id"]]["end_time"]
                    )
                ]
                check(f"trace {trace_id[:8]}: children inside parents", not outside, f"{outside}")
                kinds = sorted({(s["name"].split(" ")[0], s["span_kind"]) for s in members})
                check(f"trace {trace_id[:8]}: span kinds", True, f"{kinds}")
            waits = [s for s in found if s["name"].startswith("approval_wait")]
            check(
                "approval wait is a CHAIN child of the root",
                len(waits) == 1
                and waits[0]["span_kind"] == "CHAIN"
                and next(s for s in found if s["context"]["span_id"] == waits[0]["parent_id"])["parent_id"]
                is None,
                f"{[(w['name'], w['span_kind']) for w in waits]}",
            )
            graph = httpx.post(
                f"{base}/graphql",
                json={
                    "query": "{ projects { edges { node { name traceCount roots: spans(first: 50, "
                    'filterCondition: "parent_id is None") { edges { node { name spanKind } } } '
                    'tools: spans(first: 100, filterCondition: "span_kind == \\"TOOL\\"") '
                    "{ edges { node { name } } } tokenCountTotal costSummary { total { cost } } } } } }"
                },
                timeout=10,
            ).json()
            node = next(
                e["node"] for e in graph["data"]["projects"]["edges"] if e["node"]["name"] == "support-agent"
            )
            root_rows = [e["node"]["name"] for e in node["roots"]["edges"]]
            check("trace list rows (root spans)", len(root_rows) == 2, f"{root_rows}")
            tool_rows = [e["node"]["name"] for e in node["tools"]["edges"]]
            check(
                "no approval wait among TOOL spans",
                not any("approval" in t for t in tool_rows),
                f"{tool_rows}",
            )
            tokens = sum(r["input_tokens"] + r["output_tokens"] for r in runs.values())
            check(
                "token total",
                node["tokenCountTotal"] == tokens,
                f"Phoenix {node['tokenCountTotal']}, Tether {tokens}",
            )
            check(
                "cost (Phoenix prices from its own table; the scripted model is unknown to it)",
                True,
                f"Phoenix {node['costSummary']['total']['cost']}, Tether "
                f"{sum(r['estimated_cost_usd'] for r in runs.values()):.6f} (llm.cost.* on the spans)",
            )
            root = next(
                s for s in found if s["parent_id"] is None and asked["run_id"] in json.dumps(s["attributes"])
            )
            attributes = root["attributes"]
            check(
                "root input/output are the task and answer",
                attributes.get("input.value") == asked["input"]
                and attributes.get("output.value") == asked["output"],
            )
        finally:
            server.terminate()
            server.wait(timeout=60)
    failed = [c for c in checks if not c[1]]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed")
    if not args.no_write:
        today = datetime.now(UTC).date().isoformat()
        lines = [
            f"# phoenix_check.py, {today}",
            "",
            f"Arize Phoenix {_version(args.phoenix)}; "
            "`python benchmarks/phoenix_check.py --phoenix <venv>/bin/phoenix`",
            "",
            "| check | result | detail |",
            "| --- | --- | --- |",
            *[
                f"| {name} | {'ok' if ok else 'FAIL'} | {detail.replace('|', '/')} |"
                for name, ok, detail in checks
            ],
            "",
        ]
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"phoenix-check-{today}.md"
        out.write_text("\n".join(lines))
        print(f"wrote {out.relative_to(ROOT)}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
