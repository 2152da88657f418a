"""Target interpreters: any command that runs Python, and the agent that runs in it.

An interpreter is a command prefix (``pypy3``, ``jython``,
``chroot /srv/threadwise-sid python3.14``, ``PYTHON_GIL=1 python3.13t``):
leading ``NAME=value`` words become environment variables.  Nothing is
installed into it: :func:`run_agent` sends a bootstrap on stdin (``CMD -``)
that unpacks the agent's files (``threadwise/target/*.py``) into a temporary
directory inside the target's own file system, imports them and runs one
config.  Records come back on stdout as ``@@tw <json>`` lines::

    host: Interpreter.argv + ["-"]  --stdin-->  bootstrap --> agent.main(config)
          records  <--stdout-- "@@tw {...}"      stderr kept for the error message

A target that doesn't exist, exits early, prints garbage or hangs raises
:class:`InterpreterError` with what it printed; :func:`discover` finds the
interpreters on PATH, pyenv's, and those ``scripts/install-interpreters`` put
in place.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import InterpreterError, UsageError

TARGET_DIR = Path(__file__).parent / "inside"
TARGET_FILES = ("__init__.py", "workloads.py", "agent.py", "gilcheck.py", "async_workloads.py")
PREFIX = "@@tw "
MANIFEST = Path(os.environ.get("THREADWISE_MANIFEST", "/opt/threadwise/interpreters.json"))
#: scripts/install-interpreters' names and commands (its default prefixes), for a
#: machine whose manifest is missing: the CPython builds in /opt/threadwise (free-
#: threaded 3.13t/3.14t/3.15t; same-flags GIL builds py313, py314-gil, py315-gil)
#: and the GIL builds of 3.14/3.15 in the Debian sid chroot
INSTALLED: Tuple[Tuple[str, List[str]], ...] = (
    ("py313t", ["/opt/threadwise/py313t/bin/python3.13t"]),
    ("py313", ["/opt/threadwise/py313/bin/python3.13"]),
    ("py314", ["chroot", "/srv/threadwise-sid", "python3.14"]),
    ("py315", ["chroot", "/srv/threadwise-sid", "python3.15"]),
    ("py314t", ["/opt/threadwise/py314t/bin/python3.14t"]),
    ("py315t", ["/opt/threadwise/py315t/bin/python3.15t"]),
    ("py314-gil", ["/opt/threadwise/py314-gil/bin/python3.14"]),
    ("py315-gil", ["/opt/threadwise/py315-gil/bin/python3.15"]),
)


@dataclass(frozen=True)
class Interpreter:
    """A command prefix that runs Python, with optional leading environment assignments."""

    argv: Tuple[str, ...]
    env: Tuple[Tuple[str, str], ...] = ()
    label: str = ""

    @classmethod
    def parse(cls, text: str, label: Optional[str] = None) -> "Interpreter":
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError("the interpreter command %r is not valid UTF-8" % text,
                             "it holds bytes the shell passed through undecoded (e.g. $'\\xff')",
                             "give the command in UTF-8") from None
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise UsageError("can't parse the interpreter command %r (%s)" % (text, e),
                             "unbalanced quotes", "quote the command as a shell would")
        env: List[Tuple[str, str]] = []
        while words and "=" in words[0] and not words[0].startswith(("/", "-", "=")) \
                and words[0].split("=", 1)[0].replace("_", "").isalnum():
            k, v = words.pop(0).split("=", 1)
            env.append((k, v))
        if not words:
            raise UsageError("the interpreter command %r names no program" % text,
                             "only environment assignments were given",
                             "give a command, e.g. --python 'PYTHON_GIL=1 python3.13t'")
        return cls(tuple(words), tuple(env), label or text.strip())

    @classmethod
    def current(cls) -> "Interpreter":
        return cls((sys.executable,), (), "python%d.%d" % sys.version_info[:2])

    @property
    def command(self) -> str:
        return " ".join([shlex.quote("%s=%s" % kv) for kv in self.env] +
                        [shlex.quote(a) for a in self.argv])

    def environ(self) -> Dict[str, str]:
        env = dict(os.environ)
        # the target must not pick up the host's PYTHONPATH (set for another version) ...
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        env.update(dict(self.env))   # ... but one given with the command is the user's choice
        env.setdefault("PYTHONIOENCODING", "utf-8")
        return env


def _sources() -> Dict[str, str]:
    stub = "# agent package stub: the host's threadwise is not here\n"
    out = {"threadwise/__init__.py": stub, "threadwise/bench/__init__.py": stub}
    for name in TARGET_FILES:
        out["threadwise/bench/inside/" + name] = (TARGET_DIR / name).read_text(encoding="ascii")
    return out


_BOOTSTRAP = r'''
import sys, os, json, tempfile, shutil
if sys.platform.startswith("linux"):
    try:   # end with the host even if it is SIGKILLed (threadwise._lifetime, stdlib-only copy)
        import ctypes
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() != %(host_pid)d and os.getppid() == 1:
        os._exit(1)
main_mod = sys.modules["__main__"]
if getattr(main_mod, "__file__", None) in ("<stdin>", "-"):
    del main_mod.__file__   # multiprocessing's spawn would try to re-run "<stdin>"
SOURCES = json.loads(%(sources)s)
CONFIG = json.loads(%(config)s)
_d = tempfile.mkdtemp(prefix="threadwise-agent-")
# the host removes this folder if it has to kill us before the finally below runs
sys.stdout.write(%(prefix)r + json.dumps({"type": "tmpdir", "path": _d}) + "\n")
sys.stdout.flush()
try:
    for _rel, _text in SOURCES.items():
        _p = os.path.join(_d, *_rel.split("/"))
        if not os.path.isdir(os.path.dirname(_p)):
            os.makedirs(os.path.dirname(_p))
        with open(_p, "w") as _f:
            _f.write(_text)
    sys.path.insert(0, _d)
    CONFIG["agent_path"] = _d
    CONFIG.setdefault("tmpdir", _d)
    from threadwise.bench.inside import agent
    if __name__ == "__main__":
        agent.main(CONFIG)
finally:
    shutil.rmtree(_d, ignore_errors=True)
'''


def agent_script(config: Dict[str, Any]) -> str:
    """The bootstrap program sent on stdin: the agent's files and one config, as JSON."""
    return _BOOTSTRAP % {"sources": repr(json.dumps(_sources())),
                         "config": repr(json.dumps(config)), "prefix": PREFIX,
                         "host_pid": os.getpid()}


@dataclass
class AgentRun:
    """What one agent run produced: its records, exit status and the tail of stderr."""

    records: List[Dict[str, Any]] = field(default_factory=list)
    returncode: Optional[int] = None
    stderr: str = ""
    garbage: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def of(self, rtype: str) -> List[Dict[str, Any]]:
        return [r for r in self.records if r.get("type") == rtype]

    def first(self, rtype: str) -> Optional[Dict[str, Any]]:
        found = self.of(rtype)
        return found[0] if found else None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


class _Readers:
    """Two threads that drain the agent's stdout (records, garbage) and stderr (a tail)."""

    def __init__(self, proc: subprocess.Popen, run: AgentRun,
                 on_record: Optional[Callable[[Dict[str, Any]], None]]) -> None:
        self.proc, self.run, self.on_record = proc, run, on_record
        self.err_chunks: List[bytes] = []
        self.threads = [threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=self._read_out, daemon=True)]
        for t in self.threads:
            t.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read(4096), b""):  # type: ignore[union-attr]
            self.err_chunks.append(chunk)
            if sum(len(c) for c in self.err_chunks) > 200_000:
                del self.err_chunks[0]

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(PREFIX):
                try:
                    rec = json.loads(line[len(PREFIX):])
                except ValueError:
                    self.run.garbage.append(line[:200])
                    continue
                self.run.records.append(rec)
                if self.on_record is not None:
                    try:
                        self.on_record(rec)
                    except Exception:  # a view's bug must not kill the measurement
                        pass
            elif line.strip() and len(self.run.garbage) < 50:
                self.run.garbage.append(line[:200])

    def join(self, timeout: float) -> None:
        for t in self.threads:
            t.join(timeout)

    @property
    def stderr(self) -> str:
        return b"".join(self.err_chunks).decode("utf-8", "replace")


def _start(interp: Interpreter) -> subprocess.Popen:
    try:
        return subprocess.Popen(list(interp.argv) + ["-"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=interp.environ(), start_new_session=True)
    except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
        raise InterpreterError(
            "interpreter %r could not be started: %s" % (interp.command, e),
            "the command is not installed or not on PATH",
            "check the command in a shell, or install it with scripts/install-interpreters") from None


def run_agent(interp: Interpreter, config: Dict[str, Any], timeout: float = 600.0,
              on_record: Optional[Callable[[Dict[str, Any]], None]] = None) -> AgentRun:
    """Run the agent with ``config`` in ``interp``; kill its whole process group on timeout.

    Raises :class:`InterpreterError` when the command can't start, hangs past
    ``timeout``, or ends without the agent's final ``done`` record.  An agent
    that reports ``error`` or ``unsupported`` is *not* an exception: the caller
    decides (the cell is recorded as such).
    """
    run = AgentRun()
    t0 = time.monotonic()
    proc = _start(interp)
    readers = _Readers(proc, run, on_record)
    try:
        try:
            assert proc.stdin is not None
            proc.stdin.write(agent_script(config).encode("utf-8"))
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # it died at once; the exit status and stderr tell why
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()
            readers.join(2)
            raise InterpreterError(
                "interpreter %r did not finish within %.0f s (mode %s, %s)"
                % (interp.command, timeout, config.get("mode"), _what(config)),
                "it hangs, or the work is far larger than expected on this machine",
                "check the command by hand; raise --timeout; the output so far was: %s"
                % _tail(readers.stderr or "\n".join(run.garbage))) from None
    except BaseException:
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
        raise
    finally:
        # the agent may leave children (a pool) behind if it was killed: end them all
        if proc.poll() is not None:
            _kill_group(proc)
            if proc.returncode != 0:
                readers.join(2)
                _remove_tmpdir(interp, run)
    readers.join(5)
    run.returncode = proc.returncode
    run.stderr = readers.stderr
    run.seconds = time.monotonic() - t0
    if run.first("done") is None and run.first("error") is None and run.first("unsupported") is None:
        printed = run.stderr.strip() or "\n".join(run.garbage) or "(nothing)"
        raise InterpreterError(
            "interpreter %r exited with status %s before the agent finished" % (interp.command, proc.returncode),
            "it is not a Python that can run the agent (Python 2.7 or 3.8+ with json and threading), "
            "or it crashed",
            "run the command by hand to see why; it printed: %s" % _tail(printed))
    return run


def _remove_tmpdir(interp: Interpreter, run: AgentRun) -> None:
    """Remove the folder a killed agent could not remove itself (seen from the host: a
    ``chroot ROOT python`` command's paths lie under ROOT)."""
    rec = run.first("tmpdir")
    path = rec.get("path") if rec else None
    if not isinstance(path, str) or "threadwise-agent-" not in os.path.basename(path):
        return
    argv = list(interp.argv)
    if argv and os.path.basename(argv[0]) == "chroot":
        root = next((a for a in argv[1:] if not a.startswith("-")), None)
        if root is None:
            return
        path = os.path.join(root, path.lstrip("/"))
    shutil.rmtree(path, ignore_errors=True)


def _what(config: Dict[str, Any]) -> str:
    return " ".join("%s=%s" % (k, config[k]) for k in ("workload", "backend", "workers") if k in config)


def _tail(text: str, n: int = 800) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def describe(interp: Interpreter, parallel_probe: bool = False, timeout: float = 60.0,
             imports: Sequence[str] = ()) -> Dict[str, Any]:
    """The interpreter's facts (implementation, version, GIL, sub-interpreters, ...), after
    importing ``imports`` (which may turn a free-threaded build's GIL back on)."""
    run = run_agent(interp, {"mode": "describe", "parallel_probe": parallel_probe,
                             "imports": list(imports)}, timeout=timeout)
    info = run.first("info")
    if info is None:
        err = run.first("error") or {}
        raise InterpreterError("interpreter %r could not describe itself: %s"
                               % (interp.command, err.get("what", "no answer")),
                               "the agent failed inside it", "see: " + _tail(err.get("traceback", run.stderr)))
    info = {k: v for k, v in info.items() if k != "type"}
    info["command"] = interp.command
    info["label"] = interp.label
    info["env"] = dict(interp.env)
    par = run.first("parallel")
    if par:
        info["parallel_probe"] = {k: v for k, v in par.items() if k != "type"}
    if not info.get("gil_reenabled_by"):
        reenabled = gil_reenabled_by(run.stderr)
        if reenabled:
            info["gil_reenabled_by"] = [{"module": m} for m in reenabled]
    return info


def gil_reenabled_by(stderr: str) -> List[str]:
    """Modules that re-enabled the GIL on a free-threaded build (from their RuntimeWarning)."""
    return sorted(set(re.findall(r"The global interpreter lock \(GIL\) has been enabled to load "
                                 r"module '([^']+)'", stderr)))


# --------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------
def _candidates() -> List[Tuple[str, List[str]]]:
    found: List[Tuple[str, List[str]]] = []
    seen = set()

    def add(label: str, argv: Sequence[str]) -> None:
        exe = argv[0]
        chroot = os.path.basename(exe) == "chroot"
        key = ("chroot",) + tuple(argv[1:]) if chroot else tuple(argv)
        if key in seen:
            return
        if chroot:
            root = argv[1] if len(argv) > 1 else ""
            if not (Path(root) / argv[2].lstrip("/")).exists() and not any(
                    (Path(root) / d / argv[2]).exists() for d in ("usr/bin", "usr/local/bin")):
                return
        elif shutil.which(exe) is None:
            return
        elif "/.pyenv/shims/" in (shutil.which(exe) or ""):
            return  # a pyenv shim runs whatever version is active; the versions are listed below
        seen.add(key)
        found.append((label, list(argv)))

    add("python%d.%d" % sys.version_info[:2], [sys.executable])
    if MANIFEST.exists():
        try:
            for label, argv in json.loads(MANIFEST.read_text()).items():
                add(label, argv)
        except (ValueError, OSError, AttributeError):
            pass
    # where scripts/install-interpreters puts them, should its manifest be missing
    for label, argv in INSTALLED:
        add(label, argv)
    for name in ("python3", "pypy3", "pypy", "jython", "python3.13t", "python3.14t",
                 "python3.15t", "python3.15", "python3.14", "python3.13", "python3.12",
                 "python2.7"):
        p = shutil.which(name)
        if p:
            add(name, [p])
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        def natural(p: Path) -> List[Any]:
            return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p.name)]

        for d in sorted(pyenv.iterdir(), key=natural):
            for exe in sorted(d.glob("bin/python[23]*")):
                if exe.name.count(".") == 1 and not exe.name.endswith("-config"):
                    add("pyenv-" + d.name, [str(exe)])
                    break
    # the same binary under two names is one interpreter
    out, real = [], set()
    for label, argv in found:
        key = ("chroot",) + tuple(argv[1:]) if os.path.basename(argv[0]) == "chroot" else (os.path.realpath(shutil.which(argv[0]) or argv[0]),) + tuple(argv[1:])
        if key in real:
            continue
        real.add(key)
        out.append((label, argv))
    return out


def discover(parallel_probe: bool = True, timeout: float = 60.0) -> List[Dict[str, Any]]:
    """Describe every interpreter found; a free-threaded build also gets its PYTHON_GIL=1 control."""
    rows: List[Dict[str, Any]] = []
    for label, argv in _candidates():
        interp = Interpreter(tuple(argv), (), label)
        rows.extend(_describe_row(interp, parallel_probe, timeout))
        if rows and rows[-1].get("free_threaded"):
            ctl = Interpreter(tuple(argv), (("PYTHON_GIL", "1"),), label + " (PYTHON_GIL=1)")
            rows.extend(_describe_row(ctl, parallel_probe, timeout))
    return rows


def _describe_row(interp: Interpreter, parallel_probe: bool, timeout: float) -> List[Dict[str, Any]]:
    try:
        return [describe(interp, parallel_probe, timeout)]
    except InterpreterError as e:
        return [{"command": interp.command, "label": interp.label, "error": e.message(),
                 "implementation": None, "version": None, "free_threaded": False,
                 "gil_enabled": None, "subinterpreters": False}]
