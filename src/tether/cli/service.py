"""`tether serve`, `tether api`, `tether worker` and `tether openapi`: the long-running processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tether.cli.common import (
    JsonOption,
    ProjectOption,
    dump_json,
    err,
    load_settings,
    open_session,
    out,
    run_command,
    warn_about_tools,
)

if TYPE_CHECKING:
    from tether.api.app import ServiceOptions
    from tether.settings import Settings
    from tether.store.repository import Store

commands = typer.Typer()


@commands.command()
def worker(
    project: ProjectOption = Path("."),
    drain: Annotated[bool, typer.Option("--drain", help="Finish every claimable run, then exit.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Runs executed at once.")] = 4,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve this worker's Prometheus counters on 127.0.0.1:PORT."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Execute queued runs and resume runs whose process died (lease expired).

    Without --drain it runs until SIGTERM or Ctrl-C, then stops claiming, lets each in-flight run
    finish its current step, and hands the rest back to the queue.
    """

    async def serve_forever() -> None:
        from tether.evals.online import online_scoring
        from tether.incidents.service import rollback_hook
        from tether.rollout.controller import CanaryController
        from tether.rollout.events import on_rollback
        from tether.rollout.service import Rollout
        from tether.runtime.worker import Worker
        from tether.webhooks.service import dispatching

        async with open_session(project.resolve()) as session, contextlib.AsyncExitStack() as background:
            settings = session.runtime.settings
            # Webhook sending and online scoring beside the runs, for as long as the worker lives.
            await background.enter_async_context(dispatching(session.store, settings))
            await background.enter_async_context(
                online_scoring(session.store, settings, project=session.project)
            )
            runner = Worker(session.runtime, concurrency=concurrency, poll_s=settings.worker_poll_s)
            # Workers look at canaries too (one process acts at a time), so analysis goes on without an API.
            rollout = Rollout(session.store, session.runtime.live)
            controller = CanaryController(rollout, owner=runner.worker_id)
            on_rollback(rollback_hook(session.store))  # an automatic rollback here opens an incident
            canary_task = asyncio.create_task(controller.run_forever(settings.rollout_interval_s))
            if metrics_port is not None:
                session.telemetry.serve_metrics(metrics_port)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, runner.stop)
            err.print(f"worker {runner.worker_id} running (concurrency {concurrency}); Ctrl-C to stop")
            try:
                await runner.run()
            finally:
                canary_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await canary_task
            err.print(f"worker stopped after {runner.completed} run(s)")

    if not drain:
        run_command(serve_forever)
        return

    async def body() -> None:
        async with open_session(project.resolve()) as session:
            done = await session.runtime.drain()
        if as_json:
            dump_json([{"run_id": r.id, "status": r.status} for r in done])
            return
        for record in done:
            out.print(f"{record.id}  {record.status}", highlight=False)
        out.print(f"drained {len(done)} run(s)")

    run_command(body)


def _service_options(project: Path, release: str | None, concurrency: int) -> ServiceOptions:
    from tether.agent.config import ConfigError
    from tether.agent.project import CONFIG_FILE
    from tether.api.app import ServiceOptions

    project = project.resolve()
    settings = load_settings()
    if settings.database_url is None and not (project / CONFIG_FILE).is_file():
        raise ConfigError(f"{project} is not an agent project (no {CONFIG_FILE}); pass --project")
    return ServiceOptions(
        project=project, release=release, embedded_worker_concurrency=concurrency, settings=settings
    )


def _serve(
    project: Path, release: str | None, concurrency: int, host: str, port: int, *, first_key: bool
) -> None:
    async def body() -> None:
        import uvicorn

        from tether.api.app import create_app
        from tether.api.auth import issue_key
        from tether.api.server import server_config
        from tether.rollout.releases import working_copy_release
        from tether.store.repository import Store

        options = _service_options(project, release, concurrency)
        options = dataclasses.replace(options, session_secret=options.resolve_session_secret())
        store = await Store.open(options.database_url)
        try:
            # Resolve the release here, so a problem is one clear line rather than a traceback from the
            # server's startup, and the app is handed the release instead of snapshotting it again.
            chosen = (
                await store.get_release(release)
                if release
                else await working_copy_release(store, options.project)
            )
            options = dataclasses.replace(options, release=chosen.version)
            warn_about_tools(chosen)
            if release:  # --release X: the deployment switches to X (gate enforced) before serving
                await _switch_at_start(store, options.settings, chosen.version)
            if first_key and not await store.list_api_keys():
                _, plaintext = await issue_key(
                    store, user_id="admin", tenant_id="default", scopes=["admin"], label="first start"
                )
                url = f"http://{host}:{port}"
                out.print("[bold]Created an admin API key (shown once; keep it safe):[/bold]")
                out.print(f"  {plaintext}", highlight=False)
                out.print("Try it:", highlight=False)
                out.print(
                    f"  curl -s -X POST {url}/v1/runs -H 'Authorization: Bearer {plaintext}' "
                    f"-H 'Content-Type: application/json' "
                    f"""-d '{{"input": "What is your return policy?", "wait": 10}}'""",
                    highlight=False,
                    soft_wrap=True,
                )
            # The dashboard is mounted by create_app, so both `serve` and `api` serve it.
            out.print(f"Dashboard: http://{host}:{port}/ui/ (log in with an API key)", highlight=False)
        finally:
            await store.close()
        # Logging is configured once, by `main` (JSON or console); the app logs each request itself.
        config = server_config(create_app(options), host=host, port=port, settings=options.settings)
        await uvicorn.Server(config).serve()

    run_command(body)


async def _switch_at_start(store: Store, settings: Settings, version: str) -> None:
    from tether.live import LiveConfig
    from tether.rollout.service import Rollout

    rollout = Rollout(store, LiveConfig(store, redis_url=settings.redis_url))
    current = await rollout.fresh((await store.get_release(version)).agent_name)
    live = current.live
    if live is not None and live.version == version and current.canary is None:
        return
    done = await rollout.switch(
        version, actor="tether serve --release", reason=f"started with --release {version}"
    )
    out.print(
        f"deployment of {done.agent_name}: {version} is live (revision {done.revision})", highlight=False
    )


HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]
ReleaseOption = Annotated[
    str | None,
    typer.Option(
        help="Switch the deployment to this release at start (its gate must have passed); "
        "default: follow the deployment, or the working copy when there is none."
    ),
]


@commands.command()
def serve(
    project: ProjectOption = Path("."),
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="Runs the built-in worker executes at once.")
    ] = 4,
    release: ReleaseOption = None,
) -> None:
    """API and a worker in one process (embedded SQLite by default). Prints an admin key on first start."""
    _serve(project, release, concurrency, host, port, first_key=True)


@commands.command()
def api(
    project: ProjectOption = Path("."),
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    release: ReleaseOption = None,
) -> None:
    """The HTTP API alone; run `tether worker` processes beside it against the same database."""
    _serve(project, release, 0, host, port, first_key=False)


@commands.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Print the HTTP API's OpenAPI document (generated from the code)."""
    from tether.api.app import ServiceOptions, create_app

    document = create_app(ServiceOptions(project=Path("."))).openapi()
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")
