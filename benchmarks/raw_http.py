"""A minimal HTTP/1.1 keep-alive client for load generation, on plain asyncio streams.

httpx spends about a millisecond of CPU per request; offering 600+ requests per second from a
process sharing two cores with the server under test, the client itself became the bottleneck and
its own queueing showed up as server latency. This client does only what a load generator needs:
POST a prepared JSON body on a kept-alive connection and read the status and the body
(`Content-Length` framing, which is what the Tether API answers with for these requests).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class ConnectionClosed(ConnectionError):
    """The server closed the connection before a whole answer arrived."""


@dataclass
class Answer:
    status: int
    body: bytes


class RawClient:
    """Up to `connections` kept-alive connections to one host; `post` borrows one per request."""

    def __init__(self, host: str, port: int, headers: dict[str, str], connections: int) -> None:
        self._host, self._port = host, port
        self._head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._idle: asyncio.LifoQueue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(connections)

    async def post(self, path: str, body: bytes) -> Answer:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        async with self._slots:
            reader, writer = await self._connection()
            try:
                writer.write(request)
                answer, keep = await _read_answer(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self._idle.put_nowait((reader, writer))
            else:
                writer.close()
            return answer

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not self._idle.empty():
            return self._idle.get_nowait()
        return await asyncio.open_connection(self._host, self._port)

    async def close(self) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("connection closed before the answer's head") from None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("connection closed in the answer's body") from None
    return Answer(status, body), headers.get("connection", "").lower() != "close"
