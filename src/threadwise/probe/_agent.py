"""The probe's side inside the measured interpreter: find the GIL, name threads.

Runs inside the target interpreter (stdlib only; CPython 3.6+, PyPy; no
f-strings so that an older interpreter still imports it and says why it can't
help).  The host never imports the user's program: this file is loaded by path,
either by the start-up hook (``_boot/sitecustomize.py``) when the probe wraps a
script, or by :mod:`threadwise.probe.monitor` in the user's own process.

What it finds, and how
======================
CPython keeps its GIL in a small C struct (``Python/ceval_gil.c``, the same
layout from 3.9 to 3.14)::

    struct _gil_runtime_state {
        [int enabled;]                  free-threaded builds only
        unsigned long interval;         switch interval in microseconds
        PyThreadState *last_holder;     the thread that took it last
        int locked;                     1 while some thread holds it
        unsigned long switch_number;    +1 each time another thread takes it
        pthread_cond_t cond;            waiters block here ...
        pthread_mutex_t mutex;          ... and here
        pthread_cond_t switch_cond;     a forced drop waits here for the hand-off
        pthread_mutex_t switch_mutex;
    };

It lives inside ``_PyRuntime`` (3.9-3.11: ``_PyRuntime.ceval.gil``; 3.12+: in
the main interpreter, which is embedded in ``_PyRuntime``).  Rather than hard
code per-version offsets (py-spy's approach, which broke on every release), we
search the data around ``_PyRuntime`` for the one place holding our switch
interval followed by our own thread state, with ``locked == 1`` (we hold the
GIL while we look), and confirm it by changing the switch interval for a
moment and seeing that word change.  (Without this hook -- ``probe --pid``, a
program run with ``-I`` -- ``target.py`` finds the same struct from outside,
through ``_Py_DebugOffsets`` on 3.13+ and known offsets before.)

An outside process (``sampler.py``) then reads ``locked`` and ``last_holder``
through ``/proc/PID/mem`` at random times -- it needs no GIL, so it neither
waits for it nor forces a switch -- and tells a waiting thread by the futex
address in ``/proc/PID/task/TID/syscall`` falling inside ``cond .. switch_mutex``.
"""
import os
import struct
import sys
import time

_clock = time.monotonic

# sizes of the pthread types on 64-bit Linux (glibc and musl): cond 48 bytes;
# mutex 40 (x86_64) or 48 (aarch64 and others).  The waiting range spans
# cond, mutex, switch_cond and switch_mutex.
_COND_SIZE = 48
_MUTEX_SIZE = 40 if os.uname()[4] in ("x86_64", "i686", "i386") else 48


def implementation():
    """``cpython``, ``pypy``, ``jython``, ..."""
    impl = getattr(sys, "implementation", None)
    return impl.name if impl is not None else sys.platform.startswith("java") and "jython" or "cpython"


def free_threaded_build():
    """True on a build compiled without the GIL (PEP 703), whatever runs now."""
    try:
        import sysconfig
        return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    except Exception:  # pragma: no cover - exotic interpreters
        return False


def gil_enabled():
    """True when a GIL serialises Python code now, False when none does, None if unknown."""
    impl = implementation()
    if impl == "jython" or impl == "ironpython":
        return False
    check = getattr(sys, "_is_gil_enabled", None)
    if check is not None:
        return bool(check())
    return True  # CPython before 3.13, PyPy: always a GIL


def current_tstate():
    """Address of this thread's ``PyThreadState`` (CPython), else None."""
    try:
        import ctypes
        get = ctypes.pythonapi.PyThreadState_Get
        get.restype = ctypes.c_void_p
        get.argtypes = []
        return get()
    except Exception:
        return None


def _mapping_end(addr):
    """End of the /proc/self/maps region holding ``addr`` (Linux), else None."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                lo, hi = line.split(None, 1)[0].split("-")
                lo, hi = int(lo, 16), int(hi, 16)
                if lo <= addr < hi:
                    return hi
    except (OSError, ValueError):
        return None
    return None


class GilLocation(object):
    """Where the GIL struct is in this process, or why it wasn't found."""

    def __init__(self, address=None, reason="", kind="cpython"):
        self.address = address
        self.reason = reason
        self.kind = kind
        self.word = struct.calcsize("@L")
        ptr = struct.calcsize("@P")
        # offsets inside the struct, from ``interval`` (native alignment)
        self.off_holder = self.word
        self.off_locked = self.word + ptr
        self.off_switch = struct.calcsize("@LPiL") - self.word
        self.off_cond = struct.calcsize("@LPiL")
        self.span_wait = 2 * (_COND_SIZE + _MUTEX_SIZE)
        self.read_format = "@LPiL"
        self.read_size = struct.calcsize("@LPiL")

    def as_dict(self):
        return {
            "kind": self.kind,
            "gil_address": self.address,
            "reason": self.reason,
            "off_holder": self.off_holder,
            "off_locked": self.off_locked,
            "off_switch": self.off_switch,
            "off_cond": self.off_cond,
            "span_wait": self.span_wait,
            "read_format": self.read_format,
        }


def find_gil():
    """Locate this process's GIL struct; returns a :class:`GilLocation`.

    Must be called with the GIL held (any Python code is) on a CPython with a
    GIL running now.  Never raises: ``address`` is None and ``reason`` says why.
    """
    loc = GilLocation()
    if implementation() == "pypy" and sys.platform.startswith("linux"):
        return _find_pypy_gil()
    if implementation() != "cpython":
        loc.reason = "%s keeps its GIL where no outside reader can find it" % implementation()
        return loc
    if gil_enabled() is False:
        loc.reason = "this free-threaded build runs without a GIL"
        return loc
    if not sys.platform.startswith("linux"):
        loc.reason = "reading the GIL from outside needs Linux's /proc (this is %s)" % sys.platform
        return loc
    try:
        import ctypes
        base = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    except Exception as exc:
        loc.reason = "the _PyRuntime symbol is not exported by this build (%s)" % exc
        return loc
    tstate = current_tstate()
    end = _mapping_end(base)
    if not tstate or end is None:
        loc.reason = "could not read this process's memory map"
        return loc
    size = min(end - base, 8 << 20)
    interval = int(round(sys.getswitchinterval() * 1e6))
    pattern = struct.pack("@LP", interval, tstate)
    data = ctypes.string_at(base, size)
    candidates = []
    i = data.find(pattern)
    while i >= 0:
        if i % loc.word == 0:
            _, _, locked, _ = struct.unpack_from(loc.read_format, data, i)
            if locked == 1:
                candidates.append(base + i)
        i = data.find(pattern, i + 1)
    if not candidates:
        loc.reason = "no GIL-shaped struct found near _PyRuntime (an unknown CPython layout)"
        return loc
    # confirm: the interval word must follow sys.setswitchinterval
    old = sys.getswitchinterval()
    probe_us = interval + 7 if interval < 10 ** 6 else interval - 7
    try:
        sys.setswitchinterval(probe_us / 1e6)
        seen_us = int(round(sys.getswitchinterval() * 1e6))
        confirmed = [a for a in candidates
                     if struct.unpack("@L", ctypes.string_at(a, loc.word))[0] == seen_us]
    finally:
        sys.setswitchinterval(old)
    if len(confirmed) != 1:
        loc.reason = "found %d places that look like the GIL, expected 1" % len(confirmed)
        return loc
    loc.address = confirmed[0]
    return loc


def _pypy_regions():
    """libpypy's writable data and the anonymous .bss mapping right after it."""
    out = []
    prev_end = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                lo, hi = [int(x, 16) for x in parts[0].split("-")]
                name = parts[5] if len(parts) > 5 else ""
                if "libpypy" in name and parts[1].startswith("rw"):
                    out.append((lo, hi))
                    prev_end = hi
                elif prev_end is not None and not name and lo == prev_end and parts[1].startswith("rw"):
                    out.append((lo, hi))
                    prev_end = hi
                else:
                    prev_end = None
    except (OSError, ValueError):
        return []
    return out


def _find_pypy_gil():
    """PyPy's GIL is a word, ``rpy_fastgil`` (rpython/translator/c/src/thread_gil.c):
    0 while free, the holder's thread ident while held.  It is not exported, so:
    find the words equal to our ident; keep those that follow the GIL to a
    second thread; keep the one that reads 0 while a foreign call (which
    releases the GIL) copies it.  Waiters block on the mutexes stored right
    after it."""
    loc = GilLocation(kind="pypy")
    loc.read_format = "@q"
    loc.read_size = struct.calcsize("@q")
    loc.off_holder = loc.off_locked = 0
    loc.off_switch = None
    loc.off_cond = 8
    loc.span_wait = 248
    try:
        import ctypes
        import _thread
    except ImportError as exc:
        loc.reason = "ctypes is missing (%s)" % exc
        return loc
    regions = _pypy_regions()
    if not regions:
        loc.reason = "libpypy's data segment was not found in /proc/self/maps"
        return loc
    me = _thread.get_ident()
    pattern = struct.pack("@q", me)
    candidates = []
    for lo, hi in regions:
        data = ctypes.string_at(lo, hi - lo)
        i = data.find(pattern)
        while i >= 0:
            if i % 8 == 0:
                candidates.append(lo + i)
            i = data.find(pattern, i + 1)
    done = _thread.allocate_lock()
    done.acquire()
    follow = {}

    def other():
        try:
            mine = _thread.get_ident()
            follow["c"] = [a for a in candidates
                           if struct.unpack("@q", ctypes.string_at(a, 8))[0] == mine]
        finally:
            done.release()

    _thread.start_new_thread(other, ())
    done.acquire()
    kept = follow.get("c", [])
    try:
        libc = ctypes.CDLL(None)
        memcpy = libc.memcpy
        memcpy.restype = ctypes.c_void_p
        memcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        buf = ctypes.create_string_buffer(8)
        released = []
        for a in kept:
            memcpy(buf, a, 8)  # runs with the GIL released
            if struct.unpack("@q", buf.raw)[0] == 0 and struct.unpack("@q", ctypes.string_at(a, 8))[0] == me:
                released.append(a)
    except Exception as exc:
        loc.reason = "could not call libc through ctypes (%s)" % exc
        return loc
    if len(released) != 1:
        loc.reason = "found %d words that behave like PyPy's GIL, expected 1" % len(released)
        return loc
    loc.address = released[0]
    return loc


def holder_key():
    """What the GIL word holds while this thread has it: the thread-state
    address (CPython) or the thread ident (PyPy)."""
    if implementation() == "pypy":
        try:
            import _thread
            return _thread.get_ident()
        except ImportError:
            return None
    return current_tstate()


# ---------------------------------------------------------------------------
# naming threads: (native id, name, thread state) as each one starts
# ---------------------------------------------------------------------------
def thread_identity():
    """(native thread id, Python name, thread-state address) of the calling thread."""
    import threading
    t = threading.current_thread()
    tid = getattr(t, "native_id", None)
    if tid is None:
        get = getattr(threading, "get_native_id", None)
        tid = get() if get is not None else None
    return tid, t.name, holder_key()


class ThreadWatcher(object):
    """Calls ``callback(tid, name, tstate)`` in each thread ``threading`` starts.

    Uses ``threading.setprofile``: the hook runs once, at the start of a new
    thread, reports it, and hands the thread the profiler it would have had.
    If ``threading`` is not imported yet it is not imported here (gevent and
    eventlet must patch it first); a one-shot import hook installs the watch
    when the program imports it.
    """

    def __init__(self, callback):
        self.callback = callback
        self.previous = None
        self.active = False
        self._finder = None

    def start(self):
        self.active = True
        if "threading" in sys.modules:
            self._install(sys.modules["threading"])
        else:
            self._finder = _PostImportHook("threading", self._install)
            sys.meta_path.insert(0, self._finder)

    def _install(self, threading):
        if not self.active:
            return
        self.previous = getattr(threading, "_profile_hook", None)
        watcher = self
        previous = self.previous

        def hook(frame, event, arg):
            sys.setprofile(previous)
            try:
                tid, name, tstate = thread_identity()
                watcher.callback(tid, name, tstate)
            except Exception:
                pass
            if previous is not None:
                return previous(frame, event, arg)
            return None

        self._hook = hook
        threading.setprofile(hook)

    def stop(self):
        self.active = False
        if self._finder is not None:
            try:
                sys.meta_path.remove(self._finder)
            except ValueError:
                pass
        threading = sys.modules.get("threading")
        if threading is not None and getattr(threading, "_profile_hook", None) is getattr(self, "_hook", None):
            threading.setprofile(self.previous)


class _PostImportHook(object):
    """A one-shot meta-path finder: runs ``then(module)`` right after ``name`` is imported."""

    def __init__(self, name, then):
        self.name = name
        self.then = then

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        import importlib.util
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        then = self.then

        class _Loader(object):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                try:
                    then(module)
                except Exception:
                    pass

        spec.loader = _Loader()
        return spec


# ---------------------------------------------------------------------------
# free-threaded builds: an import may turn the GIL on
# ---------------------------------------------------------------------------
_ENABLED_PREFIX = "The global interpreter lock (GIL) has been enabled to load module"


def watch_gil_enabling(callback):
    """Call ``callback(module_name, monotonic_time)`` when an import turns the GIL on.

    CPython (3.13t+) warns with a RuntimeWarning naming the module; we wrap
    ``warnings.showwarning`` and pass every warning on unchanged.  A warning
    filtered out by ``-W ignore`` never reaches us: :func:`gil_enabled` at the
    end still tells that it happened, without the module.
    """
    import warnings
    original = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            text = str(message)
            if issubclass(category, RuntimeWarning) and text.startswith(_ENABLED_PREFIX):
                module = text[len(_ENABLED_PREFIX):].strip().split("'")
                callback(module[1] if len(module) > 1 else text, _clock())
        except Exception:
            pass
        return original(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    return original


# ---------------------------------------------------------------------------
# the fallback where no outside reader works: a knocker thread
# ---------------------------------------------------------------------------
class Knocker(object):
    """Samples the GIL from inside: sleep a random while, time how late we wake.

    When the GIL is free, a thread wakes from ``time.sleep`` within the OS
    timer slack (tens of microseconds); when another thread holds it, it waits
    until that thread drops it -- voluntarily, or forced after the switch
    interval.  A wake-up later than ``threshold`` counts as "held".  Used on
    PyPy and where /proc can't be read.  Coarser than the outside sampler: it
    misses holds shorter than the threshold, sees no waiters but itself, and
    each knock on a held GIL forces one switch (its cost is small: one switch
    per knock, a few microseconds).
    """

    def __init__(self, interval=0.005, threshold=None, on_snapshot=None, on_start=None,
                 snapshot_every=0.5):
        import random
        import threading
        self.interval = float(interval)
        self.threshold = threshold
        self.rng = random.Random(12345)
        self.samples = 0
        self.held = 0
        self.longest = 0.0
        self.stop_flag = False
        self.thread = threading.Thread(target=self._run, name="threadwise-knocker")
        self.thread.daemon = True
        self.started_at = None
        self.native_id = None
        self.on_snapshot = on_snapshot
        self.on_start = on_start
        self.snapshot_every = snapshot_every

    def start(self):
        self.started_at = _clock()
        self.thread.start()
        return self

    def _default_threshold(self):
        # a fixed share of the switch interval: a waiter gets the GIL after at
        # most about one interval, a free GIL is taken within the OS wake-up
        # latency (~0.1 ms).  Calibrating against an idle sleep is no good: the
        # program's threads may already hold the GIL while we calibrate.
        switch = sys.getswitchinterval() if hasattr(sys, "getswitchinterval") else 0.005
        return max(0.001, 0.2 * switch)

    def _run(self):
        import threading
        self.native_id = getattr(threading.current_thread(), "native_id", None)
        if self.on_start is not None:
            self.on_start(self.native_id)
        if self.threshold is None:
            self.threshold = self._default_threshold()
        rng = self.rng
        clock = _clock
        sleep = time.sleep
        mean = self.interval
        report = self.on_snapshot
        next_report = clock() + self.snapshot_every
        while not self.stop_flag:
            if report is not None and clock() >= next_report:
                next_report = clock() + self.snapshot_every
                report(self.snapshot())
            d = rng.expovariate(1.0 / mean)
            t0 = clock()
            sleep(d)
            late = clock() - t0 - d
            self.samples += 1
            if late > self.threshold:
                self.held += 1
                if late > self.longest:
                    self.longest = late

    def stop(self):
        self.stop_flag = True
        self.thread.join(1.0)

    def snapshot(self):
        return {"samples": self.samples, "held": self.held, "longest_wait_s": self.longest,
                "threshold_s": self.threshold, "interval_s": self.interval, "t": _clock()}
