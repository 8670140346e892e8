"""The `tether` Typer app: every command group assembled in one place, and the entry point.

To add a command, put it in the module of its group (or a new module with a `commands` or `group`
Typer) and add that Typer here; modules import only `tether.cli.common`, never each other.
"""

from __future__ import annotations

import functools
import sys

import typer
from rich.markup import escape

from tether.cli import (
    controls,
    cost,
    data,
    db,
    evals,
    experiments,
    flags,
    incidents,
    keys,
    observe,
    online_eval,
    project,
    redteam,
    releases,
    rollout,
    runs,
    service,
    webhooks,
)
from tether.cli.common import defer_configuration, err, load_settings, settings_are_defaults

app = typer.Typer(help="Run LLM agents in production with controlled autonomy.", no_args_is_help=True)

# Top-level commands, in the order `tether --help` lists them.
app.add_typer(project.commands)  # init
app.add_typer(runs.commands)  # run, approve
app.add_typer(service.commands)  # worker, serve, api, openapi
app.add_typer(evals.commands)  # gate, readiness
app.add_typer(redteam.commands)  # redteam
# Command groups.
app.add_typer(keys.group, name="keys")
app.add_typer(runs.group, name="runs")
app.add_typer(releases.group, name="release")
app.add_typer(rollout.group, name="rollout")
app.add_typer(db.group, name="db")
app.add_typer(data.group, name="data")
app.add_typer(observe.traces_group, name="traces")
app.add_typer(observe.alerts_group, name="alerts")
app.add_typer(evals.eval_group, name="eval")
app.add_typer(evals.cost_group, name="cost")
evals.cost_group.add_typer(cost.commands)  # cost report
app.add_typer(cost.breakers_group, name="breakers")
app.add_typer(webhooks.group, name="webhook")
app.add_typer(online_eval.group, name="online-eval")
app.add_typer(flags.group, name="flags")
app.add_typer(experiments.group, name="experiment")
app.add_typer(controls.group, name="control")
app.add_typer(incidents.group, name="incident")


def main() -> None:
    """The `tether` console script: settings are checked and logging configured before any command.

    Help alone needs neither, so `tether --help` does not import them.
    """
    args = sys.argv[1:]
    if args and "--help" not in args:
        configure = functools.partial(_configure, service_command=args[0] in ("serve", "api", "worker"))
        if args[:2] == ["runs", "list"] and settings_are_defaults():
            defer_configuration(configure)  # it may answer from SQLite alone (common.glance_runs)
        else:
            configure()
    app()


def _configure(*, service_command: bool) -> None:
    from tether.observe.logs import configure_logging, secret_env_names, secrets_from_environment

    try:
        settings = load_settings()
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
    names = secret_env_names(settings.log_secret_env)
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level or ("INFO" if service_command else "WARNING"),
        secrets=secrets_from_environment(extra_names=names),
    )
