"""`tether experiment create|list|show|stop|report`: A/B experiments between releases or flag variations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether.cli.common import (
    ByOption,
    JsonOption,
    ProjectOption,
    ReasonOption,
    actor,
    dump_json,
    open_session,
    out,
    print_table,
    run_command,
)

if TYPE_CHECKING:
    from tether.rollout.experiment_report import ExperimentReport
    from tether.store.flag_records import ExperimentRecord

group = typer.Typer(help="A/B experiments: arms, sticky assignment, reports.", no_args_is_help=True)


def arm_target(release: str | None, flag: str | None, value: object) -> str:
    return f"release {release}" if release else f"flag {flag}={value!r}".replace("'", "")


def print_experiment(experiment: ExperimentRecord) -> None:
    spec = experiment.spec
    out.print(
        f"[bold]{escape(experiment.name)}[/bold] {experiment.status} · metric {spec.metric} · "
        f"{spec.traffic:g}% of production users · started by {escape(experiment.created_by)} "
        f"{experiment.created_at.isoformat(timespec='seconds')}",
        highlight=False,
    )
    if spec.description:
        out.print(escape(spec.description), highlight=False)
    total = sum(arm.weight for arm in spec.arms)
    for arm in spec.arms:
        out.print(
            f"  arm {escape(arm.name)}: {100 * arm.weight / total:.1f}% -> "
            f"{escape(arm_target(arm.release, arm.flag, arm.value))}",
            highlight=False,
        )


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def print_report(report: ExperimentReport) -> None:
    out.print(
        f"[bold]{escape(report.experiment)}[/bold] ({report.status}): {report.metric_label}", highlight=False
    )
    arms = Table("arm", "runs", "estimate", "95% CI")
    for arm in report.arms:
        arms.add_row(
            escape(arm.arm),
            str(arm.runs),
            _number(arm.estimate),
            f"[{_number(arm.ci_low)}, {_number(arm.ci_high)}]",
        )
    print_table(arms)
    comparisons = Table("arm vs control", "difference", "95% CI", "p-value", "needed per arm", "still needed")
    for c in report.comparisons:
        comparisons.add_row(
            f"{escape(c.arm)} - {escape(c.control)}",
            _number(c.difference),
            f"[{_number(c.ci_low)}, {_number(c.ci_high)}]",
            _number(c.p_value, 3),
            "-" if c.needed_per_arm is None else str(c.needed_per_arm),
            "-" if c.still_needed is None else str(c.still_needed),
        )
    out.print()
    print_table(comparisons)


@group.command("create")
def experiment_create(
    name: Annotated[str, typer.Argument()],
    reason: ReasonOption,
    arm: Annotated[
        list[str],
        typer.Option(
            "--arm",
            metavar="ARM",
            help="NAME:WEIGHT:release:VERSION or NAME:WEIGHT:flag:FLAG=VALUE "
            "(two or more; the first is control).",
        ),
    ],
    metric: Annotated[str, typer.Option(help="success, feedback or cost (per run).")] = "success",
    traffic: Annotated[float, typer.Option(help="Percent of production users enrolled (sticky).")] = 100.0,
    min_effect: Annotated[
        float | None, typer.Option(help="Smallest difference worth detecting (for the sample size).")
    ] = None,
    description: Annotated[str, typer.Option(help="What the experiment tests.")] = "",
    by: ByOption = "",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Start an experiment: production users are enrolled at their next run, each in one sticky arm."""

    async def body() -> None:
        from tether.rollout.experiments import parse_arm, start_experiment
        from tether.store.flag_records import ExperimentSpec

        spec = ExperimentSpec.model_validate(
            {
                "arms": [parse_arm(a) for a in arm],
                "metric": metric,
                "traffic": traffic,
                "min_effect": min_effect,
                "description": description,
            }
        )
        async with open_session(project.resolve()) as session:
            created = await start_experiment(
                session.store, session.runtime.live, name, spec, actor=actor(by), reason=reason
            )
        if as_json:
            dump_json(created.model_dump(mode="json"))
        else:
            print_experiment(created)

    run_command(body)


@group.command("list")
def experiment_list(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Experiments, newest first."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            experiments = await session.store.experiments.all()
        if as_json:
            dump_json([e.model_dump(mode="json") for e in experiments])
            return
        table = Table("experiment", "status", "metric", "arms", "traffic", "started", "by")
        for e in experiments:
            table.add_row(
                escape(e.name),
                e.status,
                e.spec.metric,
                ", ".join(escape(a.name) for a in e.spec.arms),
                f"{e.spec.traffic:g}%",
                e.created_at.isoformat(timespec="seconds"),
                escape(e.created_by),
            )
        print_table(table)

    run_command(body)


@group.command("show")
def experiment_show(
    name: Annotated[str, typer.Argument()], project: ProjectOption = Path("."), as_json: JsonOption = False
) -> None:
    """An experiment's arms, and its change history."""

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            experiment = await session.store.experiments.get(name)
            history = await session.store.flags.history(kind="experiment", subject=name)
        if as_json:
            data = experiment.model_dump(mode="json")
            data["history"] = [h.model_dump(mode="json") for h in history]
            dump_json(data)
            return
        print_experiment(experiment)
        table = Table("revision", "when", "action", "by", "reason")
        for change in history:
            table.add_row(
                str(change.revision),
                change.changed_at.isoformat(timespec="seconds"),
                change.action,
                escape(change.actor),
                escape(change.reason),
            )
        out.print()
        print_table(table)

    run_command(body)


@group.command("stop")
def experiment_stop(
    name: Annotated[str, typer.Argument()],
    reason: ReasonOption,
    by: ByOption = "",
    project: ProjectOption = Path("."),
) -> None:
    """Stop enrolling users; enrolled runs keep their arm, so the report stays complete."""

    async def body() -> None:
        from tether.rollout.experiments import stop_experiment

        async with open_session(project.resolve()) as session:
            await stop_experiment(session.store, session.runtime.live, name, actor=actor(by), reason=reason)
        out.print(f"stopped experiment {escape(name)}", highlight=False)

    run_command(body)


@group.command("report")
def experiment_report(
    name: Annotated[str, typer.Argument()], project: ProjectOption = Path("."), as_json: JsonOption = False
) -> None:
    """Each arm's estimate; each arm against control: difference, 95% CI, p-value, runs still needed."""

    async def body() -> None:
        from tether.rollout.experiment_report import experiment_report as build

        async with open_session(project.resolve()) as session:
            report = await build(session.store, name)
        if as_json:
            dump_json(report.as_dict())
        else:
            print_report(report)

    run_command(body)
