"""A progress bar for long maps (rich, on stderr), updated once per finished chunk.

No refresh thread (``auto_refresh=False``): the bar redraws at most ten times a
second from the map's own thread, so starting it never makes the process
multi-threaded (which would stop the processes backend from forking).
"""
from __future__ import annotations

import sys
import time
from typing import Any, Optional


class ProgressBar:
    def __init__(self, total: Optional[int], description: str = "pmap") -> None:
        self.total = total
        self.done = 0
        self._last = 0.0
        self._bar: Any = None
        try:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
        except ImportError:  # pragma: no cover - rich is a dependency
            return
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             console=Console(file=sys.stderr), auto_refresh=False,
                             redirect_stdout=False, redirect_stderr=False)
        self._task = self._bar.add_task(description, total=total)
        self._bar.start()

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self._bar is not None and (now - self._last > 0.1):
            self._last = now
            self._bar.update(self._task, completed=self.done)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done,
                             total=self.total if self.total is not None else self.done)
            self._bar.refresh()
            self._bar.stop()
            self._bar = None
