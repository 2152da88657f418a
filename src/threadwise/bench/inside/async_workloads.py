"""asyncio variants of the I/O workloads (Python 3.7+ only; never imported on 2.7).

Each coroutine does exactly the work of its thread-based twin in
``workloads.py`` and returns the same checksum, so the host verifies asyncio
cells against the serial baseline like any other backend.
"""
import asyncio

from . import workloads as W


async def sleep(size, index):
    for _ in range(10):
        await asyncio.sleep(size / 10000.0)
    return size * 10 + index + 1


async def socket_roundtrip(size, index, nbytes=1024):
    host, port = W.CONTEXT["echo"]
    payload = (b"%08d" % index) * (nbytes // 8)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        import socket
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        acc = 0
        for _ in range(size):
            writer.write(payload)
            await writer.drain()
            data = await reader.readexactly(nbytes)
            acc += len(data)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:
            pass
    return (acc + index) & W.MASK32


async def run_tasks(name, size, workers, tasks, params):
    """Run ``tasks`` tasks over ``workers`` coroutines (task t on coroutine t % workers)."""
    fn = globals()[name]

    async def worker(w):
        out = {}
        for t in range(w, tasks, workers):
            out[t] = await fn(size, t, **params)
        return out

    parts = await asyncio.gather(*[worker(w) for w in range(workers)])
    merged = {}
    for p in parts:
        merged.update(p)
    return [merged[t] for t in range(tasks)]
