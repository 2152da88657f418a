"""runner.py: planning, checksum verification, speedup, resume — with real agents."""
import pytest

from threadwise import environment
from threadwise.bench import results
from threadwise.errors import UsageError
from threadwise.bench.interpreters import Interpreter
from threadwise.bench.config import BenchConfig, WorkloadSpec
from threadwise.bench.plan import plan
from threadwise.bench.runner import Runner, _verify


def _cfg(host, **kw):
    base = dict(interpreters=[host], workloads=[WorkloadSpec("cpu-python")],
                backends=["threads", "processes"], workers=[1, 2], repeats=3, warmups=0,
                task_s=0.01)
    base.update(kw)
    return BenchConfig(**base)


def test_plan_puts_serial_first_and_skips_asyncio_for_cpu(host_python):
    specs = plan(_cfg(host_python, workloads=[WorkloadSpec("cpu-python"), WorkloadSpec("sleep")],
                      backends=["serial", "threads", "asyncio"]))
    names = [(s.workload.name, s.backend, s.workers) for s in specs]
    assert names[0] == ("cpu-python", "serial", 1)
    assert ("cpu-python", "asyncio", 2) not in names and ("sleep", "asyncio", 2) in names
    assert len({s.key for s in specs}) == len(specs)
    assert all(s.tasks == 2 for s in specs)     # lcm(1, 2): same total work everywhere


@pytest.mark.parametrize("kw,match", [
    ({"backends": ["fibers"]}, "unknown backend"),
    ({"workers": [0]}, "workers must be >= 1, got 0"),
    ({"start_methods": ["vfork"]}, "unknown start method"),
    ({"repeats": 0}, "repeats"),
])
def test_config_errors(host_python, kw, match):
    with pytest.raises(UsageError, match=match):
        plan(_cfg(host_python, **kw))


def test_workload_spec_parse():
    w = WorkloadSpec.parse("duty-cycle:duty=0.25")
    assert w.params == {"duty": 0.25} and w.label == "duty-cycle[duty=0.25]"
    with pytest.raises(UsageError, match="unknown workload 'nope'"):
        WorkloadSpec.parse("nope")
    with pytest.raises(UsageError, match="bad parameter"):
        WorkloadSpec.parse("cpu-python:x=1")


def test_verify_catches_wrong_checksums():
    good = [{"checksums": [1, 2]}, {"checksums": [1, 2]}]
    assert _verify(good, [1, 2]) is None
    assert "None" in _verify([{"checksums": [None, 2]}], None)
    assert "between repeats" in _verify([{"checksums": [1, 2]}, {"checksums": [1, 3]}], None)
    assert "serial baseline" in _verify(good, [1, 5])
    assert "closed form" in _verify([{"checksums": [1, 2], "expected": [1, 3]}], None)


def test_run_writes_every_cell_and_speedups(host_python, tmp_path):
    cfg = _cfg(host_python)
    out = tmp_path / "r.json"
    doc = results.new_document(environment.host(), cfg.to_json())
    Runner(cfg, doc, str(out)).run(plan(cfg))
    d = results.load(out)
    assert len(d.cells) == 5
    for c in d.cells:
        assert c.status == "ok", c.error
        assert c.checksums_ok and c.wall_s.ci95[0] <= c.wall_s.median <= c.wall_s.ci95[1]
        assert c.speedup > 0 and c.parallelism > 0
    serial = [c for c in d.cells if c.backend == "serial"][0]
    assert serial.speedup == 1.0 and serial.size > 0
    assert all(c.size == serial.size for c in d.cells)   # calibrated once, reused
    assert d.interpreters["host"].implementation == "CPython"


def test_resume_skips_finished_cells(host_python, tmp_path):
    cfg = _cfg(host_python, backends=["threads"], workers=[2])
    out = tmp_path / "r.json"
    doc = results.new_document(environment.host(), cfg.to_json())
    specs = plan(cfg)
    Runner(cfg, doc, str(out)).run(specs[:1])          # only the serial cell
    doc = results.load(out)
    started = []
    Runner(cfg, doc, str(out), on_start=lambda s: started.append(s.key)).run(
        specs, skip=doc.finished_keys())
    assert started == [specs[1].key]
    assert len(results.load(out).cells) == 2


def test_broken_interpreter_is_reported_and_others_measured(host_python, tmp_path):
    missing = Interpreter.parse("no-such-python-3.99")
    cfg = _cfg(host_python, interpreters=[missing, host_python], backends=["threads"], workers=[2])
    doc = results.new_document(environment.host(), cfg.to_json())
    doc = Runner(cfg, doc, None).run(plan(cfg))
    bad = [c for c in doc.cells if c.interpreter == missing.label]
    good = [c for c in doc.cells if c.interpreter == "host"]
    assert bad and all(c.status == "error" and "could not be started" in c.error for c in bad)
    assert good and all(c.status == "ok" for c in good)
    assert doc.interpreters[missing.label].error


def test_weak_scaling(host_python):
    cfg = _cfg(host_python, backends=["threads"], workers=[2], scaling="weak", tasks_per_worker=1,
               workloads=[WorkloadSpec("sleep")])
    doc = results.new_document(environment.host(), cfg.to_json())
    doc = Runner(cfg, doc, None).run(plan(cfg))
    t = [c for c in doc.cells if c.backend == "threads"][0]
    assert t.tasks == 2 and t.status == "ok"
    assert 1.3 < t.speedup < 2.6     # twice the sleeping in about the same time
