"""Connection timeouts of the served API (issue 10 item 4d): a client that opens a connection and
sends only part of a request head is cut off after TETHER_HTTP_HEADER_TIMEOUT_S, while complete
requests (and a slow but complete one) are served as usual."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import pytest
from conftest import EXAMPLE
from service_helpers import Api, Fleet, create_key, free_port, service_env

HEADER_TIMEOUT_S = 2
GENEROUS_S = 60.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`tether serve` on the example agent with a short header timeout; yields its port."""
    tmp_path = tmp_path_factory.mktemp("served")
    project = tmp_path / "support_agent"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".tether", "data", "__pycache__"))
    env = service_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tether.db'}",
        data_dir=tmp_path / "data",
        code_cache=tmp_path / "code",
    )
    env["TETHER_HTTP_HEADER_TIMEOUT_S"] = str(HEADER_TIMEOUT_S)
    key = create_key(project, env, user="ops", scopes="admin")
    port = free_port()
    with Fleet(project, env, tmp_path / "logs") as fleet:
        proc = fleet.start_serve(port, concurrency=1)
        with Api(port, key) as api:
            api.wait_ready(workers=1, timeout=GENEROUS_S, procs=[proc])
        yield port


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
