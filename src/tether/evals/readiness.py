"""The one-page production readiness review of a release, in Markdown and HTML.

It gathers what a reviewer needs before a release takes traffic: who owns it, what it can do to
users and systems, what it stores, what the evals and the gate said, what it will cost, what to
watch, how to roll back, and the results of the drills it executes right now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from tether.agent.config import ProjectConfig, ReadinessSection
from tether.agent.project import ProjectSnapshot, load_agent
from tether.evals.cost import CostEstimate, estimate
from tether.evals.drills import DrillReport, normal_drill, outage_drill, unsafe_drill
from tether.evals.kill_switch_drill import kill_switch_drill
from tether.evals.runner import production_data_dir
from tether.evals.trial_data import TrialData
from tether.settings import Settings
from tether.store.records import (
    EvalCaseResultRecord,
    EvalRunRecord,
    GateVerdictRecord,
    ReleaseRecord,
    StepKind,
)
from tether.store.repository import Store


@dataclass
class Review:
    release: ReleaseRecord
    config: ProjectConfig
    generated_at: datetime
    tools: list[dict[str, Any]]
    risky_tools: list[dict[str, Any]]
    approval_points: list[str]
    external_systems: list[str]
    stored_state: list[str]
    user_impact: str
    eval_run: EvalRunRecord | None
    eval_cases: list[EvalCaseResultRecord]
    verdict: GateVerdictRecord | None
    baseline: ReleaseRecord | None
    cost: CostEstimate | None
    monitoring: list[str]
    rollback: list[str]
    drills: list[DrillReport]
    canary_drill: CanaryDrill | None = None
    redteam: dict[str, Any] | None = None
    """The latest `tether redteam` summary (compromised model) of this release, if any."""

    @property
    def ready(self) -> bool:
        canary_ok = self.canary_drill is None or self.canary_drill.passed
        return bool(self.verdict and self.verdict.passed) and all(d.passed for d in self.drills) and canary_ok


@dataclass(frozen=True)
class CanaryDrill:
    """The bad-canary drill on the release's own `[rollout]` rules: a canary failing 15 points more
    often than stable, over 20 seeds of simulated traffic, must be rolled back every time."""

    seeds: int
    rolled_back: int
    median_runs: float | None
    max_runs: int | None

    @property
    def passed(self) -> bool:
        return self.rolled_back == self.seeds


def canary_drill(config: ProjectConfig, seeds: int = 20) -> CanaryDrill:
    from tether.rollout.drills import bad_canary_drill

    summary = bad_canary_drill(seeds, settings=config.rollout)
    runs = summary.canary_runs_to_rollback()
    return CanaryDrill(seeds, summary.rollbacks, runs[0] if runs else None, runs[1] if runs else None)


def _enabled_tools(snapshot: ProjectSnapshot, config: ProjectConfig) -> list[dict[str, Any]]:
    names = config.agent.enabled_tools
    return [t for t in snapshot.tools if names is None or t["name"] in names]


def _external_systems(config: ProjectConfig, store: Store, settings: Settings) -> list[str]:
    systems = [
        f"model provider: {ref}" + (" (offline, scripted)" if ref.startswith("scripted:") else "")
        for ref in config.model.chain
    ]
    systems.append(f"database: {store.dialect} (runs, steps, approvals, events, eval results)")
    if settings.redis_url:
        systems.append("Redis: shared rate limits and event wake-ups")
    systems += config.readiness.external_systems
    return systems


def _monitoring(config: ProjectConfig) -> list[str]:
    limits = config.limits
    return [
        "run outcomes by status: a rise in failed, budget_exhausted or escalated runs "
        "(`tether runs list --status ...`)",
        "approval queue: runs in waiting_for_approval and how long they wait",
        f"cost per run against the ${limits.max_cost_usd_per_run} ceiling; "
        f"tokens against {limits.max_tokens_per_run}",
        f"steps per run against the limit of {limits.max_steps}",
        "failed tool steps per tool (an outage shows up here first, as in the drill below)",
        "worker heartbeats and queue depth (`/readyz`, `/healthz`)",
        "user feedback (`POST /v1/runs/{id}/feedback`): thumbs-down rate",
    ]


def _rollback(config: ProjectConfig, baseline: ReleaseRecord | None) -> list[str]:
    previous = baseline.version if baseline else "<previous release>"
    return [
        "stop a canary or return to the previous live release in one command: `tether rollout rollback` "
        f"(or switch to a known release: `tether rollout switch {previous}`); every API process and "
        "worker follows within a second, and runs in flight keep the release they started on",
        "switch off write tools without a release: `write_tools_enabled = false` in `[agent]`"
        + (" (currently on)" if config.agent.write_tools_enabled else " (already off)"),
        "send every write to a human: `force_human_review = true` in `[agent]`"
        + (" (already on)" if config.agent.force_human_review else ""),
        "stop one run: `tether runs cancel RUN_ID` "
        "(queued or waiting runs end at once, running ones at the next step)",
        "tighten the ceilings in `[limits]` (steps, tokens, cost per run)",
    ]


async def build_review(
    store: Store,
    settings: Settings,
    project: Path,
    release: ReleaseRecord,
    *,
    runs_per_day: float,
) -> Review:
    snapshot = ProjectSnapshot.model_validate(release.snapshot)
    config = snapshot.parsed_config()
    readiness = config.readiness
    tools = _enabled_tools(snapshot, config)
    risky = [t for t in tools if t["side_effect"] == "write" or t["risk"] == "high" or t["requires_approval"]]
    approval_points = [f"{t['name']} requires approval" for t in tools if t["requires_approval"]]
    if config.agent.force_human_review:
        approval_points.append("force_human_review: every write tool waits for a human")
    approval_points.append("interrupted non-idempotent writes wait for a retry approval")
    if readiness.outage_tool is not None and readiness.outage_tool not in {t["name"] for t in tools}:
        enabled = ", ".join(t["name"] for t in tools) or "none"
        raise ValueError(
            f"[readiness] outage_tool {readiness.outage_tool!r} is not an enabled tool of {release.version} "
            f"(enabled: {enabled})"
        )
    eval_run = await store.latest_eval_run(release.id)
    cases = await store.list_eval_case_results(eval_run.id) if eval_run else []
    verdict = await store.latest_gate_verdict(release.id)
    baseline = (
        await store.get_release(verdict.baseline_release_id)
        if verdict and verdict.baseline_release_id
        else await store.last_passing_release(agent_name=release.agent_name, exclude=release.id)
    )
    cost = (
        estimate(
            release,
            eval_run,
            cases,
            runs_per_day=runs_per_day,
            monthly_budget_usd=config.gate.monthly_budget_usd,
            warning_fraction=config.gate.cost_ceiling_warning,
        )
        if eval_run and cases
        else None
    )
    source = production_data_dir(project, settings)
    with TrialData(load_agent(snapshot), source) as data:  # built once, copied for each drill
        drills = await _drills(store, settings, release, data, readiness, tools)
    user_impact = readiness.user_impact or (
        f"Answers {config.agent.name}'s users directly. "
        + (
            "It can change things for them through "
            + ", ".join(t["name"] for t in risky if t["side_effect"] == "write")
            + "."
            if any(t["side_effect"] == "write" for t in risky) and config.agent.write_tools_enabled
            else "It only reads."
        )
    )
    stored_state = [
        "every run, step, approval and event in the Tether database (inputs and outputs included)",
        f"the agent's own data folder ({source}), written by its write tools",
        *readiness.stored_state,
    ]
    return Review(
        release=release,
        config=config,
        generated_at=datetime.now(UTC),
        tools=tools,
        risky_tools=risky,
        approval_points=approval_points,
        external_systems=_external_systems(config, store, settings),
        stored_state=stored_state,
        user_impact=user_impact,
        eval_run=eval_run,
        eval_cases=cases,
        verdict=verdict,
        baseline=baseline,
        cost=cost,
        monitoring=_monitoring(config),
        rollback=_rollback(config, baseline),
        drills=drills,
        canary_drill=canary_drill(config),
        redteam=await _redteam(store, release),
    )


async def _redteam(store: Store, release: ReleaseRecord) -> dict[str, Any] | None:
    latest = await store.redteam.latest(release.id, model="compromised")
    return {"id": latest.id, **latest.summary} if latest is not None else None


async def _drills(
    store: Store,
    settings: Settings,
    release: ReleaseRecord,
    data: TrialData,
    readiness: ReadinessSection,
    tools: list[dict[str, Any]],
) -> list[DrillReport]:
    """The drills, in order: the outage drill breaks a tool the normal drill used, and the kill
    switch disables the tools it used while the same task runs again."""
    normal = await normal_drill(store, settings, release, data, readiness.user, readiness.normal_input)
    outage_tool = readiness.outage_tool or _first_read_tool(normal, tools)
    drills = [normal]
    if outage_tool is not None:
        drills.append(
            await outage_drill(
                store,
                settings,
                release,
                data,
                readiness.user,
                readiness.outage_input or readiness.normal_input,
                outage_tool,
            )
        )
    risky_names = {t["name"] for t in tools if t["requires_approval"] or t["risk"] == "high"}
    drills.append(
        await unsafe_drill(
            store, settings, release, data, readiness.user, readiness.unsafe_input, risky_names
        )
    )
    used = list(dict.fromkeys(normal.run.tools_called))
    if used:  # an operator's kill switch disables what the normal task used, while it runs
        drills.append(
            await kill_switch_drill(
                store, settings, release, data, readiness.user, readiness.normal_input, used
            )
        )
    return drills


def _first_read_tool(normal: DrillReport, tools: list[dict[str, Any]]) -> str | None:
    """The outage hits the first read tool the normal task used (so it is exercised), else any read tool."""
    reads = [str(t["name"]) for t in tools if t["side_effect"] == "read"]
    used = [name for name in normal.run.tools_called if name in reads]
    if used:
        return used[0]
    return reads[0] if reads else None


_environment = Environment(
    loader=PackageLoader("tether.evals", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(review: Review) -> tuple[str, str]:
    """(Markdown, HTML) of the review."""
    context = {"r": review, "StepKind": StepKind}
    return (
        _environment.get_template("readiness.md.j2").render(context),
        _environment.get_template("readiness.html.j2").render(context),
    )


def write(review: Review, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, html = render(review)
    stem = f"readiness-{review.release.version}"
    md_path, html_path = out / f"{stem}.md", out / f"{stem}.html"
    md_path.write_text(md, encoding="utf-8")
    html_path.write_text(html, encoding="utf-8")
    return md_path, html_path
