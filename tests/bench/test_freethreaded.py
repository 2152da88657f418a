"""Free-threaded CPython (3.13t, 3.14t, 3.15t): GIL state, the PYTHON_GIL=1 control, and an
import that turns the GIL back on, with a real C extension built here for each build's ABI."""
import json
import os
import subprocess

import pytest

from threadwise.bench.interpreters import Interpreter, describe
from conftest import cli

# the free-threaded builds scripts/install-interpreters makes; each test runs on every one
# installed here and skips, with the command that builds it, on the others
FREE_THREADED = [
    ("py313t", "/opt/threadwise/py313t/bin/python3.13t"),
    ("py314t", "/opt/threadwise/py314t/bin/python3.14t"),
    ("py315t", "/opt/threadwise/py315t/bin/python3.15t"),
]


def _builds():
    return [pytest.param(path, id=name, marks=[] if os.path.exists(path) else [
        pytest.mark.skip(reason="no free-threaded %s: scripts/install-interpreters %s"
                         % (name, name))])
        for name, path in FREE_THREADED]


@pytest.fixture(params=_builds())
def ft_python(request):
    return request.param


LEGACY_C = r"""
#include <Python.h>
/* single-phase init and no Py_mod_gil slot: not declared free-threading-safe */
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "legacyext", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_legacyext(void) { return PyModule_Create(&def); }
"""


@pytest.fixture
def legacy_ext(ft_python, tmp_path):
    d = tmp_path / "ext"
    d.mkdir()
    info = json.loads(subprocess.check_output([ft_python, "-c", (
        "import sysconfig, json; print(json.dumps([sysconfig.get_paths()['include'], "
        "sysconfig.get_config_var('EXT_SUFFIX')]))")], text=True))
    (d / "legacyext.c").write_text(LEGACY_C)
    subprocess.check_call(["gcc", "-shared", "-fPIC", "-I", info[0], str(d / "legacyext.c"),
                           "-o", str(d / ("legacyext" + info[1]))])
    return str(d)


def test_free_threaded_build_and_control(ft_python):
    ft = describe(Interpreter.parse(ft_python))
    ctl = describe(Interpreter.parse("PYTHON_GIL=1 " + ft_python))
    assert ft["free_threaded"] and ft["gil_enabled"] is False
    assert ctl["free_threaded"] and ctl["gil_enabled"] is True
    assert ft["version"].startswith(os.path.basename(ft_python)[len("python"):-1] + ".")


def test_import_that_reenables_the_gil_is_named(ft_python, legacy_ext, tmp_path):
    out = tmp_path / "r.json"
    p = cli("bench", "-w", "cpu-python", "-b", "threads", "--workers", "2", "--repeats", "2",
            "--task-ms", "5", "--python", "PYTHONPATH=%s %s" % (legacy_ext, ft_python),
            "--import", "legacyext", "-o", str(out))
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    info = next(iter(d["interpreters"].values()))
    assert info["gil_enabled"] is True
    assert info["gil_reenabled_by"][0]["module"] == "legacyext"
    assert info["gil_reenabled_by"][0]["at_s"] >= 0
    for c in d["cells"]:
        assert c["gil_reenabled_by"] == ["legacyext"]
        assert any("turned the GIL back on" in w for w in c["warnings"])


def test_c3_measures_the_free_threaded_build_beside_its_gil_twin(ft_python):
    # C3's single-thread cost compares the free-threaded build with a GIL CPython of the
    # same minor version: the installed one joins when the list has none, whatever else
    # is listed, and none joins when the list has one already
    from threadwise import environment
    from threadwise.bench import results
    from threadwise.bench.claims.experiments import Experiments
    minor = os.path.basename(ft_python)[len("python"):-1]        # "3.13"
    twin = "/opt/threadwise/py%s/bin/python%s" % (minor.replace(".", ""), minor)
    if not os.path.exists(twin):
        pytest.skip("no GIL build of %s: scripts/install-interpreters" % minor)
    doc = results.new_document(environment.host(), {})
    got = Experiments([Interpreter.parse("python3"), Interpreter.parse(ft_python)], doc)._twins()
    assert [i.command for i in got] == [twin]
    assert Experiments([Interpreter.parse(ft_python), Interpreter.parse(twin)], doc)._twins() == []
    assert Experiments([Interpreter.parse("python3")], doc)._twins() == []
    # and the scaling experiment measures it
    cfgs = Experiments([Interpreter.parse(ft_python)], doc)._configs(["C3"])
    tight = [c for c in cfgs if twin in [i.command for i in c.interpreters]]
    assert tight and tight[0].repeats >= 11 and ft_python in [i.command for i in tight[0].interpreters]
