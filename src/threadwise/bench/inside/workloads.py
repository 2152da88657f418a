# -*- coding: utf-8 -*-
"""The workload catalog: the work threadwise runs on every backend and interpreter.

Runs INSIDE the target interpreter, so: standard library only, and valid
Python 2.7 (Jython) as well as 3.8+.  No f-strings, no keyword-only arguments,
no ``async`` (the asyncio variants live in ``async_workloads.py``).

Data flow::

    agent (cell config) --> CATALOG[name].fn(size, index, **params) --> checksum
                                                                  |
    host verifies: checksum is not None, identical for the same
    (workload, size, index) on every repeat, backend and worker count,
    and equal to ``expected(size, index)`` where a cheap closed form exists.

A *task* is one call ``fn(size, index)``; ``index`` is the task number and
seeds every task's private state, so no two workers share an object (shared
objects would measure reference-count contention on free-threaded builds
instead of the GIL).  ``size`` is the amount of work in the workload's own
unit (loop iterations, buffers, milliseconds...); CPU workloads are
calibrated by the agent so that one task takes a target time.

Every workload returns an integer checksum that depends on all the work done,
so a workload that silently does nothing fails verification.
"""
from __future__ import absolute_import, division, print_function

import hashlib
import json
import os
import re
import socket
import time
import zlib

try:  # Python 2.7 / Jython
    _range = xrange  # noqa: F821
except NameError:
    _range = range

_clock = getattr(time, "perf_counter", time.time)

#: Set by the agent before any task runs: {"echo": [host, port], "tmpdir": path}
CONTEXT = {}

MASK32 = 0xFFFFFFFF
LCG_A = 1103515245
LCG_C = 12345


# --------------------------------------------------------------------------
# pure-Python CPU
# --------------------------------------------------------------------------
def cpu_python(size, index):
    """Integer loop: ``size`` steps of a 32-bit linear congruential generator."""
    x = (index * 2654435761 + 1) & MASK32
    # private copies: on a free-threaded build, threads sharing one int object fight over
    # its reference count (CLAIMS.md); int(str) makes objects this thread owns
    a = int(str(LCG_A))
    c = int(str(LCG_C))
    m = int(str(MASK32))
    for _ in _range(size):
        x = (x * a + c) & m
    return x


def cpu_python_expected(size, index):
    """Closed form of :func:`cpu_python` (affine map power by squaring, O(log size))."""
    mul, add = 1, 0          # accumulated map: x -> mul*x + add
    pa, pc = LCG_A, LCG_C    # current power of the step map
    n = size
    while n:
        if n & 1:
            mul, add = (pa * mul) & MASK32, (pa * add + pc) & MASK32
        pa, pc = (pa * pa) & MASK32, (pa * pc + pc) & MASK32
        n >>= 1
    x = (index * 2654435761 + 1) & MASK32
    return (mul * x + add) & MASK32


def cpu_objects(size, index):
    """Allocation-heavy: build ``size`` dicts of strings and lists, fold them into a checksum."""
    acc = index & MASK32
    for i in _range(size):
        d = {}
        for k in _range(8):
            key = "k%d_%d" % (k, (i + index) % 97)
            d[key] = [k, i, key * 2]
        s = "|".join(sorted(d))
        acc = (acc * 31 + len(s) + len(d[key][2])) & MASK32
    return acc


def cpu_objects_expected(size, index):
    acc = index & MASK32
    for i in _range(size):
        r = (i + index) % 97
        keys = ["k%d_%d" % (k, r) for k in range(8)]
        s_len = sum(len(k) for k in keys) + 7
        acc = (acc * 31 + s_len + 2 * len(keys[-1])) & MASK32
    return acc


_NBODY_BODIES = [
    # x, y, z, vx, vy, vz, mass (units where the sun's mass is 4*pi^2)
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47841760435743),
    (4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
     6.06326392995832020e-01, 2.81198684491626e+00, -2.52183616598876e-02, 3.7693674870389486e-02),
    (8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
     -1.01077434617730e+00, 1.82566237123041e+00, 8.41576137658415e-03, 1.1286326131968767e-02),
    (1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
     1.08279100644153e+00, 8.68713018169608e-01, -1.01083271696992e-02, 1.7237240570597112e-03),
    (1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
     9.79090732243898e-01, 5.94698998647676e-01, -3.47559555040781e-02, 2.0336868699246304e-03),
]


class _Body(object):
    __slots__ = ("x", "y", "z", "vx", "vy", "vz", "m")

    def __init__(self, t):
        self.x, self.y, self.z, self.vx, self.vy, self.vz, self.m = t


def nbody(size, index):
    """n-body (5 bodies, float objects): ``size`` steps; checksum from the final energy."""
    bodies = [_Body(b) for b in _NBODY_BODIES]
    bodies[1].vx += index * 1e-6          # private, index-dependent state
    dt = 0.01
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    for _ in _range(size):
        for b1, b2 in pairs:
            dx = b1.x - b2.x
            dy = b1.y - b2.y
            dz = b1.z - b2.z
            d2 = dx * dx + dy * dy + dz * dz
            mag = dt / (d2 * d2 ** 0.5)
            m1 = b1.m * mag
            m2 = b2.m * mag
            b1.vx -= dx * m2
            b1.vy -= dy * m2
            b1.vz -= dz * m2
            b2.vx += dx * m1
            b2.vy += dy * m1
            b2.vz += dz * m1
        for b in bodies:
            b.x += dt * b.vx
            b.y += dt * b.vy
            b.z += dt * b.vz
    e = 0.0
    for b in bodies:
        e += 0.5 * b.m * (b.vx * b.vx + b.vy * b.vy + b.vz * b.vz)
    for b1, b2 in pairs:
        d = ((b1.x - b2.x) ** 2 + (b1.y - b2.y) ** 2 + (b1.z - b2.z) ** 2) ** 0.5
        e -= b1.m * b2.m / d
    # float results are IEEE-754 identical on CPython, PyPy and the JVM for
    # these operations; 9 significant digits keeps the checksum stable anyway.
    return int(abs(e) * 1e9) & MASK32


# --------------------------------------------------------------------------
# native code: releases the GIL (hashlib >= 2048 bytes, zlib, bz2)
# --------------------------------------------------------------------------
def _buffer(nbytes, index):
    """Deterministic, private, semi-compressible bytes (cached per process)."""
    key = (nbytes, index)
    buf = _BUFFERS.get(key)
    if buf is None:
        words = ["w%d" % ((i * 7919 + index * 104729) % 65521) for i in range(nbytes // 4 + 16)]
        text = " ".join(words)
        buf = text[:nbytes].encode("ascii")
        _BUFFERS[key] = buf
    return buf


_BUFFERS = {}


def _digest_int(digest):
    return int(hashlib.md5(digest).hexdigest()[:8], 16)


def sha256_chain(size, index, nbytes=65536):
    """``size`` sha256 digests of an ``nbytes`` buffer, each chained to the previous one."""
    buf = _buffer(nbytes, index)
    digest = b""
    for _ in _range(size):
        h = hashlib.sha256(buf)
        h.update(digest)
        digest = h.digest()
    return _digest_int(digest)


def sha256_small(size, index):
    """Like ``hashlib`` with 1 KiB buffers: below the 2048-byte threshold hashlib keeps the GIL."""
    return sha256_chain(size, index, nbytes=1024)


def zlib_compress(size, index, nbytes=262144):
    """``size`` zlib.compress calls (level 6) on a 256 KiB buffer."""
    buf = _buffer(nbytes, index)
    acc = 0
    for i in _range(size):
        out = zlib.compress(buf, 6)
        acc = (acc * 31 + len(out) + i) & MASK32
    return (acc ^ (zlib.crc32(out) & MASK32)) & MASK32


def bz2_compress(size, index, nbytes=65536):
    """``size`` bz2.compress calls on a 64 KiB buffer (releases the GIL)."""
    import bz2
    buf = _buffer(nbytes, index)
    acc = 0
    for i in _range(size):
        out = bz2.compress(buf, 5)
        acc = (acc * 31 + len(out) + i) & MASK32
    return acc


def lzma_compress(size, index, nbytes=65536):
    """``size`` lzma.compress calls (preset 1) on a 64 KiB buffer (releases the GIL)."""
    import lzma
    buf = _buffer(nbytes, index)
    acc = 0
    for i in _range(size):
        out = lzma.compress(buf, preset=1)
        acc = (acc * 31 + len(out) + i) & MASK32
    return acc


def sqlite_query(size, index, rows=20000):
    """``size`` aggregate queries over a private in-memory table (sqlite3_step runs without
    the GIL)."""
    import sqlite3
    db = _DBS.get(index)
    if db is None:
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.execute("create table t (k integer, v text)")
        db.executemany("insert into t values (?, ?)",
                       [(i, "v%d" % ((i * 7919 + index) % 1009)) for i in range(rows)])
        _DBS[index] = db
    acc = 0
    for i in _range(size):
        n, total = db.execute("select count(*), sum(length(v) + k %% 7) from t where v > 'v%d'"
                              % (i % 10)).fetchone()
        acc = (acc * 31 + n + (total or 0)) & MASK32
    return acc


_DBS = {}


def numpy_matmul(size, index, n=160):
    """``size`` float64 matrix products (n x n) through numpy's BLAS (releases the GIL)."""
    import numpy
    a = _MATS.get((n, index))
    if a is None:
        a = numpy.arange(n * n, dtype="float64").reshape(n, n) % (7 + index % 5) / 7.0
        _MATS[(n, index)] = a
    acc = 0
    for i in _range(size):
        b = a.dot(a)
        acc = (acc * 31 + int(b[i % n, (i * 7) % n]) + i) & MASK32
    return acc


_MATS = {}


# --------------------------------------------------------------------------
# reference counts: objects shared by every thread vs private ones (C3)
# --------------------------------------------------------------------------
class _Item(object):
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b


def _items(n):
    return [_Item(i % 17 + 0.5, (i * 7) % 13 + 0.25) for i in range(n)]


#: made once at import, by the main thread: every worker thread reads these same objects
_SHARED_ITEMS = _items(64)


def _walk(items, size, index):
    acc = 0.0
    n = len(items)
    for i in _range(size):
        it = items[(i + index) % n]   # a new reference to a (shared or private) object
        acc += it.a * it.b
    return int(acc * 4) & MASK32


def shared_objects(size, index):
    """Read attributes of 64 objects that every thread shares (on a free-threaded build each
    new reference is an atomic update of a shared reference count)."""
    return _walk(_SHARED_ITEMS, size, index)


def private_objects(size, index):
    """The same work on 64 objects private to the task (no reference-count contention)."""
    return _walk(_items(64), size, index)


# --------------------------------------------------------------------------
# native code: holds the GIL (json, re)
# --------------------------------------------------------------------------
def _json_doc(index):
    doc = _DOCS.get(index)
    if doc is None:
        doc = {"id": index, "items": [{"k": "key%d" % i, "v": [i, i * 0.5, "x" * (i % 13)],
                                       "ok": i % 3 == 0} for i in range(2000)]}
        _DOCS[index] = doc
    return doc


_DOCS = {}


def json_roundtrip(size, index):
    """``size`` json.dumps + json.loads round trips of a 2,000-item document (~100 KB)."""
    doc = _json_doc(index)
    acc = 0
    for _ in _range(size):
        text = json.dumps(doc, sort_keys=True)
        back = json.loads(text)
        acc = (acc * 31 + len(text) + len(back["items"]) + back["id"]) & MASK32
    return acc


_WORD_RE = re.compile(r"w(\d+)7\b")


def regex_scan(size, index, nbytes=131072):
    """``size`` regex scans (findall) over 128 KiB of text."""
    text = _buffer(nbytes, index).decode("ascii")
    acc = 0
    for _ in _range(size):
        found = _WORD_RE.findall(text)
        acc = (acc * 31 + len(found) + (int(found[-1]) if found else 0)) & MASK32
    return acc


# --------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------
def sleep(size, index):
    """time.sleep(size milliseconds), in 10 slices."""
    for _ in _range(10):
        time.sleep(size / 10000.0)
    return size * 10 + index + 1


def socket_roundtrip(size, index, nbytes=1024):
    """``size`` round trips of ``nbytes`` to the harness's TCP echo server on 127.0.0.1."""
    host, port = CONTEXT["echo"]
    payload = (b"%08d" % index) * (nbytes // 8)
    s = socket.create_connection((host, port), timeout=30)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        acc = 0
        for _ in _range(size):
            s.sendall(payload)
            got = 0
            while got < nbytes:
                chunk = s.recv(65536)
                if not chunk:
                    raise IOError("echo server closed the connection")
                got += len(chunk)
            acc += got
    finally:
        s.close()
    return (acc + index) & MASK32


def file_io(size, index, nbytes=1048576):
    """Write ``size`` files of 1 MiB in a private temporary directory, read them back."""
    folder = os.path.join(CONTEXT.get("tmpdir") or ".", "fileio-%d-%d" % (os.getpid(), index))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    block = _buffer(65536, index)
    acc = 0
    try:
        for i in _range(size):
            path = os.path.join(folder, "f%d" % i)
            with open(path, "wb") as f:
                for _ in _range(nbytes // len(block)):
                    f.write(block)
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(262144)
                    if not chunk:
                        break
                    acc = (acc + len(chunk)) & MASK32
            os.remove(path)
    finally:
        try:
            os.rmdir(folder)
        except OSError:
            pass
    return (acc + index) & MASK32


# --------------------------------------------------------------------------
# duty cycle: the GIL probe's ground truth
# --------------------------------------------------------------------------
def duty_cycle(size, index, duty=0.5, period_ms=10.0):
    """``size`` periods of ``period_ms``: a share ``duty`` spent spinning in pure Python
    (holding the GIL), the rest sleeping (released).  Returns spins done + periods."""
    duty = float(duty)
    if not 0.0 <= duty <= 1.0:
        raise ValueError("duty must be in [0, 1], got %r" % duty)
    period = float(period_ms) / 1000.0
    busy = period * duty
    idle = period - busy
    clock = _clock
    spins = 0
    for _ in _range(size):
        end = clock() + busy
        while clock() < end:
            spins += 1
        if idle > 0:
            time.sleep(idle)
    return size * 1000003 + index + (1 if spins or duty == 0 else 0)


# --------------------------------------------------------------------------
# the catalog
# --------------------------------------------------------------------------
class Workload(object):
    """One entry of the catalog.

    kind: "cpu-python" | "native-release" | "native-hold" | "io" | "duty"
    calibrate: whether the agent scales ``size`` to a target task time;
    size: the default size when not calibrated (and the calibration start);
    needs: context keys the workload needs ("echo", "tmpdir");
    modules: modules that must import for the workload to run;
    async_name: name of the asyncio variant in async_workloads, if any.
    """

    def __init__(self, name, fn, kind, doc, calibrate=True, size=1000, expected=None,
                 needs=(), modules=(), async_name=None, params=None):
        self.name = name
        self.fn = fn
        self.kind = kind
        self.doc = doc
        self.calibrate = calibrate
        self.size = size
        self.expected = expected
        self.needs = tuple(needs)
        self.modules = tuple(modules)
        self.async_name = async_name
        self.params = dict(params or {})

    def unavailable(self):
        """None if the workload can run here, else the reason it cannot."""
        for mod in self.modules:
            try:
                __import__(mod)
            except Exception as e:  # ImportError, or a broken module
                return "module %s is not available in this interpreter (%s)" % (mod, e)
        return None

    def describe(self):
        return {"name": self.name, "kind": self.kind, "doc": self.doc,
                "calibrate": self.calibrate, "size": self.size, "needs": list(self.needs),
                "asyncio": self.async_name is not None, "params": self.params}


CATALOG = {}


def _add(w):
    CATALOG[w.name] = w


_add(Workload("cpu-python", cpu_python, "cpu-python",
              "pure-Python integer loop (32-bit LCG), private state per task",
              size=20000, expected=cpu_python_expected))
_add(Workload("cpu-objects", cpu_objects, "cpu-python",
              "pure-Python allocation: dicts, lists and strings built and sorted",
              size=200, expected=cpu_objects_expected))
_add(Workload("nbody", nbody, "cpu-python",
              "pure-Python floating point n-body simulation (5 bodies)", size=200))
_add(Workload("hashlib", sha256_chain, "native-release",
              "hashlib.sha256 on a 64 KiB buffer (releases the GIL at >= 2048 bytes)", size=8))
_add(Workload("hashlib-small", sha256_small, "native-hold",
              "hashlib.sha256 on a 1 KiB buffer (below 2048 bytes: keeps the GIL)", size=200))
_add(Workload("zlib", zlib_compress, "native-release",
              "zlib.compress level 6 on a 256 KiB buffer (releases the GIL)", size=2))
_add(Workload("bz2", bz2_compress, "native-release",
              "bz2.compress on a 64 KiB buffer (releases the GIL)", size=2, modules=("bz2",)))
_add(Workload("lzma", lzma_compress, "native-release",
              "lzma.compress preset 1 on a 64 KiB buffer (releases the GIL)", size=2, modules=("lzma",)))
_add(Workload("sqlite3", sqlite_query, "native-release",
              "aggregate queries on a 20,000-row in-memory sqlite3 table (releases the GIL in "
              "sqlite3_step)", size=4, modules=("sqlite3",)))
_add(Workload("numpy", numpy_matmul, "native-release",
              "numpy float64 160x160 matrix products (BLAS releases the GIL; where numpy is "
              "installed)", size=8, modules=("numpy",)))
_add(Workload("shared-objects", shared_objects, "cpu-python",
              "pure-Python reads of 64 objects every thread shares (reference-count contention "
              "on free-threaded builds)", size=100000))
_add(Workload("private-objects", private_objects, "cpu-python",
              "the same reads of 64 objects private to each task (the control for shared-objects)",
              size=100000))
_add(Workload("json", json_roundtrip, "native-hold",
              "json.dumps + json.loads of a 2,000-item document (keeps the GIL)", size=2))
_add(Workload("regex", regex_scan, "native-hold",
              "re.findall over 128 KiB of text (keeps the GIL)", size=4))
_add(Workload("sleep", sleep, "io", "time.sleep (releases the GIL)", calibrate=False,
              size=50, async_name="sleep"))
_add(Workload("socket", socket_roundtrip, "io",
              "1 KiB round trips to a TCP echo service on 127.0.0.1 that answers in 1 ms",
              calibrate=False, size=40, needs=("echo",), async_name="socket_roundtrip"))
_add(Workload("file-io", file_io, "io", "write and read back 1 MiB files in a temporary directory",
              calibrate=False, size=8, needs=("tmpdir",)))
_add(Workload("duty-cycle", duty_cycle, "duty",
              "periods of pure-Python spin (share = duty, holds the GIL) and sleep (releases it)",
              calibrate=False, size=20, params={"duty": 0.5, "period_ms": 10.0}))


# --------------------------------------------------------------------------
# the user's own function (bench -w file.py:fn / pkg.mod:fn)
# --------------------------------------------------------------------------
USER = "user"


def _user_function(spec):
    """Import the user's function in this interpreter: a file shipped as source (written
    into the agent's folder, so chroots and containers see it) or a module by name."""
    import sys
    if spec.get("source") is not None:
        folder = os.path.join(CONTEXT["tmpdir"], "user")
        if not os.path.isdir(folder):
            os.makedirs(folder)
        target = os.path.join(folder, spec["module"] + ".py")
        if not os.path.exists(target):
            with open(target, "w") as f:
                f.write(spec["source"])
        if folder not in sys.path:
            sys.path.insert(0, folder)
    mod = __import__(spec["module"], fromlist=["_"])
    return getattr(mod, spec["function"])


def _checksum(results):
    """A 32-bit digest of a task's results, in item order (repr: any picklable value)."""
    return zlib.crc32(repr(results).encode("utf-8", "backslashreplace")) & MASK32


def user_workload(spec):
    """A catalog entry for the user's function: task t maps it over items t, t+T, t+2T...
    (T = the cell's task count, the same for every cell of a strong-scaling run), so every
    backend and worker count does the same work and the checksums must agree."""
    fn = _user_function(spec)
    items = spec["items"]
    tasks = int(spec["tasks"])

    def run(size, index):
        return _checksum([fn(items[i]) for i in _range(index, len(items), tasks)])

    return Workload(USER, run, "user", "%s:%s" % (spec["module"], spec["function"]),
                    calibrate=False, size=len(items))


def get(name):
    """The workload called ``name``; KeyError with the known names otherwise."""
    if name == USER:
        return user_workload(CONTEXT[USER])
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError("unknown workload %r; known: %s" % (name, ", ".join(sorted(CATALOG))))
