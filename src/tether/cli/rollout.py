"""`tether rollout status|start|promote|pause|resume|abort|rollback|switch|report`: who gets which release.

Every change is stored as a new deployment revision with who and why, and every API process and
worker follows it within a second (the live-configuration mechanism); nothing restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    JsonOption,
    ProjectOption,
    actor,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
)

if TYPE_CHECKING:
    from tether.cli.common import Session
    from tether.rollout.service import Rollout

group = typer.Typer(
    help="Deployments: stages, canaries, shadow traffic, blue-green switches.", no_args_is_help=True
)

ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]
AgentOption = Annotated[
    str | None, typer.Option("--agent", help="Agent name (default: the project's [agent] name).")
]
OverrideOption = Annotated[
    bool,
    typer.Option("--override", help="Enter canary/live without a passing gate verdict (needs --reason)."),
]


def _rollout(session: Session) -> Rollout:
    from tether.live import LiveConfig
    from tether.rollout.service import Rollout

    live = LiveConfig(session.store, redis_url=session.settings.redis_url)
    return Rollout(session.store, live)


def _agent(session: Session, agent: str | None) -> str:
    if agent:
        return agent
    from tether.agent.config import load_config
    from tether.agent.project import CONFIG_FILE

    path = session.project / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"no {CONFIG_FILE} in {session.project}: pass --agent NAME")
    return load_config(path).agent.name


def _show(data: dict[str, Any]) -> None:
    table = Table(title=f"deployment of {escape(data['agent'])} (revision {data['revision']})")
    for column in ("release", "stage", "weight %"):
        table.add_column(column)
    for entry in data["entries"]:
        table.add_row(escape(entry["version"]), entry["stage"], f"{entry['weight']:g}")
    print_table(table)
    canary = data.get("canary")
    if canary:
        state = "paused" if canary["paused"] else "running"
        out.print(
            f"canary: step {canary['step'] + 1}/{len(canary['steps'])} ({state}), steps {canary['steps']}, "
            f"min {canary['min_runs']} runs and {canary['min_seconds']:g}s per step",
            highlight=False,
        )
    analysis = data.get("analysis")
    if analysis:
        measures = Table(title=f"canary vs stable: {escape(analysis['reason'])}")
        for column in ("measure", "canary", "stable", "tolerance", "log LR", "bound", "breached"):
            measures.add_column(column)
        for m in analysis["measures"]:
            measures.add_row(
                m["name"],
                "-" if m["canary"] is None else f"{m['canary']:.4g}",
                "-" if m["stable"] is None else f"{m['stable']:.4g}",
                m["tolerance"],
                f"{m['log_lr']:.3g}",
                f"{m['bound']:.3g}",
                "yes" if m["breached"] else "no",
            )
        print_table(measures)


def _print_change(deployment: Any) -> None:
    parts = ", ".join(f"{e.version} {e.stage} {e.weight:g}%" for e in deployment.entries) or "no releases"
    out.print(
        f"deployment of {escape(deployment.agent_name)} is now revision {deployment.revision}: "
        f"{escape(parts)}"
    )


def _change(project: Path, action: Any) -> None:
    where = project.resolve()

    async def body() -> None:
        async with open_session(where) as session:
            done = await action(session, _rollout(session))
        _print_change(done)

    run_command(body)


@group.command("status")
def rollout_status(
    project: ProjectOption = Path("."),
    agent: AgentOption = None,
    history: Annotated[int, typer.Option(min=0, max=500, help="Audit-log entries to show.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Stages and weights now, the canary's analysis against stable, and the audit log."""

    async def body() -> None:
        from tether.rollout.views import status

        async with open_session(project.resolve()) as session:
            data = await status(_rollout(session), _agent(session, agent), history=history)
        if as_json:
            dump_json(data)
            return
        _show(data)
        if data["history"]:
            log = Table(title="audit log")
            for column in ("rev", "action", "by", "why", "at"):
                log.add_column(column)
            for h in data["history"]:
                why = h["reason"] + (" [override]" if h["override"] else "")
                log.add_row(str(h["revision"]), h["action"], escape(h["actor"]), escape(why), h["at"])
            print_table(log)

    run_command(body)


@group.command("start")
def rollout_start(
    release: Annotated[str, typer.Argument(help="Release version.")],
    project: ProjectOption = Path("."),
    stage: Annotated[str, typer.Option(help="canary, shadow, internal or live.")] = "canary",
    steps: Annotated[str | None, typer.Option(help="Canary steps in percent, e.g. 5,25,50,100.")] = None,
    min_runs: Annotated[int | None, typer.Option(min=1, help="Canary runs each step needs.")] = None,
    min_minutes: Annotated[
        float | None, typer.Option(min=0, help="Minutes each step lasts at least.")
    ] = None,
    share: Annotated[
        float | None, typer.Option(min=0, max=1, help="Shadow: share of live runs copied.")
    ] = None,
    internal_user: Annotated[
        list[str] | None, typer.Option(help="Internal: a user who gets it first.")
    ] = None,
    internal_tenant: Annotated[
        list[str] | None, typer.Option(help="Internal: a tenant that gets it first.")
    ] = None,
    override: OverrideOption = False,
    reason: ReasonOption = "",
) -> None:
    """Put a release in a stage: a canary (plan from [rollout] or the options), shadow, internal, or live."""

    async def action(session: Session, rollout: Rollout) -> Any:
        from tether.rollout.deployment import Plan, Stage

        try:
            chosen = Stage(stage)
        except ValueError:
            raise ValueError(f"unknown stage {stage!r}; use canary, shadow, internal or live") from None
        plan = None
        if steps is not None or min_runs is not None or min_minutes is not None:
            defaults = Plan()
            try:
                parsed = tuple(float(s) for s in steps.split(",")) if steps else defaults.steps
            except ValueError:
                raise ValueError(f"--steps must be numbers separated by commas, not {steps!r}") from None
            plan = Plan(
                parsed,
                min_runs if min_runs is not None else defaults.min_runs,
                min_minutes * 60 if min_minutes is not None else defaults.min_seconds,
            )
        return await rollout.start(
            release,
            stage=chosen,
            actor=actor(),
            reason=reason,
            override=override,
            plan=plan,
            share=share,
            internal_users=frozenset(internal_user) if internal_user else None,
            internal_tenants=frozenset(internal_tenant) if internal_tenant else None,
        )

    _change(project, action)


@group.command("promote")
def rollout_promote(
    project: ProjectOption = Path("."), agent: AgentOption = None, reason: ReasonOption = ""
) -> None:
    """Make the canary live now, skipping its remaining steps."""

    async def action(session: Session, rollout: Rollout) -> Any:
        return await rollout.promote(_agent(session, agent), actor=actor(), reason=reason)

    _change(project, action)


@group.command("pause")
def rollout_pause(
    project: ProjectOption = Path("."),
    agent: AgentOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Give a paused canary its weight again.")] = False,
    reason: ReasonOption = "",
) -> None:
    """Hold the canary at 0% of traffic (or --resume it)."""

    async def action(session: Session, rollout: Rollout) -> Any:
        return await rollout.pause(_agent(session, agent), paused=not resume, actor=actor(), reason=reason)

    _change(project, action)


@group.command("abort")
def rollout_abort(
    project: ProjectOption = Path("."), agent: AgentOption = None, reason: ReasonOption = ""
) -> None:
    """Stop the canary: no new runs go to it; runs in flight finish on it."""

    async def action(session: Session, rollout: Rollout) -> Any:
        return await rollout.abort(_agent(session, agent), actor=actor(), reason=reason)

    _change(project, action)


@group.command("rollback")
def rollout_rollback(
    project: ProjectOption = Path("."), agent: AgentOption = None, reason: ReasonOption = ""
) -> None:
    """Stop the canary, or without one return to the previous live release (alerts the webhook)."""

    async def action(session: Session, rollout: Rollout) -> Any:
        return await rollout.rollback(_agent(session, agent), actor=actor(), reason=reason)

    _change(project, action)


@group.command("switch")
def rollout_switch(
    release: Annotated[str, typer.Argument(help="Release version.")],
    project: ProjectOption = Path("."),
    override: OverrideOption = False,
    reason: ReasonOption = "",
) -> None:
    """Blue-green: all traffic to RELEASE at once (its gate must have passed, or --override --reason)."""

    async def action(session: Session, rollout: Rollout) -> Any:
        return await rollout.switch(release, actor=actor(), reason=reason, override=override)

    _change(project, action)


@group.command("report")
def rollout_report(
    project: ProjectOption = Path("."),
    agent: AgentOption = None,
    against: Annotated[str, typer.Option(help="shadow or canary.")] = "shadow",
    as_json: JsonOption = False,
) -> None:
    """Shadow (or canary) vs live on the gate's measures, 95% intervals, and the runs that differ most."""

    async def body() -> None:
        from tether.rollout.views import report

        async with open_session(project.resolve()) as session:
            result = await report(_rollout(session), _agent(session, agent), against=against)
        if as_json:
            dump_json(result.as_dict())
            return
        out.print(
            f"{escape(result.candidate)} ({result.candidate_runs} runs, ${result.candidate_cost_usd:.4f}) vs "
            f"{escape(result.baseline)} ({result.baseline_runs} runs); writes not executed in shadow: "
            f"{result.shadow_writes_skipped}",
            highlight=False,
        )
        table = Table()
        for column in ("measure", "candidate", "baseline", "difference", "95% interval"):
            table.add_column(column)

        def number(value: float | None) -> str:
            return "-" if value is None else f"{value:.4g}"

        for m in result.measures:
            interval = "-" if m.low is None else f"[{m.low:.4g}, {m.high:.4g}]"
            table.add_row(m.name, number(m.candidate), number(m.baseline), number(m.difference), interval)
        print_table(table)
        if result.differing:
            diff = Table(title="runs that differ most")
            for column in ("live run", "shadow run", "what"):
                diff.add_column(column)
            for d in result.differing:
                diff.add_row(d.live_run, d.candidate_run, escape(d.what))
            print_table(diff)

    run_command(body)
