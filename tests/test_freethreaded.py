"""Free-threaded CPython (3.13t): GIL state, the PYTHON_GIL=1 control, and an import that
turns the GIL back on, with a real C extension built here for the 3.13t ABI."""
import json
import os
import subprocess
import sys

import pytest

from threadwise.bench.interpreters import Interpreter, describe
from conftest import cli

PY313T = "/opt/threadwise/py313t/bin/python3.13t"
pytestmark = pytest.mark.skipif(not os.path.exists(PY313T),
                                reason="no free-threaded 3.13t: scripts/install-interpreters py313t")

LEGACY_C = r"""
#include <Python.h>
/* single-phase init and no Py_mod_gil slot: not declared free-threading-safe */
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "legacyext", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_legacyext(void) { return PyModule_Create(&def); }
"""


@pytest.fixture(scope="module")
def legacy_ext(tmp_path_factory):
    d = tmp_path_factory.mktemp("ext")
    info = json.loads(subprocess.check_output([PY313T, "-c", (
        "import sysconfig, json; print(json.dumps([sysconfig.get_paths()['include'], "
        "sysconfig.get_config_var('EXT_SUFFIX')]))")], text=True))
    (d / "legacyext.c").write_text(LEGACY_C)
    subprocess.check_call(["gcc", "-shared", "-fPIC", "-I", info[0], str(d / "legacyext.c"),
                           "-o", str(d / ("legacyext" + info[1]))])
    return str(d)


def test_free_threaded_build_and_control():
    ft = describe(Interpreter.parse(PY313T))
    ctl = describe(Interpreter.parse("PYTHON_GIL=1 " + PY313T))
    assert ft["free_threaded"] and ft["gil_enabled"] is False
    assert ctl["free_threaded"] and ctl["gil_enabled"] is True


def test_import_that_reenables_the_gil_is_named(legacy_ext, tmp_path):
    out = tmp_path / "r.json"
    p = cli("bench", "-w", "cpu-python", "-b", "threads", "--workers", "2", "--repeats", "2",
            "--task-ms", "5", "--python", "PYTHONPATH=%s %s" % (legacy_ext, PY313T),
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
