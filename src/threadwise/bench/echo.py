"""A TCP echo server on 127.0.0.1 for the socket workload and the convoy experiment.

The socket workload talks to it as to a service on a network: with ``delay_s``
(1 ms by default there) each answer waits, as a remote service would, so the
client's time is spent waiting on the socket.  The convoy experiment uses no
delay, so any latency it sees comes from the client side.

It runs in its own process (``python -m threadwise.bench.echo``), so its work never
competes for the GIL of the process being measured; :class:`EchoServer` starts
it, learns the port from its first line of output, and stops it.  asyncio
serves every connection on one event loop, answering each read at once.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from typing import Optional, Tuple

from ..errors import ThreadwiseError


DELAY_S = 0.0  # set from argv: seconds the "service" takes before it answers


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if DELAY_S:
                await asyncio.sleep(DELAY_S)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port, backlog=256)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class EchoServer:
    """Context manager: an echo server process on 127.0.0.1; ``.address`` is (host, port)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.proc: Optional[subprocess.Popen] = None
        self.address: Optional[Tuple[str, int]] = None

    def start(self) -> "EchoServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "threadwise.bench.echo", "0", repr(self.delay_s), str(os.getpid())],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.stop()
            raise ThreadwiseError(
                "the TCP echo server on 127.0.0.1 did not start (it printed %r)" % line,
                "loopback networking is unavailable or threadwise is not installed in this Python",
                "check that 127.0.0.1 is reachable, or run without the socket workload")
        self.address = ("127.0.0.1", int(line))
        return self

    @property
    def pid(self) -> Optional[int]:
        """The server process (its CPU time is threadwise's, not another program's)."""
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> "EchoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    if len(sys.argv) > 3:   # started by EchoServer: end with it, even when it is SIGKILLed
        from threadwise._lifetime import die_with_parent
        die_with_parent(int(sys.argv[3]))
    DELAY_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    try:
        asyncio.run(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
