"""The serial backend: every chunk runs in the calling thread, in order.

The baseline every other backend is compared with, and what ``auto`` falls
back to when workers would cost more than they save.  Nothing can interrupt
a call running in the caller's own thread, so a map with a ``timeout`` on the
serial backend runs in one helper thread instead (``_executor.py`` does that).
"""
from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Callable, List, Mapping, Optional, Sequence

from . import _chunk
from ._base import Backend, ChunkDone, done_future


class SerialBackend(Backend):
    name = "serial"
    chunk_target_s = 0.02
    inflight_per_worker = 1

    def __init__(self, workers: int = 1) -> None:
        super().__init__(1)

    def submit_chunk(self, fn: Callable[[Any], Any], base: int, items: List[Any], *,
                     timeout: Optional[float], stop_on_error: bool) -> "cf.Future[Any]":
        # Exception, not BaseException: Ctrl-C and sys.exit() in fn behave as in a plain loop
        results, elapsed, nfail = _chunk.run_items(fn, items, base, stop_on_error, Exception,
                                                   "the calling thread")
        return done_future(ChunkDone(results, elapsed, nfail))

    def submit_call(self, fn: Callable[..., Any], args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> "cf.Future[Any]":
        try:
            return done_future(fn(*args, **kwargs))
        except Exception as e:
            return done_future(exc=e)
