"""The agent: runs one cell inside a target interpreter and prints its samples.

Runs INSIDE the target (CPython 3.8+, free-threaded CPython, PyPy, Jython 2.7):
standard library only, valid Python 2.7.  The host (``threadwise.bench.interpreters``)
sends a small bootstrap on stdin that writes these files into a temporary
directory, puts it on ``sys.path`` and calls :func:`main` with a config dict.
Nothing is installed into the target.

Protocol: every record is one line ``@@tw <json>`` on stdout, so stray output
from the interpreter (warnings, JVM chatter) never corrupts the stream::

    host --config--> agent
                     info        the interpreter's facts (always first)
                     calibrated  size chosen so one task takes ~target_s
                     startup     seconds to start persistent workers
                     sample      one per repeat: wall_s, cpu_s, checksums,
                                 warmup flag (warm-ups are reported, not used)
                     convoy / gilcheck / parallel   results of those modes
                     error | unsupported            and then the agent exits
                     done

Modes: ``describe`` (facts, optional parallel probe), ``cell`` (the matrix
cell: workload x backend x workers), ``convoy`` (claim C8: I/O latency next to
CPU-bound threads), ``gilcheck`` (claim C6: does a call hold the GIL).

Backends are deliberately primitive so that every interpreter is measured the
same way: ``serial`` runs the tasks in order, in one thread started for the
repeat; ``threads`` starts W threads per
repeat; ``processes`` starts W processes once per cell (start-up timed apart)
and sends each repeat's tasks over a pipe, run in a thread of the worker
(main threads measured slower, see ``_run_tasks_in_thread``); ``interpreters`` creates W
sub-interpreters once and runs each repeat's tasks in them from W threads;
``asyncio`` runs W coroutines of the I/O workloads.  Task t goes to worker
t % W in every backend.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import sys
import threading
import time
import traceback

from . import workloads as W

_clock = getattr(time, "perf_counter", time.time)
JYTHON = sys.platform.startswith("java")
JIT = JYTHON or hasattr(sys, "pypy_version_info")
PREFIX = "@@tw "
_OUT = sys.stdout


def emit(rtype, **fields):
    fields["type"] = rtype
    _OUT.write(PREFIX + json.dumps(fields, sort_keys=True) + "\n")
    _OUT.flush()


class Unsupported(Exception):
    """The cell cannot run on this interpreter (e.g. no multiprocessing on Jython)."""


# --------------------------------------------------------------------------
# facts about this interpreter
# --------------------------------------------------------------------------
def _jvm_cpu():
    from java.lang.management import ManagementFactory  # noqa
    bean = ManagementFactory.getOperatingSystemMXBean()
    return bean.getProcessCpuTime() / 1e9


def cpu_time():
    """Process CPU seconds, all threads (not children).  The JVM's own counter on Jython,
    whose os.times() is not process CPU time."""
    if JYTHON:
        try:
            return _jvm_cpu()
        except Exception:
            pass
    if _process_time is not None:
        return _process_time()   # CLOCK_PROCESS_CPUTIME_ID: ns resolution, all threads
    t = os.times()               # Python 2.7: clock ticks (10 ms)
    return t[0] + t[1]


_process_time = getattr(time, "process_time", None)


def _cpu_clock_name():
    if JYTHON:
        try:
            _jvm_cpu()
            return "jvm OperatingSystemMXBean.getProcessCpuTime"
        except Exception:
            return "os.times (unreliable on Jython)"
    if _process_time is not None:
        return "time.process_time"
    return "os.times user+system"


def _subinterpreter_module():
    """(module, name) of a PEP 734 interpreters module, or (None, reason)."""
    for name in ("concurrent.interpreters", "interpreters_backport.concurrent.interpreters",
                 "interpreters"):
        try:
            mod = __import__(name, fromlist=["create"])
        except Exception:
            continue
        if hasattr(mod, "create"):
            return mod, name
    return None, "no concurrent.interpreters (3.14+) or interpreters-pep-734 backport"


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except Exception:
        pass
    try:
        import multiprocessing
        return multiprocessing.cpu_count()
    except Exception:
        pass
    if JYTHON:
        try:
            from java.lang import Runtime  # noqa
            return Runtime.getRuntime().availableProcessors()
        except Exception:
            pass
    return 1


def describe():
    import platform
    info = {
        "implementation": platform.python_implementation(),
        "version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "sys_version": sys.version.replace("\n", " "),
        "executable": sys.executable,
        "platform": sys.platform,
        "pid": os.getpid(),
        "cpu_clock": _cpu_clock_name(),
        "usable_cores": usable_cores(),
    }
    try:
        import sysconfig
        info["free_threaded"] = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    except Exception:
        info["free_threaded"] = False
    if hasattr(sys, "_is_gil_enabled"):
        info["gil_enabled"] = bool(sys._is_gil_enabled())
    elif JYTHON:
        info["gil_enabled"] = False
    else:
        info["gil_enabled"] = True  # CPython < 3.13 and PyPy always have one
    info["switch_interval_s"] = sys.getswitchinterval() if hasattr(sys, "getswitchinterval") else None
    try:
        import multiprocessing
        if not hasattr(multiprocessing, "get_all_start_methods"):
            multiprocessing.Process  # noqa: B018  (Python 2.7: fork only)
            info["start_methods"] = ["fork"] if hasattr(os, "fork") else []
            info["default_start_method"] = "fork" if hasattr(os, "fork") else None
            raise StopIteration
        info["start_methods"] = list(multiprocessing.get_all_start_methods())
        info["default_start_method"] = multiprocessing.get_start_method(allow_none=True) or \
            multiprocessing.get_context().get_start_method()
    except StopIteration:
        pass
    except Exception as e:
        info["start_methods"] = []
        info["default_start_method"] = None
        info["no_multiprocessing"] = "%s: %s" % (type(e).__name__, e)
    mod, name = _subinterpreter_module()
    info["subinterpreters"] = mod is not None
    info["subinterpreters_module"] = name if mod is not None else None
    if mod is None:
        info["subinterpreters_reason"] = name
    try:
        import asyncio  # noqa
        info["asyncio"] = sys.version_info >= (3, 7)
    except Exception:
        info["asyncio"] = False
    info["workloads_unavailable"] = dict(
        (n, w.unavailable()) for n, w in W.CATALOG.items() if w.unavailable())
    return info


def parallel_probe(seconds=1.0, threads=2):
    """How many threads ran at once: process CPU / wall for ``threads`` spinning threads."""
    stop = [False]

    def spin():
        x = 0
        while not stop[0]:
            x += 1

    ts = [threading.Thread(target=spin) for _ in range(threads)]
    c0, t0 = cpu_time(), _clock()
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop[0] = True
    for t in ts:
        t.join()
    wall, cpu = _clock() - t0, cpu_time() - c0
    return {"threads": threads, "seconds": wall, "cpu_s": cpu, "parallelism": cpu / wall}


# --------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------
def _run_tasks(fn, size, task_ids, params, out):
    for t in task_ids:
        out[t] = fn(size, t, **params)


def _run_tasks_in_thread(fn, size, task_ids, params, out):
    """:func:`_run_tasks` in one new thread.  Why: the same pure-Python loop measured up to
    20-29% slower in a process's main thread than in a worker thread (CPython 3.11 run from
    stdin, 3.13), so serial and process workers run where thread workers run, and a speedup
    compares like with like."""
    errors = []

    def work():
        try:
            _run_tasks(fn, size, task_ids, params, out)
        except BaseException as e:  # re-raised in the caller, with its traceback text
            errors.append((e, traceback.format_exc()))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if errors:
        e, tb = errors[0]
        e.worker_traceback = tb
        raise e


def _proc_worker(conn, context, name, params):
    """Persistent worker process: its loop runs in one worker thread (see
    :func:`_run_tasks_in_thread` for why not in the main thread)."""
    t = threading.Thread(target=_proc_loop, args=(conn, context, name, params))
    t.start()
    t.join()


def _proc_loop(conn, context, name, params):
    """Waits for ("run", size, task_ids), answers with checksums."""
    W.CONTEXT.update(context)
    fn = W.get(name).fn
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "stop":
            return
        c0 = cpu_time()
        try:
            out = {}
            _run_tasks(fn, msg[1], msg[2], params, out)
            rss = None
            try:
                import resource
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            except Exception:
                pass
            conn.send(("ok", out, cpu_time() - c0, rss))
        except Exception:
            conn.send(("error", traceback.format_exc(), cpu_time() - c0, None))


class SerialBackend(object):
    name = "serial"

    def __init__(self, cfg, fn):
        self.fn, self.cfg = fn, cfg

    def start(self):
        return 0.0

    def run(self, size, tasks, workers, params):
        out = {}
        _run_tasks_in_thread(self.fn, size, list(range(tasks)), params, out)
        return out, 0.0, {}

    def stop(self):
        pass


class ThreadBackend(SerialBackend):
    name = "threads"

    def run(self, size, tasks, workers, params):
        out, errors = {}, []

        def work(ids):
            try:
                _run_tasks(self.fn, size, ids, params, out)
            except Exception:
                errors.append(traceback.format_exc())

        ts = [threading.Thread(target=work, args=(list(range(w, tasks, workers)),))
              for w in range(workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise RuntimeError("a worker thread raised:\n" + errors[0])
        return out, 0.0, {}


class ProcessBackend(SerialBackend):
    name = "processes"

    def start(self):
        try:
            import multiprocessing
        except ImportError as e:
            raise Unsupported("this interpreter has no multiprocessing (%s)" % e)
        method = self.cfg.get("start_method")
        if not hasattr(multiprocessing, "get_context"):
            # Python 2.7: fork only, no contexts
            if method not in (None, "fork"):
                raise Unsupported("start method %r needs Python 3.4+; Python 2 only forks" % method)
            ctx, self.method = multiprocessing, "fork"
        else:
            if method and method not in multiprocessing.get_all_start_methods():
                raise Unsupported("start method %r is not available here (available: %s)"
                                  % (method, ", ".join(multiprocessing.get_all_start_methods())))
            ctx = multiprocessing.get_context(method) if method else multiprocessing.get_context()
            self.method = ctx.get_start_method()
        t0 = _clock()
        self.procs, self.conns = [], []
        for _ in range(self.cfg["workers"]):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_proc_worker,
                            args=(child, dict(W.CONTEXT), self.cfg["workload"], self.cfg["params"]))
            p.daemon = True
            p.start()
            child.close()
            self.procs.append(p)
            self.conns.append(parent)
        # a worker is "started" once it answers: an empty run is the handshake
        for c in self.conns:
            c.send(("run", 0, []))
        for c, p in zip(self.conns, self.procs):
            self._recv(c, p)
        return _clock() - t0

    def _recv(self, conn, proc):
        try:
            msg = conn.recv()
        except EOFError:
            proc.join(1)
            raise RuntimeError("worker process %d died (exit code %s); a crash in native code "
                               "or running out of memory are the usual causes"
                               % (proc.pid, proc.exitcode))
        if msg[0] == "error":
            raise RuntimeError("a worker process raised:\n" + msg[1])
        return msg

    def run(self, size, tasks, workers, params):
        if self.cfg.get("per_task"):
            return self._run_per_task(size, tasks, workers)
        for w, c in enumerate(self.conns):
            c.send(("run", size, list(range(w, tasks, workers))))
        out, child_cpu, rss = {}, 0.0, []
        for c, p in zip(self.conns, self.procs):
            msg = self._recv(c, p)
            out.update(msg[1])
            child_cpu += msg[2]
            if msg[3]:
                rss.append(msg[3])
        return out, child_cpu, {"worker_maxrss_bytes": rss, "start_method": self.method}

    def _run_per_task(self, size, tasks, workers):
        """One message (and one pickled reply) per task, as a naive pool.map(chunksize=1)
        does: this is what tiny tasks pay."""
        out, child_cpu = {}, 0.0
        queues = [list(range(w, tasks, workers)) for w in range(workers)]
        while any(queues):
            busy = []
            for w, q in enumerate(queues):
                if q:
                    self.conns[w].send(("run", size, [q.pop(0)]))
                    busy.append(w)
            for w in busy:
                msg = self._recv(self.conns[w], self.procs[w])
                out.update(msg[1])
                child_cpu += msg[2]
        return out, child_cpu, {"start_method": self.method, "per_task": True}

    def stop(self):
        for c in getattr(self, "conns", []):
            try:
                c.send(("stop",))
            except Exception:
                pass
        for p in getattr(self, "procs", []):
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(1)


_SUBINTERP_CODE = """
import sys, json
if TW_PATH not in sys.path:
    sys.path.insert(0, TW_PATH)
from threadwise.bench.inside import workloads as W
W.CONTEXT.update(json.loads(TW_CONTEXT))
_fn = W.get(TW_WORKLOAD).fn
_params = json.loads(TW_PARAMS)
_out = {}
for _t in json.loads(TW_TASKS):
    _out[str(_t)] = _fn(TW_SIZE, _t, **_params)
with open(TW_RESULT, "w") as _f:
    _f.write(json.dumps(_out))
"""


class InterpreterBackend(SerialBackend):
    name = "interpreters"

    def start(self):
        mod, name = _subinterpreter_module()
        if mod is None:
            raise Unsupported(name)
        self.mod = mod
        t0 = _clock()
        self.interps = [mod.create() for _ in range(self.cfg["workers"])]
        self.tmp = self.cfg["tmpdir"]
        for i in self.interps:
            getattr(i, "exec")("import sys\nsys.path.insert(0, %r)\nfrom threadwise.bench.inside import workloads\n"
                   % self.cfg["agent_path"])
        return _clock() - t0

    def run(self, size, tasks, workers, params):
        errors = []

        def work(w, interp):
            result = os.path.join(self.tmp, "sub-%d.json" % w)
            try:
                interp.prepare_main(TW_PATH=self.cfg["agent_path"],
                                    TW_CONTEXT=json.dumps(W.CONTEXT),
                                    TW_WORKLOAD=self.cfg["workload"], TW_PARAMS=json.dumps(params),
                                    TW_TASKS=json.dumps(list(range(w, tasks, workers))),
                                    TW_SIZE=size, TW_RESULT=result)
                getattr(interp, "exec")(_SUBINTERP_CODE)  # "exec" is a keyword in 2.7
            except Exception:
                errors.append(traceback.format_exc())

        ts = [threading.Thread(target=work, args=(w, i)) for w, i in enumerate(self.interps)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise RuntimeError("a sub-interpreter raised:\n" + errors[0])
        out = {}
        for w in range(workers):
            with open(os.path.join(self.tmp, "sub-%d.json" % w)) as f:
                for k, v in json.load(f).items():
                    out[int(k)] = v
        return out, 0.0, {}

    def stop(self):
        for i in getattr(self, "interps", []):
            try:
                i.close()
            except Exception:
                pass


class AsyncioBackend(SerialBackend):
    name = "asyncio"

    def start(self):
        wl = W.get(self.cfg["workload"])
        if wl.async_name is None:
            raise Unsupported("workload %s has no asyncio variant (asyncio runs the I/O "
                              "workloads: sleep, socket)" % wl.name)
        if sys.version_info < (3, 7):
            raise Unsupported("asyncio.run needs Python 3.7+")
        from . import async_workloads
        self.aw = async_workloads
        self.async_name = wl.async_name
        return 0.0

    def run(self, size, tasks, workers, params):
        import asyncio
        res = asyncio.run(self.aw.run_tasks(self.async_name, size, workers, tasks, params))
        return dict(enumerate(res)), 0.0, {}


BACKENDS = {b.name: b for b in (SerialBackend, ThreadBackend, ProcessBackend,
                                InterpreterBackend, AsyncioBackend)}


# --------------------------------------------------------------------------
# modes
# --------------------------------------------------------------------------
def calibrate(fn, params, start, target_s, max_rounds=12, refine=4):
    """The size (growing from ``start``) whose task takes about ``target_s``.

    A JIT (PyPy, Jython) speeds up while this runs, so the estimate is refined
    at the chosen size until two rounds agree within 20%."""
    size = max(1, int(start))
    took = 0.0
    for _ in range(max_rounds):
        t0 = _clock()
        fn(size, 0, **params)
        took = _clock() - t0
        if took >= target_s / 3.0:
            break
        grow = 8 if took <= 0 else min(8.0, max(2.0, target_s / took))
        size = int(size * grow) + 1
    for _ in range(refine):
        if took <= 0:
            break
        new = max(1, int(round(size * target_s / took)))
        t0 = _clock()
        fn(new, 0, **params)
        took_new = _clock() - t0
        stable = abs(new - size) <= 0.2 * size
        size, took = new, took_new
        if stable:
            break
    if took > 0:
        size = max(1, int(round(size * target_s / took)))
    return size, took


#: warm-ups continue past the minimum until two agree within this share (JIT warm-up)
WARM_STABLE = 0.10
#: the minimum warm-ups on a JIT (measured: Jython's cpu-python task still sped up 2-4x
#: after 2 warm-ups)
JIT_WARMUPS = 5


def run_cell(cfg):
    wl = W.get(cfg["workload"])
    why = wl.unavailable()
    if why:
        raise Unsupported(why)
    params = dict(wl.params)
    params.update(cfg.get("params") or {})
    cfg["params"] = params
    if cfg["backend"] == "asyncio" and wl.async_name is None:
        raise Unsupported("workload %s has no asyncio variant (asyncio runs the I/O "
                          "workloads: sleep, socket)" % wl.name)
    size = cfg.get("size")
    if size is None:
        if wl.calibrate:
            size, took = calibrate(wl.fn, params, wl.size, cfg.get("target_s", 0.05))
            emit("calibrated", size=size, probe_s=took)
        else:
            size = wl.size
    backend = BACKENDS[cfg["backend"]](cfg, wl.fn)
    workers, tasks = cfg["workers"], cfg["tasks"]
    startup = backend.start()
    emit("startup", seconds=startup, workers=workers)
    try:
        min_warm = cfg["warmups"]
        if min_warm and JIT:
            # a JIT (PyPy; Jython's tiered JVM compilers settle late) gets at least JIT_WARMUPS
            min_warm = max(min_warm, JIT_WARMUPS)
        max_warm = max(min_warm, cfg.get("max_warmups", 10))
        repeats = cfg["repeats"]
        if JIT and cfg.get("jit_repeats", True):
            # measured on Jython: repeats of 0.04 s next to stalls of 0.3-0.5 s well after
            # the warm-ups; twice the repeats keep the median on the steady state
            repeats = 2 * repeats + 1
        warm, prev, i, timed = 0, None, 0, 0
        while timed < repeats:
            is_warmup = warm < max_warm and min_warm > 0 and (
                warm < min_warm or prev is None)
            c0, t0 = cpu_time(), _clock()
            out, child_cpu, extra = backend.run(size, tasks, workers, params)
            wall = _clock() - t0
            cpu = cpu_time() - c0 + child_cpu
            checks = [out.get(t) for t in range(tasks)]
            expected = None
            if wl.expected is not None and i == 0:
                expected = [wl.expected(size, t) for t in range(tasks)]
            rec = dict(repeat=i, warmup=is_warmup, wall_s=wall, cpu_s=cpu,
                       size=size, checksums=checks)
            if expected is not None:
                rec["expected"] = expected
            rec.update(extra)
            emit("sample", **rec)
            i += 1
            if is_warmup:
                warm += 1
                # keep warming up while a JIT still changes the timing
                if prev is not None and abs(wall - prev) > WARM_STABLE * prev:
                    prev = wall
                    min_warm = min(max_warm, warm + 1)
                else:
                    prev = wall
            else:
                timed += 1
    finally:
        backend.stop()


def _percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def _spin(stop):
    x = 0
    while not stop[0]:
        x += 1


def _spin_process(seconds):
    end = _clock() + seconds
    x = 0
    while _clock() < end:
        x += 1


def run_convoy(cfg):
    """I/O round-trip latency with k CPU-bound threads (or processes) beside it."""
    import socket
    pin = cfg.get("pin", False)
    pinned_to = None
    if pin:
        if not hasattr(os, "sched_setaffinity"):
            raise Unsupported("os.sched_setaffinity is not available in this interpreter")
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, set([cpu]))  # threads started after this inherit it
        pinned_to = cpu
    if cfg.get("switch_interval"):
        sys.setswitchinterval(cfg["switch_interval"])
    k = cfg.get("cpu_threads", 0)
    burner = cfg.get("burner", "threads")
    stop = [False]
    procs, threads = [], []
    if burner == "processes" and k:
        import multiprocessing
        ctx = multiprocessing.get_context("fork") if "fork" in \
            multiprocessing.get_all_start_methods() else multiprocessing.get_context()
        procs = [ctx.Process(target=_spin_process, args=(cfg.get("max_s", 10.0) + 5,))
                 for _ in range(k)]
        for p in procs:
            p.daemon = True
            p.start()
    else:
        threads = [threading.Thread(target=_spin, args=(stop,)) for _ in range(k)]
        for t in threads:
            t.daemon = True
            t.start()
    time.sleep(0.05)  # let the burners get going
    host, port = W.CONTEXT["echo"]
    s = socket.create_connection((host, port), timeout=30)
    lat = []
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 64
        deadline = _clock() + cfg.get("max_s", 10.0)
        for _ in range(cfg.get("round_trips", 200)):
            t0 = _clock()
            s.sendall(payload)
            got = 0
            while got < len(payload):
                chunk = s.recv(4096)
                if not chunk:
                    raise IOError("echo server closed the connection")
                got += len(chunk)
            lat.append(_clock() - t0)
            if _clock() > deadline:
                break
    finally:
        s.close()
        stop[0] = True
        for t in threads:
            t.join()
        for p in procs:
            p.terminate()
            p.join()
    srt = sorted(lat)
    emit("convoy", cpu_threads=k, burner=burner, pinned=bool(pin), pinned_to=pinned_to,
         switch_interval_s=sys.getswitchinterval() if hasattr(sys, "getswitchinterval") else None,
         round_trips=len(lat), median_s=_percentile(srt, 0.5), p99_s=_percentile(srt, 0.99),
         max_s=srt[-1] if srt else None, latencies_s=lat)


def run_gilcheck(cfg):
    from .gilcheck import gil_check
    cores = usable_cores()
    for call in cfg["calls"]:
        wl = W.get(call["workload"])
        why = wl.unavailable()
        if why:
            emit("gilcheck", label=call.get("label", wl.name), unsupported=why)
            continue
        params = dict(wl.params)
        params.update(call.get("params") or {})
        res = gil_check(wl.fn, (call["size"], 0), params, duration=cfg.get("duration", 0.3),
                        cores=cores)
        res["label"] = call.get("label", wl.name)
        res["workload"] = wl.name
        res["params"] = params
        res["cores"] = cores
        emit("gilcheck", **res)


class _Counter(object):
    def __init__(self):
        self.n = 0


def _race(op, threads, per_thread):
    """``threads`` threads each apply ``op`` ``per_thread`` times to one shared object, with
    no lock; returns (expected, actual)."""
    counter, items, table = _Counter(), [], {}

    def bump():
        for _ in range(per_thread):
            counter.n += 1

    def append():
        for i in range(per_thread):
            items.append(i)

    def update():
        for _ in range(per_thread):
            table["k"] = table.get("k", 0) + 1

    work = {"counter += 1": bump, "list.append": append, "dict read-modify-write": update}[op]
    start = threading.Event()

    def run():
        start.wait()
        work()

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    start.set()
    for t in ts:
        t.join()
    actual = {"counter += 1": lambda: counter.n, "list.append": lambda: len(items),
              "dict read-modify-write": lambda: table.get("k", 0)}[op]()
    return threads * per_thread, actual


def run_races(cfg):
    """C9: unsynchronized shared updates from several threads; emits the updates lost."""
    threads = int(cfg.get("threads") or max(4, 2 * usable_cores()))
    per_thread = int(cfg.get("per_thread") or 100000)
    for run in range(int(cfg.get("runs") or 3)):
        for op in ("counter += 1", "list.append", "dict read-modify-write"):
            t0 = _clock()
            expected, actual = _race(op, threads, per_thread)
            emit("race", op=op, run=run, threads=threads, per_thread=per_thread,
                 expected=expected, actual=actual, lost=expected - actual, seconds=_clock() - t0)


def do_imports(modules):
    """Import the user's modules before measuring (``--import``).  On a free-threaded build an
    extension that isn't marked free-threading-safe turns the GIL back on with a RuntimeWarning
    that names it: record which module and when."""
    import warnings
    found = []
    t0 = _clock()
    for name in modules:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            __import__(name)
        for w in caught:
            text = str(w.message)
            if "global interpreter lock" in text and "enabled" in text:
                mod = text.split("module '", 1)[1].split("'", 1)[0] if "module '" in text else name
                found.append({"module": mod, "imported": name, "at_s": _clock() - t0,
                              "message": text})
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return found


def main(cfg):
    tmpdir = cfg.get("tmpdir")
    W.CONTEXT.update(cfg.get("context") or {})
    if tmpdir:
        W.CONTEXT.setdefault("tmpdir", tmpdir)
    try:
        if cfg.get("switch_interval") and cfg.get("mode") != "convoy":
            sys.setswitchinterval(cfg["switch_interval"])
        reenabled = do_imports(cfg.get("imports") or [])
        info = describe()
        if reenabled:
            info["gil_reenabled_by"] = reenabled
        emit("info", **info)
        mode = cfg.get("mode", "cell")
        if mode == "describe":
            if cfg.get("parallel_probe"):
                emit("parallel", **parallel_probe(cfg.get("probe_s", 1.0)))
        elif mode == "cell":
            run_cell(cfg)
        elif mode == "convoy":
            run_convoy(cfg)
        elif mode == "gilcheck":
            run_gilcheck(cfg)
        elif mode == "races":
            run_races(cfg)
        else:
            raise ValueError("unknown agent mode %r" % mode)
    except Unsupported as e:
        emit("unsupported", reason=str(e))
    except Exception as e:
        emit("error", what="%s: %s" % (type(e).__name__, e), traceback=traceback.format_exc())
    except KeyboardInterrupt:
        emit("error", what="interrupted")
        raise
    emit("done")
