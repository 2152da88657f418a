"""The catalog: every workload returns a checksum that depends on the work, deterministically."""
import os
import subprocess

import pytest

from threadwise.bench.inside import workloads as W
from conftest import PY27

SMALL = {"cpu-python": 500, "cpu-objects": 20, "nbody": 20, "hashlib": 2, "hashlib-small": 5,
         "zlib": 1, "bz2": 1, "json": 1, "regex": 1, "sleep": 5, "file-io": 1, "duty-cycle": 2}


@pytest.fixture(autouse=True)
def _ctx(tmp_path):
    W.CONTEXT["tmpdir"] = str(tmp_path)
    yield
    W.CONTEXT.clear()


def test_catalog_has_the_required_kinds():
    kinds = {w.kind for w in W.CATALOG.values()}
    assert {"cpu-python", "native-release", "native-hold", "io", "duty"} <= kinds
    assert len(W.CATALOG) >= 10
    assert {"cpu-python", "hashlib", "sleep"} <= set(W.CATALOG)
    assert sum(1 for w in W.CATALOG.values() if w.kind == "cpu-python") >= 2


@pytest.mark.parametrize("name", sorted(SMALL))
def test_checksum_is_deterministic_and_depends_on_work(name):
    fn = W.CATALOG[name].fn
    a = fn(SMALL[name], 1)
    assert isinstance(a, int) and a is not None
    assert fn(SMALL[name], 1) == a                      # deterministic
    assert fn(SMALL[name] + 1, 1) != a                  # more work, another checksum
    assert fn(SMALL[name], 2) != a                      # private state per task


@pytest.mark.parametrize("size,index", [(0, 0), (1, 5), (1000, 3), (12345, 7)])
def test_cpu_python_closed_form(size, index):
    assert W.cpu_python(size, index) == W.cpu_python_expected(size, index)


@pytest.mark.parametrize("size,index", [(1, 0), (50, 9)])
def test_cpu_objects_closed_form(size, index):
    assert W.cpu_objects(size, index) == W.cpu_objects_expected(size, index)


def test_hashlib_matches_an_independent_chain():
    import hashlib
    buf = W._buffer(65536, 3)
    d = b""
    for _ in range(3):
        d = hashlib.sha256(buf + d).digest()
    assert W.sha256_chain(3, 3) == int(hashlib.md5(d).hexdigest()[:8], 16)


def test_socket_workload_round_trips(echo):
    W.CONTEXT["echo"] = list(echo.address)
    assert W.socket_roundtrip(5, 1) == (5 * 1024 + 1)


def test_duty_cycle_rejects_bad_duty():
    with pytest.raises(ValueError, match="duty"):
        W.duty_cycle(1, 0, duty=1.5)


def test_duty_cycle_spends_its_share_spinning():
    import time
    t0, c0 = time.perf_counter(), time.process_time()
    W.duty_cycle(10, 0, duty=0.5, period_ms=20)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert 0.19 < wall < 1.0
    assert 0.25 < cpu / wall < 0.8   # about half the time spinning


def test_unknown_workload_names_the_known_ones():
    with pytest.raises(KeyError, match="cpu-python"):
        W.get("nope")


@pytest.mark.skipif(not PY27.exists(), reason="no Python 2.7 in pyenv")
def test_target_code_is_valid_python27():
    here = os.path.join(os.path.dirname(W.__file__))
    files = [os.path.join(here, f) for f in ("workloads.py", "agent.py", "gilcheck.py", "__init__.py")]
    out = subprocess.run([str(PY27), "-m", "py_compile"] + files, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
