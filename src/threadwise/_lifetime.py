"""Children that end with their parent, at the operating-system level.

A Python thread that watches ``os.getppid()`` can't run while the process holds the
GIL in C code (a catastrophic regex held a worker for 25 s after its parent was
SIGKILLed).  Linux can do it in the kernel: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``
makes the child receive SIGKILL when the thread that started it exits.  Every
child threadwise starts (the echo server, agents, process workers) calls
:func:`die_with_parent` first thing; the Python-level watches stay as a second line
(other systems, or a parent thread that exits while its process lives on).

The agent's bootstrap (bench/interpreters.py) does the same with its own stdlib-only
copy, since it runs inside interpreters that can't import threadwise.
"""
from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(expected_ppid: int, sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` when our parent dies; exit at once if it already has.

    Returns whether the kernel took the request (False off Linux or without ctypes)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
        except (OSError, AttributeError, ImportError):
            armed = False
    if os.getppid() != expected_ppid:   # the parent died before the request took effect
        os._exit(1)
    return armed
