"""threadwise probe start-up hook: loaded by ``site`` in the program the probe wraps.

``threadwise probe -- python script.py`` runs the command unchanged, with this
directory first on PYTHONPATH.  Here, before the program's first line, we
locate the GIL (``_agent.find_gil``), report it and each new thread on the pipe
the probe gave us (THREADWISE_PROBE_FD), undo our traces (PYTHONPATH, sys.path,
the environment: the program's own children are not probed), then hand over to
any other ``sitecustomize`` on the path.  Nothing else of the program changes:
its argv, ``__main__``, output, exceptions and exit status are its own.

Messages are JSON lines; writes never block (a full pipe drops a message
rather than stall the program).  A forked child sends one ``fork`` message
(its PID) and nothing else: the probe follows the program's own process only.
"""
import os
import sys


def _threadwise_probe_boot():
    env = os.environ
    fd = env.pop("THREADWISE_PROBE_FD", None)
    here = env.pop("THREADWISE_PROBE_BOOT", None)
    agent_path = env.pop("THREADWISE_PROBE_AGENT", None)
    knock = env.pop("THREADWISE_PROBE_KNOCK", None)
    interval = env.pop("THREADWISE_PROBE_INTERVAL", None)
    old_path = env.pop("THREADWISE_PROBE_PYTHONPATH", None)
    if old_path is not None:  # "-" was unset, "+..." was "..."
        if old_path == "-":
            env.pop("PYTHONPATH", None)
        else:
            env["PYTHONPATH"] = old_path[1:]
    if here:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if fd is None or agent_path is None:
        return
    fd = int(fd)
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    except Exception:
        pass
    pid = os.getpid()

    def send(msg):
        if os.getpid() != pid:  # a fork of the program: not ours to report
            return
        try:
            os.write(fd, (_dumps(msg) + "\n").encode("utf-8"))
        except OSError:
            pass

    import importlib.util
    spec = importlib.util.spec_from_file_location("_threadwise_probe_agent", agent_path)
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    clock = agent._clock

    _report_forks(fd, clock)

    gil_on = agent.gil_enabled()
    loc = agent.find_gil() if (gil_on and not knock) else None
    tid, name, tstate = _identity(agent)
    ready = {
        "ev": "ready", "t": clock(), "pid": pid, "impl": agent.implementation(),
        "version": ".".join(str(v) for v in sys.version_info[:3]),
        "ft_build": agent.free_threaded_build() if hasattr(sys, "_is_gil_enabled") else False,
        "gil_enabled": gil_on, "gil": loc.as_dict() if loc is not None and loc.address else None,
        "reason": loc.reason if loc is not None else "",
        "tid": tid, "name": name, "tstate": tstate,
        "switch_interval": sys.getswitchinterval() if hasattr(sys, "getswitchinterval") else None,
    }
    knocker = None
    if gil_on and (loc is None or not loc.address):
        knocker = agent.Knocker(
            interval=max(float(interval or 0.005), 0.005),
            # counts now and then, so that a program killed or ended by
            # os._exit still leaves figures behind
            on_snapshot=lambda snap: send(dict(snap, ev="knock")),
            on_start=lambda tid: send({"ev": "exclude", "tid": tid}))
        ready["knocker"] = True
    send(ready)

    watcher = agent.ThreadWatcher(
        lambda tid, name, tstate: send({"ev": "thread", "tid": tid, "name": name, "tstate": tstate,
                                        "t": clock()}))
    watcher.start()

    if gil_on is False and hasattr(sys, "_is_gil_enabled"):
        def enabled(module, t):
            where = agent.find_gil()
            send({"ev": "gil_enabled", "module": module, "t": t,
                  "gil": where.as_dict() if where.address else None})
        agent.watch_gil_enabling(enabled)

    if knocker is not None:
        knocker.start()

    def at_exit():
        msg = {"ev": "end", "t": clock(), "gil_enabled": agent.gil_enabled()}
        if knocker is not None:
            knocker.stop_flag = True
            msg["knock"] = knocker.snapshot()
        send(msg)

    import atexit
    atexit.register(at_exit)


def _report_forks(fd, clock):
    """A fork (multiprocessing, os.fork) is not followed: say so, once, from the
    child (the program's own messages stop there: send() checks the pid)."""
    if not hasattr(os, "register_at_fork"):
        return

    def forked():
        try:
            os.write(fd, (_dumps({"ev": "fork", "pid": os.getpid(), "t": clock()}) + "\n").encode("utf-8"))
        except OSError:
            pass

    os.register_at_fork(after_in_child=forked)


def _identity(agent):
    """(native id, name, tstate) of the main thread, without importing threading
    (gevent and eventlet want to patch it before anyone imports it)."""
    try:
        import _thread
        tid = _thread.get_native_id() if hasattr(_thread, "get_native_id") else None
    except ImportError:
        tid = None
    return tid, "MainThread", agent.holder_key()


def _dumps(obj):
    """A tiny JSON writer (flat dicts of str, int, float, bool, None, nested dicts)."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, (int, float)):
        return repr(obj)
    if isinstance(obj, dict):
        return "{" + ", ".join(_dumps(str(k)) + ": " + _dumps(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(_dumps(v) for v in obj) + "]"
    s = str(obj)
    out = ['"']
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


try:
    _threadwise_probe_boot()
except Exception as _exc:  # never break the user's program
    try:
        sys.stderr.write("threadwise probe: start-up hook failed (%s: %s); the program runs unprobed\n"
                         % (type(_exc).__name__, _exc))
    except Exception:
        pass

# hand over to the sitecustomize this one shadows, if any
_this = sys.modules.pop("sitecustomize", None)
try:
    import sitecustomize  # noqa: F401  # pyflakes: ignore
except ImportError as _exc:
    if getattr(_exc, "name", "sitecustomize") != "sitecustomize":
        raise
finally:
    if "sitecustomize" not in sys.modules and _this is not None:
        sys.modules["sitecustomize"] = _this
del _this
