"""A CPython process seen from outside: find its GIL with no help from inside.

The start-up hook (``_boot/sitecustomize.py``) finds the GIL from inside the
program; a program run with ``-I``/``-E``/``-S``, in a chroot or a container,
or already running never runs it.  This module finds the same struct from
another process, reading only files and memory::

    /proc/PID/maps ──► the file that defines _PyRuntime (python3.X or libpython3.X.so),
                       opened as /proc/PID/root/PATH (chroots, containers), PATH, or
                       /proc/PID/map_files/START-END, checked against the maps' inode
    elf.ElfFile     ──► _PyRuntime's link-time address + the load bias = its address
    /proc/PID/mem   ──► _PyRuntime's bytes: the version, the main interpreter, the GIL

Where the GIL is, per version (``Python/ceval_gil.c``'s struct, the same from
3.7 to 3.15; ``_agent.GilLocation`` describes it and the sampler reads it):

* **3.13+**: ``_PyRuntime`` starts with ``_Py_DebugOffsets`` (cookie
  ``xdebugpy``, ``PY_VERSION_HEX``, ``free_threaded``, then offsets written by
  the compiler for tools like this one).  ``runtime_state.interpreters_head``
  leads to the interpreters (the main one has id 0); ``interpreter_state``
  gives ``ceval_gil`` (the pointer to the interpreter's GIL),
  ``gil_runtime_state`` and the offsets of ``locked`` and ``last_holder``
  inside it.  3.13 lists 8 interpreter fields before ``ceval_gil``, 3.14 and
  3.15 add ``threads_main`` (9); we find the five GIL fields by their
  signature (holder and locked at fixed distances from the struct), so a
  field added before them does not break us, and check the index table
  agrees.  Free-threaded builds: ``enabled`` (offset given too) says whether
  the GIL is on now.
* **3.12**: no debug offsets.  The main interpreter is embedded in
  ``_PyRuntime``; ``interpreters.main`` points at it, and its GIL is the
  interpreter's ``_gil`` (``ceval.gil`` points there).  Offsets from the
  CPython headers (x86-64), see ``_LAYOUTS``.
* **3.7-3.11**: one GIL for the runtime, ``_PyRuntime.ceval.gil``.

Offsets taken from a table are confirmed before use: the struct's
``last_holder`` must be a thread state whose ``interp`` is the main
interpreter.  Where the table is wrong (an unusual build) we scan
``_PyRuntime`` for the one place that passes that check.

The thread states (``interp->threads.head``, ``next``, ``native_thread_id``:
3.11+) map the GIL's ``last_holder`` to an OS thread, which the sampler
needs to attribute holds and to tell a holder from a waiter.
"""
from __future__ import annotations

import errno
import os
import re
import struct
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..errors import ThreadwiseError
from . import _agent
from .elf import ElfError, ElfFile, load_bias

__all__ = ["AttachError", "Target", "open_target", "children_of"]

_WORD = struct.calcsize("@P")
_COOKIE = b"xdebugpy"
#: names of files worth opening as ELF to look for _PyRuntime
_PY_NAME = re.compile(r"^(lib)?python(\d+)(\.(\d+))?")
_MAX_THREADS = 4096


class AttachError(ThreadwiseError):
    """The probe can't read the GIL of this process; ``kind`` says why:
    ``gone``, ``denied``, ``not-cpython``, ``not-ready`` (the runtime is not
    initialised yet: try again), ``version`` (no known layout), ``layout``
    (the GIL was not where it should be)."""

    def __init__(self, kind: str, what: str, why: str = "", fix: str = "") -> None:
        self.kind = kind
        super().__init__(what, why, fix)


class _Layout(NamedTuple):
    """Offsets for a CPython without debug offsets (x86-64 and other LP64 builds)."""

    main: int  # _PyRuntime.interpreters.main
    gil: int  # the GIL struct: in _PyRuntime (3.7-3.11) or in the interpreter (3.12)
    gil_in_interp: bool
    ceval_gil: Optional[int]  # PyInterpreterState.ceval.gil (3.12)
    threads_head: int  # PyInterpreterState.threads.head (tstate_head before 3.11)
    tstate_next: int
    tstate_interp: int
    native_tid: Optional[int]  # PyThreadState.native_thread_id (3.11+)
    runtime_size: int  # sizeof(_PyRuntimeState), to say when the build differs


# computed with offsetof() from each version's internal headers (3.7.16, 3.8.18,
# 3.9.18, 3.10.13, 3.11.2 and 3.11.7, 3.12.1; gcc, x86-64)
_LAYOUTS: Dict[Tuple[int, int], _Layout] = {
    (3, 7): _Layout(32, 1264, False, None, 8, 8, 16, None, 1520),
    (3, 8): _Layout(40, 1152, False, None, 8, 8, 16, None, 1464),
    (3, 9): _Layout(40, 352, False, None, 8, 8, 16, None, 656),
    (3, 10): _Layout(40, 352, False, None, 8, 8, 16, None, 672),
    (3, 11): _Layout(48, 360, False, None, 16, 8, 16, 160, 166688),
    (3, 12): _Layout(48, 1040, True, 384, 72, 8, 16, 144, 459944),
}

# _Py_DebugOffsets (3.13+): uint64 fields.  Header: cookie, version, free_threaded;
# runtime_state: size, finalizing, interpreters_head; then interpreter_state.
_DBG_INTERP = 6  # index of interpreter_state.size
# index of ceval_gil in interpreter_state, per version (checked against the signature)
_DBG_CEVAL_GIL = {(3, 13): 8, (3, 14): 9, (3, 15): 9}
# thread_state fields (index from its size field): next, interp, native_thread_id
_DBG_TSTATE = {(3, 13): (2, 3, 6), (3, 14): (2, 3, 6), (3, 15): (2, 3, 9)}
_DBG_WORDS = 64


class _Map(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    dev: Tuple[int, int]
    inode: int
    path: str


def _read_maps(pid: int) -> List[_Map]:
    try:
        with open("/proc/%d/maps" % pid) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise AttachError("gone", "process %d does not exist (or has ended)" % pid,
                          "the PID is wrong, or the program finished",
                          "check the PID with: ps -ef | grep python") from None
    except PermissionError:
        raise _denied(pid, "its memory map (/proc/%d/maps) can't be read" % pid) from None
    out = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        major, minor = parts[3].split(":")
        out.append(_Map(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16),
                        (int(major, 16), int(minor, 16)), int(parts[4]),
                        parts[5].strip() if len(parts) > 5 else ""))
    return out


def _status(pid: int) -> Dict[str, str]:
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def _ptrace_scope() -> Optional[int]:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _denied(pid: int, what: str) -> AttachError:
    """The three-part message for a process whose memory we may not read."""
    st = _status(pid)
    name = st.get("Name", "?")
    causes = []
    uid = (st.get("Uid") or "").split()
    if uid and os.geteuid() != 0 and int(uid[0]) != os.geteuid():
        causes.append("it belongs to another user (uid %s; you are uid %d)" % (uid[0], os.geteuid()))
    scope = _ptrace_scope()
    if scope is not None and scope >= 1:
        causes.append("kernel.yama.ptrace_scope is %d: %s" % (scope, {
            1: "only a parent (or a process it named with PR_SET_PTRACER) may read a process's memory",
            2: "only root (CAP_SYS_PTRACE) may read another process's memory",
        }.get(scope, "no process may read another's memory")))
    if not causes:
        causes.append("the process is not dumpable (setuid, or prctl(PR_SET_DUMPABLE, 0)), or a "
                      "container or security policy (seccomp, AppArmor, SELinux) forbids ptrace access")
    return AttachError(
        "denied", "can't read the memory of process %d (%s): %s" % (pid, name, what),
        "; ".join(causes),
        "run threadwise as the same user or with sudo; or allow it for this boot with "
        "`sudo sysctl kernel.yama.ptrace_scope=0`; in a container add CAP_SYS_PTRACE "
        "(docker run --cap-add SYS_PTRACE); or start the program under the probe instead: "
        "threadwise probe -- python script.py (a parent may read its child)")


class _Memory:
    """Reads another process's memory through /proc/PID/mem."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise AttachError("gone", "process %d has ended" % pid) from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise _denied(pid, "opening /proc/%d/mem was refused (%s)" % (pid, exc.strerror)) from None
            raise

    def read(self, addr: int, size: int) -> bytes:
        data = os.pread(self.fd, size, addr)
        if len(data) != size:
            raise OSError(errno.EIO, "short read at 0x%x" % addr)
        return data

    def word(self, addr: int) -> int:
        return struct.unpack("@P", self.read(addr, _WORD))[0]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _candidate_files(pid: int, maps: List[_Map]) -> List[List[_Map]]:
    """File mappings that may define _PyRuntime, grouped by file: the
    executable and anything named python*/libpython* (not extension modules)."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = ""
    groups: Dict[Tuple[Tuple[int, int], int], List[_Map]] = {}
    for m in maps:
        if not m.path.startswith("/") or not m.inode:
            continue
        groups.setdefault((m.dev, m.inode), []).append(m)
    ranked = []
    for group in groups.values():
        path = group[0].path
        base = os.path.basename(path.replace(" (deleted)", ""))
        if path == exe:
            rank = 0
        elif _PY_NAME.match(base) and ".cpython-" not in base:
            rank = 1
        else:
            continue
        ranked.append((rank, group))
    ranked.sort(key=lambda r: r[0])
    return [g for _, g in ranked]


def _open_elf(pid: int, group: List[_Map]) -> Optional[ElfFile]:
    """Open the mapped file, through the process's own root first (a chroot or a
    container sees another tree than ours), checking it is the mapped inode."""
    m = group[0]
    path = m.path.replace(" (deleted)", "")
    tries = ["/proc/%d/root%s" % (pid, path), path, "/proc/%d/map_files/%x-%x" % (pid, m.start, m.end)]
    fallback = None
    for p in tries:
        try:
            st = os.stat(p)
        except OSError:
            continue
        same = st.st_ino == m.inode and (os.major(st.st_dev), os.minor(st.st_dev)) == m.dev
        if same or fallback is None:
            try:
                elf = ElfFile(p)
            except ElfError:
                continue
            if same:
                if fallback is not None:
                    fallback.close()
                return elf
            fallback = elf  # overlayfs shows another device: keep the first that opens
    return fallback


def _version_from(elf: ElfFile, mem: _Memory, bias: int, rt: int, path: str) -> Tuple[int, str]:
    """PY_VERSION_HEX (0 when only major.minor is known) and "3.X.Y"."""
    head = mem.read(rt, 16)
    if head[:8] == _COOKIE:
        hexv = struct.unpack("@Q", head[8:16])[0]
        return hexv, _hex_label(hexv)
    sym = elf.symbol("Py_Version")  # 3.11+
    if sym is not None:
        hexv = struct.unpack("@L", mem.read(sym[0] + bias, struct.calcsize("@L")))[0]
        if hexv >> 24 == 3:
            return hexv, _hex_label(hexv)
    m = _PY_NAME.match(os.path.basename(path))
    if m and m.group(4):
        major, minor = int(m.group(2)), int(m.group(4))
        return (major << 24) | (minor << 16), "%d.%d" % (major, minor)
    return 0, "?"


def _hex_label(hexv: int) -> str:
    level = {0xA: "a", 0xB: "b", 0xC: "rc"}.get((hexv >> 4) & 0xF, "")
    label = "%d.%d.%d" % (hexv >> 24, (hexv >> 16) & 0xFF, (hexv >> 8) & 0xFF)
    return label + ("%s%d" % (level, hexv & 0xF) if level else "")


class Target:
    """The CPython in process ``pid``, read from outside.  Use :func:`open_target`."""

    def __init__(self, pid: int, mem: _Memory, rt: int, rt_size: int, version: Tuple[int, int],
                 label: str, path: str) -> None:
        self.pid = pid
        self.mem = mem
        self.runtime = rt
        self.runtime_size = rt_size
        self.version = version
        self.version_label = label
        self.path = path
        self.free_threaded = False
        self.interp = 0
        self.gil_base = 0  # the struct's first byte (``enabled`` on free-threaded builds)
        self.interval_addr = 0  # where GilLocation's fields start (``interval``)
        self.enabled_addr: Optional[int] = None
        self.found_by = ""
        self.notes: List[str] = []
        self._threads_head = 0
        self._tstate_next = 8
        self._tstate_interp = 16
        self._native_tid: Optional[int] = None

    # -- the GIL --------------------------------------------------------------
    def gil_location(self) -> Dict[str, object]:
        """The GIL as the sampler reads it (``_agent.GilLocation.as_dict()``)."""
        loc = _agent.GilLocation(address=self.interval_addr)
        return loc.as_dict()

    def gil_enabled(self) -> bool:
        """Whether a GIL serialises Python code now (free-threaded builds: ``enabled``)."""
        if self.enabled_addr is None:
            return True
        try:
            return struct.unpack("@i", self.mem.read(self.enabled_addr, 4))[0] != 0
        except OSError:
            return False

    def read_gil(self) -> Tuple[int, int, int, int]:
        """(interval, last_holder, locked, switch_number) now."""
        fmt = "@LPiL"
        return struct.unpack(fmt, self.mem.read(self.interval_addr, struct.calcsize(fmt)))

    def _holder_ok(self, interval_addr: int) -> Optional[str]:
        """None if the struct at ``interval_addr`` is this interpreter's GIL, else why not."""
        try:
            fmt = "@LPiL"
            interval, holder, locked, _ = struct.unpack(
                fmt, self.mem.read(interval_addr, struct.calcsize(fmt)))
            if not 0 < interval <= 10 ** 10 or locked not in (0, 1):
                return "its interval or locked word is out of range"
            if not holder or holder % _WORD:
                return "no thread has held it yet"
            if self.mem.word(holder + self._tstate_interp) != self.interp:
                return "its last holder is not a thread of the main interpreter"
        except OSError:
            return "it can't be read"
        return None

    # -- threads --------------------------------------------------------------
    def thread_states(self) -> Dict[int, int]:
        """{thread-state address: OS thread id} of the main interpreter's threads
        (empty before 3.11, whose thread states hold no OS thread id)."""
        out: Dict[int, int] = {}
        if self._native_tid is None or not self._threads_head:
            return out
        try:
            ts = self.mem.word(self._threads_head)
            while ts and len(out) < _MAX_THREADS and ts not in out:
                out[ts] = struct.unpack("@L", self.mem.read(ts + self._native_tid, _WORD))[0]
                ts = self.mem.word(ts + self._tstate_next)
        except OSError:
            pass
        return out

    def label(self) -> str:
        return "CPython %s%s" % (self.version_label, " (free-threaded build)" if self.free_threaded else "")

    def close(self) -> None:
        self.mem.close()

    # -- finding it ---------------------------------------------------------------
    def locate(self) -> None:
        """Find the main interpreter and its GIL; raises :class:`AttachError`."""
        head = self.mem.read(self.runtime, 8)
        if head == _COOKIE:
            self._locate_debug_offsets()
        elif self.version in _LAYOUTS:
            self._locate_layout(_LAYOUTS[self.version])
        else:
            raise _unknown_version(self)
        self._check_threads()

    def _locate_debug_offsets(self) -> None:
        words = struct.unpack("@%dQ" % _DBG_WORDS, self.mem.read(self.runtime, 8 * _DBG_WORDS))
        self.free_threaded = bool(words[2])
        interp_fields = words[_DBG_INTERP:]
        found = _gil_fields(interp_fields, self.free_threaded)
        if found is None:
            raise _unknown_version(self, "its _Py_DebugOffsets has no GIL offsets we recognise")
        i, ceval_gil, gil, enabled, _locked, holder = found
        expected = _DBG_CEVAL_GIL.get(self.version)
        if expected is not None and expected != i:
            self.notes.append("_Py_DebugOffsets lists the GIL at field %d, not %d as in CPython %d.%d"
                              % (i, expected, self.version[0], self.version[1]))
        interp = self._main_interp(words[5], interp_fields[2], interp_fields[1])
        self.interp = interp
        # the interpreter's GIL is where ceval.gil points (its own _gil, unless shared)
        base = self.mem.word(interp + ceval_gil) or interp + gil
        self.gil_base = base
        self.interval_addr = base + (holder - gil) - _WORD
        self.enabled_addr = base + enabled if self.free_threaded else None
        ts = _tstate_fields(words, self.version, len(interp_fields), i)
        if ts is not None:
            next_off, interp_off, native_off = ts
            self._tstate_next, self._tstate_interp, self._native_tid = next_off, interp_off, native_off
        self._threads_head = interp + interp_fields[3]
        self.found_by = "debug-offsets"
        if not self.free_threaded or self.gil_enabled():
            why = self._holder_ok(self.interval_addr)
            if why is not None and why != "no thread has held it yet":
                self.notes.append("the GIL found through _Py_DebugOffsets did not pass a check (%s)" % why)

    def _main_interp(self, head_off: int, next_off: int, id_off: int) -> int:
        interp = self.mem.word(self.runtime + head_off)
        if not interp:
            raise AttachError("not-ready", "the Python runtime in process %d is not initialised yet"
                              % self.pid)
        seen = 0
        while interp and seen < 256:
            if struct.unpack("@q", self.mem.read(interp + id_off, 8))[0] == 0:
                return interp
            nxt = self.mem.word(interp + next_off)
            if not nxt:
                return interp  # the oldest one is the main interpreter
            interp, seen = nxt, seen + 1
        return interp

    def _locate_layout(self, lay: _Layout) -> None:
        interp = self.mem.word(self.runtime + lay.main)
        if not interp:
            raise AttachError("not-ready", "the Python runtime in process %d is not initialised yet"
                              % self.pid)
        self.interp = interp
        self._tstate_next, self._tstate_interp, self._native_tid = lay.tstate_next, lay.tstate_interp, lay.native_tid
        self._threads_head = interp + lay.threads_head
        if lay.gil_in_interp:
            base = interp + lay.gil
            if lay.ceval_gil is not None:
                pointed = self.mem.word(interp + lay.ceval_gil)
                base = pointed if pointed else base
        else:
            base = self.runtime + lay.gil
        self.found_by = "known-layout"
        why = self._holder_ok(base)
        if why is None:
            self.gil_base = self.interval_addr = base
            return
        found = self._scan(lay)
        if found is not None:
            self.gil_base = self.interval_addr = found
            self.found_by = "layout-scan"
            self.notes.append("the GIL was not at CPython %d.%d's usual offset (%s): found by a scan "
                              "of _PyRuntime" % (self.version[0], self.version[1], why))
            return
        if why == "no thread has held it yet":
            raise AttachError("not-ready", "the GIL of process %d has not been taken yet" % self.pid)
        if self.runtime_size and self.runtime_size != lay.runtime_size:
            why += "; _PyRuntime is %d bytes here, %d in the build the offsets came from" % (
                self.runtime_size, lay.runtime_size)
        raise AttachError(
            "layout", "the GIL of process %d (CPython %s) was not found" % (self.pid, self.version_label),
            "this build lays out _PyRuntime differently from python.org's CPython %d.%d (%s)"
            % (self.version[0], self.version[1], why),
            "start the program under the probe instead (threadwise probe -- python script.py): "
            "its start-up hook finds the GIL from inside")

    def _scan(self, lay: _Layout) -> Optional[int]:
        """The one place in _PyRuntime that passes the holder check, or None."""
        size = min(self.runtime_size or 1 << 20, 4 << 20)
        try:
            data = self.mem.read(self.runtime, size)
        except OSError:
            return None
        hits = []
        fmt = struct.Struct("@LPiL")
        for off in range(0, size - fmt.size, _WORD):
            interval, holder, locked, _ = fmt.unpack_from(data, off)
            if 0 < interval <= 10 ** 10 and locked in (0, 1) and holder > 4096 and not holder % _WORD:
                if self._holder_ok(self.runtime + off) is None:
                    hits.append(self.runtime + off)
                    if len(hits) > 1:
                        return None
        return hits[0] if hits else None

    def _check_threads(self) -> None:
        if self._native_tid is None:
            why = ("keeps no OS thread id in its thread states" if self.version < (3, 11)
                   else "has thread states the probe does not know")
            self.notes.append("CPython %s %s: GIL holds are not attributed to threads"
                              % (self.version_label, why))
            return
        tids = set(_task_ids(self.pid))
        states = self.thread_states()
        if states and not set(states.values()) <= tids:
            self._native_tid = None
            self.notes.append("the thread states' OS thread ids did not match the process's threads: "
                              "GIL holds are not attributed to threads")


def _gil_fields(fields: Tuple[int, ...], free_threaded: bool) -> Optional[Tuple[int, int, int, int, int, int]]:
    """Find (index, ceval_gil, gil_runtime_state, enabled, locked, holder) among the
    interpreter_state offsets: the struct's holder and locked lie at fixed
    distances from its start (after ``enabled`` on free-threaded builds)."""
    holder_at = struct.calcsize("@iL" if free_threaded else "@L")
    holder_at = holder_at + (-holder_at % _WORD)
    locked_at = holder_at + _WORD
    for i in range(1, min(len(fields) - 4, 40)):
        ceval_gil, gil, enabled, locked, holder = fields[i:i + 5]
        if (0 < gil < fields[0] and ceval_gil < fields[0] and locked == gil + locked_at
                and holder == gil + holder_at and enabled < locked_at):
            return i, ceval_gil, gil, enabled, locked, holder
    return None


def _tstate_fields(words: Tuple[int, ...], version: Tuple[int, int], n_interp: int,
                   gil_index: int) -> Optional[Tuple[int, int, int]]:
    """(next, interp, native_thread_id) offsets in PyThreadState, from the
    thread_state section that follows interpreter_state (found by its
    signature: size, prev=0, next=8, interp=16)."""
    idx = _DBG_TSTATE.get(version)
    start = None
    for j in range(_DBG_INTERP + gil_index + 5, len(words) - 12):
        if words[j + 1] == 0 and words[j + 2] == _WORD and words[j + 3] == 2 * _WORD and 64 < words[j] < 1 << 16:
            start = j
            break
    if start is None or idx is None:
        return None
    next_i, interp_i, native_i = idx
    return words[start + next_i], words[start + interp_i], words[start + native_i]


def _unknown_version(t: Target, why: str = "") -> AttachError:
    known = ", ".join("%d.%d" % v for v in sorted(_LAYOUTS)) + ", 3.13+"
    return AttachError(
        "version", "process %d runs CPython %s, whose GIL the probe can't find from outside"
        % (t.pid, t.version_label),
        why or "the probe knows where the GIL lives in CPython %s; this version has no "
        "_Py_DebugOffsets (3.13+) and no known layout" % known,
        "start the program under the probe instead (threadwise probe -- python script.py): its "
        "start-up hook finds the GIL from inside, on any version")


def _task_ids(pid: int) -> List[int]:
    try:
        return [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    except (OSError, ValueError):
        return []


def children_of(pid: int) -> List[int]:
    """The PIDs of ``pid``'s child processes now (``/proc/PID/task/*/children``)."""
    out: List[int] = []
    for tid in _task_ids(pid):
        try:
            with open("/proc/%d/task/%d/children" % (pid, tid)) as f:
                out.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def _find_runtime(pid: int) -> Tuple[ElfFile, int, List[_Map]]:
    """(ELF file, load bias, its mappings) of the file that defines _PyRuntime."""
    maps = _read_maps(pid)
    if not maps:
        raise AttachError("gone", "process %d has no memory map (a kernel thread, or it has ended)" % pid)
    cpython_old = None
    for group in _candidate_files(pid, maps):
        elf = _open_elf(pid, group)
        if elf is None:
            continue
        sym = elf.symbol("_PyRuntime")
        if sym is None:
            if elf.symbol("Py_Initialize") is not None:
                cpython_old = group[0].path
            elf.close()
            continue
        bias = load_bias(elf, [(m.start, m.offset) for m in group])
        if bias is None:
            elf.close()
            continue
        if elf.bits != 8 * _WORD:
            elf.close()
            raise AttachError("version", "process %d is a %d-bit program; this probe reads %d-bit ones"
                              % (pid, elf.bits, 8 * _WORD))
        return elf, bias, group
    exe = ""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        pass
    if cpython_old is not None:
        raise AttachError("version", "process %d (%s) is a CPython older than 3.7 (no _PyRuntime)"
                          % (pid, cpython_old), "the probe reads CPython 3.7 and later from outside",
                          "start the program under the probe instead (threadwise probe -- python "
                          "script.py): it then measures from inside, with a knocker thread (approximate)")
    raise AttachError("not-cpython", "process %d (%s) is not a CPython interpreter" % (pid, exe or "?"),
                      "none of its files defines _PyRuntime (PyPy, a shell or another program "
                      "starting Python as a child?)",
                      "give the PID of the python process itself (ps -ef --forest shows the tree); "
                      "for PyPy use threadwise probe -- pypy3 script.py")


def open_target(pid: int, retries: int = 5) -> Target:
    """Attach to the CPython in ``pid`` and find its GIL; raises :class:`AttachError`
    (``retries``: how many more looks, 10 ms apart, while the runtime is not ready)."""
    try:
        return _open_target(pid, retries)
    except OSError as exc:  # the process ended or exec'd while we read it
        if not os.path.exists("/proc/%d" % pid):
            raise AttachError("gone", "process %d has ended" % pid) from None
        raise AttachError("not-ready", "process %d could not be read (%s)" % (pid, exc),
                          "it changed while we read it (exec, exit)") from None


def _open_target(pid: int, retries: int) -> Target:
    elf, bias, group = _find_runtime(pid)
    try:
        rt_link, rt_size = elf.symbol("_PyRuntime") or (0, 0)
        rt = rt_link + bias
        mem = _Memory(pid)
        try:
            hexv, label = _version_from(elf, mem, bias, rt, group[0].path)
        except OSError as exc:
            mem.close()
            raise AttachError("gone", "process %d could not be read (%s)" % (pid, exc)) from None
    finally:
        elf.close()
    target = Target(pid, mem, rt, rt_size, (hexv >> 24, (hexv >> 16) & 0xFF), label, group[0].path)
    for attempt in range(retries + 1):
        try:
            target.locate()
            return target
        except AttachError as exc:
            # a holder that just ended (its thread state freed) fails the check: look again
            if exc.kind not in ("layout", "not-ready") or attempt == retries:
                target.close()
                raise
        except OSError as exc:
            if not os.path.exists("/proc/%d" % pid):
                target.close()
                raise AttachError("gone", "process %d has ended" % pid) from None
            if attempt == retries:
                target.close()
                raise AttachError("layout", "reading the runtime of process %d failed (%s)" % (pid, exc),
                                  "its memory changed while we read it, or an unusual build") from None
        target.notes = []
        time.sleep(0.01)
    raise AssertionError("unreachable")
