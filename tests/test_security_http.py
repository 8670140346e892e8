"""The served API's connections (issue 10 items 4d and 4e): a client that opens a connection and
sends only part of a request head is cut off after TETHER_HTTP_HEADER_TIMEOUT_S while complete
requests are served as usual; a client closing an event stream is logged as the normal thing it is
(one INFO line), not as an ERROR with a traceback."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import EXAMPLE
from service_helpers import Api, Fleet, Proc, create_key, free_port, service_env

HEADER_TIMEOUT_S = 2
GENEROUS_S = 60.0


@dataclass
class Served:
    port: int
    key: str
    proc: Proc


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`tether serve` on the example agent with a short header timeout."""
    tmp_path = tmp_path_factory.mktemp("served")
    project = tmp_path / "support_agent"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".tether", "data", "__pycache__"))
    env = service_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tether.db'}",
        data_dir=tmp_path / "data",
        code_cache=tmp_path / "code",
    )
    env["TETHER_HTTP_HEADER_TIMEOUT_S"] = str(HEADER_TIMEOUT_S)
    key = create_key(project, env, user="u1", scopes="admin")
    port = free_port()
    with Fleet(project, env, tmp_path / "logs") as fleet:
        proc = fleet.start_serve(port, concurrency=1)
        with Api(port, key) as api:
            api.wait_ready(workers=1, timeout=GENEROUS_S, procs=[proc])
        yield Served(port, key, proc)


@pytest.fixture
def served(service: Served) -> int:
    return service.port


def _closed_by_server(sock: socket.socket) -> float:
    """Seconds until the server closes the connection (recv returns b""); fails after GENEROUS_S."""
    started = time.monotonic()
    sock.settimeout(GENEROUS_S)
    try:
        while sock.recv(1024):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept a half-sent request open for {GENEROUS_S}s")
    return time.monotonic() - started


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (head and Content-Length body) read from the socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_half_sent_request_head_is_cut_off(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")  # and never the rest
        waited = _closed_by_server(sock)
    assert waited >= HEADER_TIMEOUT_S - 1  # it was the deadline, not an immediate refusal


def test_a_connection_that_sends_nothing_is_cut_off(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        _closed_by_server(sock)


def test_complete_requests_are_served_and_keep_alive_still_works(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=GENEROUS_S) as sock:
        for _ in range(2):  # two requests on one connection: the deadline is re-armed per request
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert _response(sock).startswith(b"HTTP/1.1 200")
        # Then idle: the keep-alive timeout (or the header deadline) closes it.
        _closed_by_server(sock)


def test_a_client_closing_an_event_stream_is_logged_as_info_not_as_an_error(service: Served) -> None:
    with Api(service.port, service.key) as api:
        answer = api.client.post("/v1/runs", json={"input": "I want a refund for order 12346", "wait": 30})
        run_id = answer.json()["run_id"]
        assert answer.json()["status"] == "waiting_for_approval"  # so its stream stays open
        with api.client.stream("GET", f"/v1/runs/{run_id}/events") as stream:
            first = next(stream.iter_lines())
            assert first.startswith(("id:", "event:", ":"))
        # The client is gone; wait (boundedly) for the server to notice and say so.
        path = f"/v1/runs/{run_id}/events"
        deadline = time.monotonic() + GENEROUS_S
        while not any("client closed the connection" in line and path in line for line in _log(service)):
            assert time.monotonic() < deadline, "the server never logged the closed stream"
            time.sleep(0.2)
    about_it = [line for line in _log(service) if path in line or "Exception in ASGI" in line]
    assert about_it and all('"level": "info"' in line for line in about_it), about_it
    assert not any("Traceback" in line and path in line for line in _log(service))


def _log(service: Served) -> list[str]:
    return service.proc.output().splitlines()
