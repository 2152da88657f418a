"""The measurements behind the blog post's claims, into one results document.

    Experiments.run()  -- measures, into one ResultsDocument (saved as it goes):
        scaling   cpu-python: serial, threads x{2, cores}, processes x cores   every interpreter
        refcounts shared-objects / private-objects: serial, threads x cores  GIL-free CPython
        release   sleep, socket, file-io, hashlib, zlib:
                  serial, threads x{2, 4, cores}                             the reference
        procs     cpu-python processes x cores per start method; tiny tasks
                  sent one message per task                                  the reference
        gilcheck  per popular native call: does it hold the GIL             the reference
        convoy    echo round-trip latency beside 0/1/2 CPU-bound threads,
                  pinned to one core and not, a process-burner control, and
                  a switch-interval sweep                                    the reference
        races     unsynchronized counter += 1, list.append, dict update     every CPython
    verdicts.judge(doc) -- pure: the document in, Claims out (claims/verdicts.py)

The *reference* is the CPython with a GIL the post is about, chosen whatever the order of
``--python``: the host's own CPython when it is in the list, else the oldest GIL CPython
given; when the list has none (``--python pypy3 --python jython``), the host CPython is
measured for these claims as well.  Likewise C3 compares each free-threaded CPython
with a GIL CPython of the same minor version: one scripts/install-interpreters
installed joins the scaling experiment when the list has none (``_twins``).  Every agent run records how busy the machine was
(environment.CpuWatch); the verdicts say "inconclusive" rather than judge a busy run.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence

from ...environment import cores
from ...environment import CpuWatch
from ...errors import InterpreterError
from .. import results
from ..config import BenchConfig, WorkloadSpec
from ..echo import EchoServer
from ..interpreters import Interpreter, describe, run_agent
from ..model import ConvoyRun, Experiments as ExperimentRecords, GilCheck, RaceRun, ResultsDocument
from ..plan import plan
from ..runner import Runner
from .verdicts import CLAIM_IDS

#: convoy: independent runs of each configuration (2 with --quick)
CONVOY_RUNS = 3

#: C6's list: popular native calls, each at a size people call it with (stated in the
#: evidence); numpy joins where the reference interpreter has it.  hashlib on 1 KiB and
#: time.sleep are asides (below hashlib's 2048-byte threshold; a control), not counted.
GILCHECK_CALLS = [
    {"label": "hashlib.sha256, 64 KiB", "workload": "hashlib", "size": 1, "lib": "hashlib"},
    {"label": "zlib.compress, 256 KiB", "workload": "zlib", "size": 1, "lib": "zlib"},
    {"label": "bz2.compress, 64 KiB", "workload": "bz2", "size": 1, "lib": "bz2"},
    {"label": "lzma.compress, 64 KiB", "workload": "lzma", "size": 1, "lib": "lzma"},
    {"label": "sqlite3 query, 20,000 rows", "workload": "sqlite3", "size": 1, "lib": "sqlite3"},
    {"label": "numpy matmul, 160x160", "workload": "numpy", "size": 2, "lib": "numpy"},
    {"label": "json dumps+loads, 100 KB", "workload": "json", "size": 1, "lib": "json"},
    {"label": "re.findall, 128 KiB", "workload": "regex", "size": 1, "lib": "re"},
    {"label": "hashlib.sha256, 1 KiB", "workload": "hashlib-small", "size": 1, "lib": "hashlib"},
    {"label": "time.sleep, 1 ms", "workload": "sleep", "size": 10, "lib": "time"},
]
RELEASE_WORKLOADS = ("sleep", "socket", "file-io", "hashlib", "zlib")
#: repeats of the cells C3, C4 and C5 rest on (Experiments.tight_repeats), unless --repeats
TIGHT_REPEATS = 11
#: warm-up runs before Jython's (a JIT's) timed ones in those cells, unless --warmups
JIT_WARMUPS = 3


def choose_reference(interps: Sequence[Interpreter]) -> Interpreter:
    """The CPython with a GIL that C2, C6, C7, C8 are about, whatever the order given: the
    host's own CPython if listed, else the first listed that describes itself as a CPython
    with a GIL (sorted by command, so the order of --python doesn't matter), else the host."""
    host = Interpreter.current()
    if any(i.command == host.command for i in interps):
        return next(i for i in interps if i.command == host.command)
    for i in sorted(interps, key=lambda i: i.command):
        try:
            facts = describe(i, timeout=60)
        except InterpreterError:
            continue
        if facts.get("implementation") == "CPython" and facts.get("gil_enabled") is True \
                and not facts.get("free_threaded") and not facts.get("gil_reenabled_by"):
            return i
    return host


class Experiments:
    """Runs the measurements behind C1-C8 into ``self.doc`` (saved to ``output`` as it goes)."""

    def __init__(self, interpreters: Sequence[Interpreter], doc: ResultsDocument,
                 output: Optional[str] = None, quick: bool = False,
                 repeats: Optional[int] = None, warmups: Optional[int] = None,
                 timeout: float = 300.0, imports: Sequence[str] = ()) -> None:
        self.imports = list(imports)
        self.interps = list(interpreters)
        self.output, self.quick = output, quick
        self.repeats = repeats if repeats is not None else (3 if quick else 5)
        # C3, C4 and C5 rest on small effects (a 1.1-1.3x single-thread cost, a JIT that
        # warms up, one hiccup of 2 threads on 2 cores): with 5 repeats a median's 95%
        # interval is min..max, so one bad repeat made them straddle their thresholds
        # from run to run; 11 give [2nd, 10th]
        self.tight_repeats = repeats if repeats is not None else max(self.repeats, TIGHT_REPEATS)
        self.warmups = warmups if warmups is not None else 1
        self._warmups_given = warmups is not None
        self.timeout = timeout
        self.task_s = 0.03 if quick else 0.08
        self.cores = cores().usable
        self.on_step: Callable[[str], None] = lambda title: None
        self.on_done: Callable[[], None] = lambda: None
        self._ft: Optional[List[str]] = None
        self._twin: Optional[List[Interpreter]] = None
        self.reference = choose_reference(self.interps)
        self.doc = replace(doc, experiments=replace(doc.experiments, cores=self.cores,
                                                    reference=self.reference.label))

    # -- planning ------------------------------------------------------------
    def _cfg(self, interps: List[Interpreter], workloads: Sequence[str], backends: Sequence[str],
             workers: Sequence[int], repeats: Optional[int] = None,
             warmups: Optional[int] = None, **kw: Any) -> BenchConfig:
        return BenchConfig(interpreters=interps, workloads=[WorkloadSpec(w) for w in workloads],
                           backends=list(backends), workers=sorted(set(workers)),
                           repeats=repeats or self.repeats,
                           warmups=self.warmups if warmups is None else warmups,
                           task_s=self.task_s, timeout=self.timeout, imports=self.imports, **kw)

    def _configs(self, only: Optional[Sequence[str]]) -> List[BenchConfig]:
        want = set(only or CLAIM_IDS)
        n = max(2, self.cores)
        ref = [self.reference]
        everyone = self.interps + [i for i in ref if i not in self.interps]
        if "C3" in want:
            everyone += [i for i in self._twins() if i not in everyone]
        out = []
        if want & {"C1", "C3", "C4", "C5", "C7"}:
            # the GIL-free interpreters and C3's GIL twins with more repeats (tight_repeats)
            tight = [i for i in everyone if i.label in self._free_threaded() or
                     "jython" in i.command or i in self._twins()] if want & {"C3", "C4", "C5"} else []
            rest = [i for i in everyone if i not in tight]
            if rest:
                out.append(self._cfg(rest, ["cpu-python"], ["threads", "processes"], [2, n]))
            # (a JIT warms up over the first runs: Jython's threads read 1.45x [1.19-1.57],
            # 1.38x [1.17-1.68] and 1.82x [1.69-1.88] in three quiet runs with one warm-up)
            jit = [i for i in tight if "jython" in i.command]
            tight = [i for i in tight if i not in jit]
            if tight:
                out.append(self._cfg(tight, ["cpu-python"], ["threads", "processes"], [2, n],
                                     repeats=self.tight_repeats))
            if jit:
                out.append(self._cfg(jit, ["cpu-python"], ["threads", "processes"], [2, n],
                                     repeats=self.tight_repeats,
                                     warmups=self.warmups if self._warmups_given
                                     else max(self.warmups, JIT_WARMUPS)))
        if want & {"C2"}:
            out.append(self._cfg(ref, RELEASE_WORKLOADS, ["threads"], [2, 4, n]))
        if "C3" in want:
            free = [i for i in self.interps if i.label in self._free_threaded()]
            if free:
                out.append(self._cfg(free, ["shared-objects", "private-objects"], ["threads"], [n],
                                     repeats=self.tight_repeats))
        if "C7" in want:
            out.append(self._cfg(ref, ["cpu-python"], ["processes"], [n],
                                 start_methods=["fork", "forkserver", "spawn"]))
            out.append(self._cfg(ref, ["cpu-python"], ["processes"], [n], tasks=200 if self.quick else 400,
                                 per_task=True, tag="tiny", sizes={"cpu-python": 100}))
        return out

    def _free_threaded(self) -> List[str]:
        """Labels of the free-threaded builds among the interpreters (described once)."""
        if self._ft is None:
            self._ft = []
            for i in self.interps:
                try:
                    facts = describe(i, timeout=min(self.timeout, 120))
                except InterpreterError:
                    continue
                if facts.get("free_threaded") and facts.get("gil_enabled") is False:
                    self._ft.append(i.label)
        return self._ft

    def _twins(self) -> List[Interpreter]:
        """C3's yardstick: beside each free-threaded CPython X.Y, a CPython X.Y with a GIL
        (its single-thread cost is measured against the same minor version: against 3.11,
        3.13t read 1.11-1.19x with intervals that straddled the threshold from run to
        run; against 3.13, ~1.28x).  Taken from the interpreters scripts/install-interpreters
        installed ("py313" beside "py313t") when the list has none (described once)."""
        if self._twin is not None:
            return self._twin
        self._twin = []
        want = set()
        have = set()
        for i in self.interps:
            try:
                facts = describe(i, timeout=min(self.timeout, 120))
            except InterpreterError:
                continue
            minor = ".".join(str(facts.get("version") or "").split(".")[:2])
            if facts.get("implementation") != "CPython":
                continue
            if i.label in self._free_threaded():
                want.add(minor)
            elif facts.get("gil_enabled") is True and not facts.get("free_threaded"):
                have.add(minor)
        need = want - have
        if not need:
            return self._twin
        from ..cli import installed_interpreters
        commands = {i.command for i in self.interps}
        names = {"py" + m.replace(".", "") for m in need}   # the manifest's names: py313
        for cand in installed_interpreters():
            if cand.command in commands or cand.label not in names:
                continue
            try:
                facts = describe(cand, timeout=min(self.timeout, 120))
            except InterpreterError:
                continue
            minor = ".".join(str(facts.get("version") or "").split(".")[:2])
            if minor in need and facts.get("implementation") == "CPython" \
                    and facts.get("gil_enabled") is True and not facts.get("free_threaded"):
                self._twin.append(cand)
                need.discard(minor)
        return self._twin

    def _convoy_configs(self) -> List[Dict[str, Any]]:
        """Each configuration runs CONVOY_RUNS times in fresh agents: whether the I/O thread
        gets caught behind a CPU-bound thread is decided early in a run and then mostly
        sticks, so one run can show the convoy and the next not."""
        rt = 60 if self.quick else 150
        runs = CONVOY_RUNS   # also in --quick: runs differ (see verdicts.CONVOY_HOLD_RUNS)
        out: List[Dict[str, Any]] = []
        for run in range(runs):
            for pin in (True, False):
                for k in (0, 1, 2):
                    out.append({"pin": pin, "cpu_threads": k, "burner": "threads",
                                "round_trips": rt, "run": run})
            out.append({"pin": True, "cpu_threads": 1, "burner": "processes", "round_trips": rt,
                        "run": run})
            for si in (0.001, 0.02):
                out.append({"pin": True, "cpu_threads": 1, "burner": "threads", "round_trips": rt,
                            "switch_interval": si, "run": run})
        return out

    def total(self, only: Optional[Sequence[str]] = None) -> int:
        want = set(only or CLAIM_IDS)
        n = sum(len(plan(c)) for c in self._configs(only))
        if "C6" in want:
            n += 1
        if "C8" in want:
            n += len(self._convoy_configs())
        if "C9" in want:
            n += len(self._race_interpreters())
        return n

    def _race_interpreters(self) -> List[Interpreter]:
        """C9 runs on every CPython given, and the reference."""
        out = [i for i in self.interps if "jython" not in i.command and "pypy" not in i.command]
        return out + [self.reference] if self.reference not in out else out

    # -- running -------------------------------------------------------------
    def run(self, only: Optional[Sequence[str]] = None) -> ResultsDocument:
        want = set(only or CLAIM_IDS)
        for cfg in self._configs(only):
            runner = Runner(cfg, self.doc, self.output,
                            on_start=lambda s: self.on_step(s.title),
                            on_cell=lambda s, c: self.on_done())
            try:
                runner.run(plan(cfg), skip=self.doc.finished_keys())
            finally:
                self.doc = runner.doc
        ref = self.reference
        if "C6" in want:
            self.on_step("%s: which calls hold the GIL" % ref.label)
            self._gilcheck(ref)
            self.on_done()
        if "C8" in want:
            with EchoServer(delay_s=0.0) as echo:
                for cc in self._convoy_configs():
                    self.on_step("%s: convoy, %d CPU-bound %s, %s" % (
                        ref.label, cc["cpu_threads"], cc["burner"],
                        "one core" if cc["pin"] else "all cores"))
                    self._convoy(ref, cc, list(echo.address or ()), echo.pid)
                    self.on_done()
        if "C9" in want:
            for interp in self._race_interpreters():
                self.on_step("%s: unsynchronized shared updates" % interp.label)
                self._races(interp)
                self.on_done()
        return self.doc

    def _agent(self, interp: Interpreter, config: Dict[str, Any], rtype: str,
               extra_pids: "tuple[int, ...]" = ()) -> List[Dict[str, Any]]:
        """The agent's records of ``rtype``, each with how busy the machine was meanwhile."""
        watch = CpuWatch(extra_pids=extra_pids)
        try:
            run = run_agent(interp, config, timeout=self.timeout)
        except InterpreterError as e:
            return [{"error": e.message()}]
        share = round(watch.stop().others, 4)
        unsupported, error = run.first("unsupported"), run.first("error")
        if unsupported:
            return [{"unsupported": unsupported["reason"], "others_share": share}]
        if error:
            return [{"error": error["what"], "others_share": share}]
        return [dict({k: v for k, v in r.items() if k != "type"}, others_share=share)
                for r in run.of(rtype)]

    def _races(self, interp: Interpreter) -> None:
        recs = self._agent(interp, {"mode": "races", "runs": 2 if self.quick else 3,
                                    "per_thread": 300000 if self.quick else 1000000}, "race")
        races = [RaceRun.from_json(dict(r, interpreter=interp.label), "race record") for r in recs]
        kept = tuple(r for r in self.doc.experiments.races if r.interpreter != interp.label)
        self._record(races=kept + tuple(races))

    def _record(self, **change: Any) -> None:
        exp: ExperimentRecords = replace(self.doc.experiments, **change)
        self.doc = replace(self.doc, experiments=exp)
        if self.output:
            self.doc = results.save(self.doc, self.output)

    def _gilcheck(self, interp: Interpreter) -> None:
        recs = self._agent(interp, {"mode": "gilcheck", "calls": GILCHECK_CALLS,
                                    "duration": 0.2 if self.quick else 0.4}, "gilcheck")
        checks = []
        for r in recs:
            r["interpreter"] = interp.label
            r["lib"] = next((c["lib"] for c in GILCHECK_CALLS if c["label"] == r.get("label")), None)
            checks.append(GilCheck.from_json(r, "gilcheck record"))
        kept = tuple(g for g in self.doc.experiments.gilcheck if g.interpreter != interp.label)
        self._record(gilcheck=kept + tuple(checks))

    def _convoy(self, interp: Interpreter, cc: Dict[str, Any], echo: List[Any],
                echo_pid: Optional[int]) -> None:
        config = dict(cc, mode="convoy", context={"echo": echo}, max_s=3.0 if self.quick else 6.0)
        new = []
        for r in self._agent(interp, config, "convoy", (echo_pid,) if echo_pid else ()):
            r.update({"interpreter": interp.label, "run": cc["run"],
                      "config": {k: v for k, v in cc.items() if k not in ("run", "round_trips")}})
            if self.quick:
                r.pop("latencies_s", None)
            new.append(ConvoyRun.from_json(r, "convoy record"))
        self._record(convoy=self.doc.experiments.convoy + tuple(new))
