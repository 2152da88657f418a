"""Assertions about the GIL and scaling, for a project's own test suite.

::

    assert_releases_gil(fn, *args, **kwargs)   the call lets other threads run Python
    assert_holds_gil(fn, *args, **kwargs)      the call keeps the GIL while it runs
    assert_gil_stays_disabled(*modules)        (free-threaded builds) importing these
                                               modules leaves the GIL off
    assert_scales(fn, items, backend="threads", workers=2, at_least=1.5, repeats=5)
                                               the backend runs the items faster than
                                               a plain loop, by at_least

    assertion --> measure (threadwise.holds_gil, a fresh interpreter, interleaved timings)
              --> Measurement recorded here (the pytest plugin, threadwise.pytest_plugin,
                  lists them in the terminal summary)
              --> AssertionError whose message has the measured figures, or nothing

Every check asserts a property that holds on a busy machine: whether a call
holds the GIL is read from the GIL's own state (``holds_gil``: the share of
samples in which the calling thread held it), not from how fast anything ran,
and ``assert_scales`` fails only when the upper end of the speedup's 95%
confidence interval is below ``at_least`` (noise widens the interval; it does
not fail the test).

A check that can't apply here skips the test (``pytest.skip`` under pytest,
``unittest.SkipTest`` elsewhere): ``assert_gil_stays_disabled`` on a build with a
GIL, ``assert_holds_gil`` on an interpreter running without one, either GIL
assertion where the probe can't tell.

Importing this module is cheap: the probe, the executor and the statistics load
when an assertion runs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, NoReturn, Optional, Sequence, Tuple

from .errors import UsageError

__all__ = [
    "assert_releases_gil",
    "assert_holds_gil",
    "assert_gil_stays_disabled",
    "assert_scales",
    "Measurement",
    "measurements",
]


@dataclass(frozen=True)
class Measurement:
    """What one assertion measured (the pytest plugin prints these at the end)."""

    #: "releases_gil", "holds_gil", "gil_stays_disabled" or "scales"
    check: str
    #: what was measured, e.g. "openssl_sha256(<8.0 MiB of bytes>)"
    subject: str
    #: "passed", "failed" or "skipped" (the assertion's outcome, not the test's)
    outcome: str
    #: the measured figures in one line
    figures: str
    #: the pytest test id that ran the assertion ("" outside pytest)
    test: str = ""

    def to_dict(self) -> Dict[str, str]:
        return {"check": self.check, "subject": self.subject, "outcome": self.outcome,
                "figures": self.figures, "test": self.test}


# Append-only, in the order measured; the pytest plugin remembers how many it has taken.
_RECORDS: List[Measurement] = []


def measurements() -> Tuple[Measurement, ...]:
    """Everything the assertions of this process have measured so far."""
    return tuple(_RECORDS)


def _current_test() -> str:
    # pytest sets it for each test phase: "tests/test_x.py::test_y (call)"
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.rsplit(" (", 1)[0] if current else ""


def _record(check: str, subject: str, outcome: str, figures: str) -> None:
    _RECORDS.append(Measurement(check, subject, outcome, figures, _current_test()))


def _fail(check: str, subject: str, figures: str, message: str) -> NoReturn:
    _record(check, subject, "failed", figures)
    raise AssertionError(message)


def _skip(check: str, subject: str, reason: str) -> NoReturn:
    _record(check, subject, "skipped", reason)
    if "pytest" in sys.modules and os.environ.get("PYTEST_CURRENT_TEST"):  # a pytest test
        import pytest
        pytest.skip(reason)
    import unittest
    raise unittest.SkipTest(reason)


# -- naming what was measured ------------------------------------------------------
def _name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return _short(fn)
    # json.dumps, but spin (not test_mine.spin) and openssl_sha256 (not _hashlib....)
    module = getattr(fn, "__module__", None)
    last = module.rsplit(".", 1)[-1] if isinstance(module, str) else ""
    if last and module not in ("builtins", "__main__") and not last.startswith(("_", "test")) \
            and not last.endswith("_test") and last != "conftest":
        return "%s.%s" % (last, name)
    return name


def _size(n: int) -> str:
    if n >= 1 << 20:
        return "%.1f MiB" % (n / float(1 << 20))
    if n >= 1 << 10:
        return "%.1f KiB" % (n / float(1 << 10))
    return "%d bytes" % n


def _short(x: Any) -> str:
    if isinstance(x, (bytes, bytearray, memoryview)):
        n = x.nbytes if isinstance(x, memoryview) else len(x)
        if n > 32:
            return "<%s of %s>" % (_size(n), type(x).__name__)
    elif isinstance(x, str) and len(x) > 32:
        return "<str of %d chars>" % len(x)
    elif isinstance(x, (list, tuple, dict, set, frozenset)) and len(x) > 4:
        return "<%s of %d items>" % (type(x).__name__, len(x))
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _call_name(fn: Callable[..., Any], args: Sequence[Any], kwargs: Dict[str, Any]) -> str:
    parts = [_short(a) for a in args] + ["%s=%s" % (k, _short(v)) for k, v in kwargs.items()]
    return "%s(%s)" % (_name(fn), ", ".join(parts))


# -- the GIL, call by call ---------------------------------------------------------
def _gil_parts(r: Any) -> List[str]:
    """What ``holds_gil`` measured, figure by figure (the held share first, when sampled)."""
    parts = []
    if r.held_share is not None:
        parts.append("its thread held the GIL in %.0f%% of %d samples" % (100 * r.held_share,
                                                                           r.samples))
    if r.ticker_share is not None:
        parts.append("a pure-Python thread ran at %.0f%% of its solo pace" % (100 * r.ticker_share))
    if r.longest_stall_s is not None:
        parts.append("longest stall %.1f ms" % (1000 * r.longest_stall_s))
    if r.call_s is not None:
        parts.append("%d calls of %.2f ms" % (r.calls, 1000 * r.call_s))
    parts.append("method: %s" % r.method)
    return parts


def _gil_message(subject: str, r: Any, holds: bool) -> str:
    verdict = "held" if holds else "released"
    rest = _gil_parts(r)[1 if r.held_share is not None else 0:]
    return "%s %s the GIL: %s. Also measured: %s" % (subject, verdict, _evidence(r, holds),
                                                     "; ".join(rest))


def _evidence(r: Any, holds: bool) -> str:
    """Why the verdict was what it was, with the threshold it was judged against."""
    from .bench.inside.gilcheck import HOLD_SHARE as TICKER_HOLD
    from .probe.holds import HOLD_SHARE

    if r.held_share is not None:
        return ("its thread held it in %.0f%% of %d samples taken over %d calls (a call that "
                "%s the GIL holds it in %s %.0f%%)" % (
                    100 * r.held_share, r.samples, r.calls,
                    "releases" if holds else "holds", "<=" if holds else ">", 100 * HOLD_SHARE))
    return ("a pure-Python ticker thread ran at %.0f%% of its solo pace during the calls (a %s "
            "GIL lets it run %s %.0f%%); longest stall %.1f ms" % (
                100 * (r.ticker_share or 0.0), "released" if holds else "held",
                ">=" if holds else "<", 100 * TICKER_HOLD, 1000 * (r.longest_stall_s or 0.0)))


def _measure_gil(fn: Callable[..., Any], args: Tuple[Any, ...],
                 kwargs: Dict[str, Any]) -> Tuple[str, Any]:
    from .probe.holds import check_call

    return _call_name(fn, args, kwargs), check_call(fn, args, kwargs)


def assert_releases_gil(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Fail unless ``fn(*args, **kwargs)`` releases the GIL while it runs.

    Measured by :func:`threadwise.holds_gil` (about 0.6 s of repeated calls).  On an
    interpreter running without a GIL this passes: no call can hold it.  Skips
    where the probe can't tell.
    """
    subject, r = _measure_gil(fn, args, kwargs)
    figures = "; ".join(_gil_parts(r))
    if r.holds is None:
        _skip("releases_gil", subject, "can't tell whether %s holds the GIL here: %s" % (
            subject, r.note or r.method))
    if r.holds:
        _fail("releases_gil", subject, figures, _gil_message(subject, r, holds=True))
    _record("releases_gil", subject, "passed", figures if r.method != "no GIL" else
            "no GIL in this interpreter: " + figures)


def assert_holds_gil(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Fail unless ``fn(*args, **kwargs)`` holds the GIL while it runs (other threads
    can't run Python meanwhile).  Skips on an interpreter running without a GIL, and
    where the probe can't tell."""
    subject, r = _measure_gil(fn, args, kwargs)
    figures = "; ".join(_gil_parts(r))
    if r.method == "no GIL":
        _skip("holds_gil", subject, "this interpreter runs without a GIL (%s): no call can "
              "hold it, so assert_holds_gil does not apply" % sys.version.split()[0])
    if r.holds is None:
        _skip("holds_gil", subject, "can't tell whether %s holds the GIL here: %s" % (
            subject, r.note or r.method))
    if not r.holds:
        _fail("holds_gil", subject, figures, _gil_message(subject, r, holds=False))
    _record("holds_gil", subject, "passed", figures)


# -- free-threaded builds: does an import turn the GIL on? ---------------------------
# Runs in a fresh interpreter (-I: PYTHON_GIL and the other PYTHON* variables are
# ignored, so the build's default applies), with the caller's sys.path.  It prints
# one marked JSON line; whatever the imports print goes before it.
_CHILD = r"""
import json, sys, warnings
cfg = json.loads(sys.stdin.readline())
sys.path[:] = cfg["path"]
state = getattr(sys, "_is_gil_enabled", None)
out = {"start": state() if state else None, "modules": []}
for name in cfg["modules"]:
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            __import__(name)
        except BaseException as e:
            error = "%s: %s" % (type(e).__name__, e)
    state = getattr(sys, "_is_gil_enabled", None)
    out["modules"].append({"module": name, "error": error, "gil": state() if state else None,
                           "warnings": [str(w.message) for w in caught
                                        if "GIL" in str(w.message)]})
    if error:
        break
sys.stdout.write("\n" + cfg["marker"] + json.dumps(out) + "\n")
"""
_MARKER = "threadwise-import-check:"


def _import_report(modules: Sequence[str], timeout: float) -> Dict[str, Any]:
    """Import ``modules`` in order in a fresh interpreter; what the GIL did after each."""
    cfg = {"path": [p for p in sys.path if isinstance(p, str)], "modules": list(modules),
           "marker": _MARKER}
    try:
        p = subprocess.run([sys.executable, "-I", "-c", _CHILD], input=json.dumps(cfg) + "\n",
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("importing %s in a fresh %s did not finish within %.0f s" % (
            ", ".join(modules), sys.executable, timeout)) from None
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(_MARKER):
            report: Dict[str, Any] = json.loads(line[len(_MARKER):])
            return report
    raise AssertionError("the fresh interpreter (%s) that imports %s exited with %d and no "
                         "result:\n%s" % (sys.executable, ", ".join(modules), p.returncode,
                                          (p.stderr or p.stdout)[-2000:]))


_ENABLED_FOR = re.compile(r"load module '([^']+)'")


def _gil_verdict(report: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """(failure message or None, figures) for an :func:`_import_report`."""
    where = "a fresh %s -I" % sys.executable
    if report.get("start"):
        return ("the GIL was already on when %s started, before any of the modules was "
                "imported. Likely cause: a sitecustomize or a .pth file imports an extension "
                "that needs the GIL. Fix: check the interpreter's site-packages" % where,
                "GIL on at start-up")
    fine: List[str] = []
    for m in report.get("modules", ()):
        name = m["module"]
        if m.get("error"):
            before = ("; the GIL stayed off for the modules before it: %s" % ", ".join(
                repr(f) for f in fine)) if fine else ""
            return ("importing %r in %s failed: %s%s. Likely cause: the module is not "
                    "installed for this interpreter, or raises when imported" % (
                        name, where, m["error"], before), "%r failed to import" % name)
        if m.get("gil"):
            found = [x for w in m.get("warnings", ()) for x in _ENABLED_FOR.findall(w)]
            ext = (" to load the extension module %s, which has not declared that it can "
                   "run without the GIL" % ", ".join(repr(x) for x in found)) if found else ""
            return ("importing %r turned the GIL on%s (checked in %s; %s imported before it "
                    "and left it off). Fix: build the extension with Py_mod_gil = "
                    "Py_MOD_GIL_NOT_USED (or PyUnstable_Module_SetGIL), or use a release with "
                    "free-threaded (cp3XXt) wheels" % (
                        name, ext, where, ", ".join(repr(f) for f in fine) or "nothing"),
                    "%r turned the GIL on%s" % (name, " (extension %s)" % ", ".join(found)
                                                if found else ""))
        fine.append(name)
    return None, "the GIL stayed off after importing %s" % ", ".join(fine)


def assert_gil_stays_disabled(*modules: str, timeout: float = 120.0) -> None:
    """On a free-threaded build: importing ``modules`` (in order, in a fresh interpreter
    of this build) leaves the GIL disabled; fails naming the module that turned it on.

    On a build with a GIL it skips: there is no GIL to keep disabled."""
    if not modules or not all(isinstance(m, str) and m for m in modules):
        raise UsageError("assert_gil_stays_disabled needs module names, got %r" % (modules,),
                         fix="pass names to import: assert_gil_stays_disabled('numpy', 'mypkg')")
    subject = ", ".join(modules)
    from .probe._agent import free_threaded_build

    if not free_threaded_build():
        _skip("gil_stays_disabled", subject,
              "%s is not a free-threaded build: it always has a GIL, so there is none to keep "
              "disabled; run this test under a free-threaded Python (python3.13t or later)" % (
                  "Python %s" % sys.version.split()[0]))
    message, figures = _gil_verdict(_import_report(modules, timeout))
    if message is not None:
        _fail("gil_stays_disabled", subject, figures, message)
    _record("gil_stays_disabled", subject, "passed", figures)


# -- scaling -------------------------------------------------------------------------
def _fmt_s(s: float) -> str:
    from ._format import fmt_s
    return fmt_s(s)


def assert_scales(fn: Callable[[Any], Any], items: Iterable[Any], backend: str = "threads",
                  workers: int = 2, at_least: float = 1.5, repeats: int = 5) -> None:
    """Fail when ``fn`` over ``items`` on ``backend`` (``workers`` of them) is surely not
    ``at_least`` times as fast as a plain loop.

    Times the plain loop and the backend (a :class:`threadwise.Executor`, started and
    warmed up once, outside the timings) ``repeats`` times each, interleaved, then
    takes the ratio of the medians with a bootstrap 95% confidence interval
    (:func:`threadwise.bench.stats.speedup`).  Fails only when the interval's upper end
    is below ``at_least``; a median below it with an interval reaching it passes, and
    the figures say so.
    """
    if not callable(fn):
        raise UsageError("assert_scales needs a callable, got %r" % (fn,),
                         fix="pass the function and its items: assert_scales(fn, items)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError("workers must be an int >= 1, got %r" % (workers,))
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 3:
        raise UsageError("repeats must be an int >= 3, got %r" % (repeats,),
                         "an interval needs several timings on each side",
                         "pass repeats=5 (the default) or more")
    if isinstance(at_least, bool) or not isinstance(at_least, (int, float)) or not at_least > 0:
        raise UsageError("at_least must be a speedup > 0, got %r" % (at_least,))
    work = list(items)
    if not work:
        raise UsageError("assert_scales got no items", fix="pass the items fn runs on")
    from .bench.stats import MIN_RAW_S, speedup
    from .environment import cores
    from .executor import Executor

    subject = "%s over %d items on %s" % (_name(fn), len(work), backend) + (
        "" if backend == "serial" else " x%d" % workers)

    def loop() -> None:
        for x in work:
            fn(x)

    with Executor(backend, workers) as ex:
        def on_backend() -> None:
            for _ in ex.map_chunks(fn, work):
                pass

        loop()  # warm-up: caches, imports, the backend's workers
        on_backend()
        serial: List[float] = []
        parallel: List[float] = []
        for i in range(repeats):
            # alternate which goes first, so that a drift in the machine's speed
            # (frequency, other work) falls on both sides
            for run, into in ((loop, serial), (on_backend, parallel))[::1 if i % 2 == 0 else -1]:
                t0 = time.perf_counter()
                run()
                into.append(time.perf_counter() - t0)
    sp = speedup(serial, parallel)
    lo, hi = sp.ci95
    serial.sort()
    parallel.sort()
    c = cores()
    figures = ("%.2fx (95%% CI %.2f-%.2fx), wanted >= %gx; medians: serial %s, %s %s; "
               "%d repeats each; %d CPUs" % (
                   sp.value, lo, hi, at_least, _fmt_s(serial[len(serial) // 2]), backend,
                   _fmt_s(parallel[len(parallel) // 2]), repeats, c.usable))
    if hi < at_least:
        causes = []
        if min(workers, c.usable) < at_least:
            causes.append("%d worker(s) on %d usable CPU(s) (%s) can't give %gx to CPU-bound "
                          "work" % (workers, c.usable, c.derivation, at_least))
        if backend == "threads":
            causes.append("fn holds the GIL (check: threadwise.testing.assert_releases_gil)")
        per_item = serial[len(serial) // 2] / len(work)
        if per_item < 1e-4:
            causes.append("each item is too short for the backend's overhead (serial: %s per "
                          "item; give fn bigger items)" % _fmt_s(per_item))
        try:
            load = " (load average %.1f on %d CPUs)" % (os.getloadavg()[0], c.usable)
        except (AttributeError, OSError):
            load = ""
        causes.append("other work kept the CPUs busy%s" % load)
        _fail("scales", subject, figures,
              "%s ran %.2fx as fast as a plain loop (95%% CI %.2f-%.2fx, the median of %d "
              "interleaved repeats: serial %s, %s %s): even the interval's upper end is below "
              "the %gx asked for. Likely cause: %s" % (
                  subject, sp.value, lo, hi, repeats, _fmt_s(serial[len(serial) // 2]),
                  backend, _fmt_s(parallel[len(parallel) // 2]), at_least, "; or ".join(causes)))
    notes = []
    if sp.value < at_least:
        notes.append("inconclusive: the median is below %gx, the interval reaches it" % at_least)
    if serial[len(serial) // 2] < 10 * MIN_RAW_S:
        notes.append("a serial run takes only %s: timer and scheduling noise weigh; give more "
                     "items" % _fmt_s(serial[len(serial) // 2]))
    _record("scales", subject, "passed", "; ".join([figures] + notes))
