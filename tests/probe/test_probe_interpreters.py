"""The probe on other interpreters found on this machine (skipped where absent)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import SPIN2

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the probe reads /proc")

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
PY313T = "/opt/threadwise/py313t/bin/python3.13t"
PYENV = os.path.join(os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")), "versions")

def _probe_json(interp, script, tmp_path, env_extra=None):
    path = tmp_path / "prog.py"
    path.write_text(script)
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-m", "threadwise.probe.cli", "--json", "--", interp, str(path)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stderr[r.stderr.index("{"):])


def _need(path):
    found = shutil.which(path) if not os.path.isabs(path) else (path if os.path.exists(path) else None)
    if not found:
        pytest.skip("%s is not installed (scripts/install-interpreters)" % path)
    return found


def test_pypy_gil_is_read_from_outside(tmp_path):
    d = _probe_json(_need("pypy3"), SPIN2, tmp_path)
    assert d["interpreter"].startswith("PyPy")
    assert d["gil"] is True
    assert d["gil_held"] > 0.8
    assert d["samples"] > 100
    assert d["method"] in ("gil-state", "knocker")


def test_free_threaded_build_says_no_gil_and_measures_parallelism(tmp_path):
    d = _probe_json(_need(PY313T), SPIN2, tmp_path)
    assert d["gil"] is False
    assert d["gil_held"] is None and d["gil_wait"] is None
    assert "free-threaded" in d["interpreter"]
    # two spinning threads run in parallel: about 1.9 on two quiet cores; a busy
    # machine gives them less, so only check that CPU and wall were measured
    assert d["parallelism"] > 0.2
    assert all(t["gil_held"] is None for t in d["threads"])
    assert len([t for t in d["threads"] if (t["name"] or "").startswith("spinner")]) == 2


def test_free_threaded_build_with_the_gil_forced_on(tmp_path):
    d = _probe_json(_need(PY313T), SPIN2, tmp_path, {"PYTHON_GIL": "1"})
    assert d["gil"] is True
    assert d["gil_held"] > 0.8


def test_free_threaded_build_names_the_module_that_enabled_the_gil(tmp_path):
    # the warning CPython issues when an extension without Py_mod_gil is imported
    script = SPIN2 + textwrap.dedent("""
        import warnings
        warnings.warn("The global interpreter lock (GIL) has been enabled to load module "
                      "'fake_ext', which has not declared that it can run safely without the GIL.",
                      RuntimeWarning)
    """)
    d = _probe_json(_need(PY313T), script, tmp_path)
    assert [e["module"] for e in d["gil_enabled_by"]] == ["fake_ext"]
    assert d["gil_enabled_by"][0]["at_s"] > 0.3


@pytest.mark.parametrize("version", ["3.9.18", "3.13.0"])
def test_other_cpython_versions(tmp_path, version):
    d = _probe_json(_need(os.path.join(PYENV, version, "bin", "python3")), SPIN2, tmp_path)
    assert d["method"] == "gil-state"
    assert d["gil_held"] > 0.8
    assert 0.0 < d["gil_wait"] <= 1.0
