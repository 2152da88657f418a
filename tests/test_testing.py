"""``threadwise.testing`` and its pytest plugin, used the way a project's tests use them.

Properties, not speed: whether a call holds the GIL is read from the GIL's own
state (it holds on a busy machine too); ``assert_scales`` is checked to fail
where the asked-for speedup is far above, and to pass where it is far below,
anything a run on a busy 2-core machine gives.
"""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import unittest
from pathlib import Path

import pytest

import threadwise
from threadwise import testing
from threadwise.errors import UsageError
from threadwise.testing import (assert_gil_stays_disabled, assert_holds_gil,
                                assert_releases_gil, assert_scales)

pytest_plugins = ["pytester"]

SRC = str(Path(threadwise.__file__).resolve().parent.parent)
GIL = getattr(sys, "_is_gil_enabled", lambda: True)()
BIG = bytes(8 << 20)
DOC = {str(i): [i, str(i), {"k": i}] for i in range(50000)}
# the held share, from the GIL's state (sampler) or, where it can't run, the ticker
HELD = r"(its thread held it in \d+% of \d+ samples|a pure-Python ticker thread ran at \d+%)"


def spin(n):
    s = 0
    for i in range(n):
        s += i
    return s


def _last(check):
    m = testing.measurements()[-1]
    assert m.check == check
    return m


# -- the GIL, call by call ---------------------------------------------------------
@pytest.mark.skipif(not GIL, reason="no GIL here: every call releases it")
def test_sha256_of_8_mib_releases_the_gil(request):
    assert_releases_gil(hashlib.sha256, BIG)
    m = _last("releases_gil")
    assert m.outcome == "passed" and m.subject.endswith("(<8.0 MiB of bytes>)")
    assert m.test == request.node.nodeid
    assert "held the GIL in" in m.figures or "ticker" in m.figures


@pytest.mark.skipif(not GIL, reason="no GIL here")
def test_json_dumps_of_a_big_dict_holds_the_gil():
    assert_holds_gil(json.dumps, DOC)
    m = _last("holds_gil")
    assert m.outcome == "passed" and m.subject == "json.dumps(<dict of 50000 items>)"


@pytest.mark.skipif(not GIL, reason="no GIL here")
def test_a_wrong_expectation_fails_with_the_measured_share():
    with pytest.raises(AssertionError, match=r"^json\.dumps\(<dict of 50000 items>\) held the "
                                             r"GIL: " + HELD) as info:
        assert_releases_gil(json.dumps, DOC)
    assert "a call that releases the GIL holds it in <= 50%" in str(info.value) or \
        "a released GIL lets it run >= " in str(info.value)
    assert _last("releases_gil").outcome == "failed"
    with pytest.raises(AssertionError, match=r"^openssl_sha256\(<8\.0 MiB of bytes>\) released "
                                             r"the GIL: " + HELD):
        assert_holds_gil(hashlib.sha256, BIG)


def digest(*, data, rounds=1):
    for _ in range(rounds):
        hashlib.sha256(data).digest()


def test_keyword_arguments_reach_the_call_and_name_it():
    assert_releases_gil(digest, data=BIG, rounds=2)
    assert _last("releases_gil").subject == "digest(data=<8.0 MiB of bytes>, rounds=2)"


def test_the_calls_own_error_propagates():
    with pytest.raises(ZeroDivisionError):
        assert_releases_gil(lambda: 1 / 0)


# -- scaling -------------------------------------------------------------------------
def test_scales_fails_with_the_figures_when_the_interval_falls_short():
    # 2 threads can't give 20x; on a busy machine a GIL-bound function can even time
    # faster on threads (the scheduler gives more threads more CPU), so the ask is
    # far above anything noise produces, not 1.5x
    with pytest.raises(AssertionError) as info:
        assert_scales(spin, [20000] * 40, backend="threads", workers=2, at_least=20, repeats=5)
    text = str(info.value)
    assert text.startswith("spin over 40 items on threads x2 ran ")
    assert "(95% CI " in text and "the median of 5 interleaved repeats" in text
    assert "even the interval's upper end is below the 20x asked for" in text
    assert "2 worker(s) on" in text and "holds the GIL" in text
    m = _last("scales")
    assert m.outcome == "failed" and "wanted >= 20x" in m.figures


def test_scales_passes_when_the_interval_reaches_the_speedup_asked_for():
    assert_scales(spin, [20000] * 20, backend="serial", at_least=0.3, repeats=3)
    m = _last("scales")
    assert m.outcome == "passed" and m.subject == "spin over 20 items on serial"
    assert "95% CI" in m.figures and "3 repeats each" in m.figures


@pytest.mark.parametrize("kwargs, message", [
    (dict(repeats=1), "repeats must be an int >= 3"),
    (dict(workers=0), "workers must be an int >= 1"),
    (dict(at_least=0), "at_least must be a speedup > 0"),
    (dict(items=[]), "got no items"),
    (dict(backend="gpu"), "backend must be one of"),
])
def test_scales_checks_its_arguments(kwargs, message):
    args = dict(fn=spin, items=[10] * 4)
    args.update(kwargs)
    with pytest.raises(UsageError, match=message):
        assert_scales(**args)


# -- free-threaded builds: imports that turn the GIL on --------------------------------
FREE_THREADED = [p for p in ("/opt/threadwise/py313t/bin/python3.13t",
                             "/opt/threadwise/py314t/bin/python3.14t") if os.path.exists(p)]
LEGACY_C = r"""
#include <Python.h>
/* single-phase init and no Py_mod_gil slot: not declared free-threading-safe */
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "legacyext", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_legacyext(void) { return PyModule_Create(&def); }
"""


@pytest.mark.skipif(not GIL, reason="this interpreter is free-threaded")
def test_gil_stays_disabled_skips_on_a_build_with_a_gil():
    with pytest.raises(pytest.skip.Exception, match="not a free-threaded build"):
        assert_gil_stays_disabled("json")
    assert _last("gil_stays_disabled").outcome == "skipped"
    with pytest.raises(UsageError, match="needs module names"):
        assert_gil_stays_disabled()


@pytest.mark.skipif(not GIL, reason="this interpreter is free-threaded")
def test_outside_pytest_the_skip_is_unittests():
    code = ("import unittest, threadwise.testing as t\n"
            "try:\n    t.assert_gil_stays_disabled('json')\n"
            "except unittest.SkipTest as e:\n    print('SkipTest:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("SkipTest: Python %d.%d" % sys.version_info[:2]), out.stderr
    assert issubclass(pytest.skip.Exception, BaseException)
    assert unittest.SkipTest is not pytest.skip.Exception


@pytest.mark.skipif(not FREE_THREADED, reason="no free-threaded CPython here: "
                    "scripts/install-interpreters py313t")
@pytest.mark.parametrize("ft_python", FREE_THREADED)
def test_gil_stays_disabled_names_the_import_that_turned_it_on(ft_python, tmp_path):
    info = json.loads(subprocess.check_output([ft_python, "-c", (
        "import sysconfig, json; print(json.dumps([sysconfig.get_paths()['include'], "
        "sysconfig.get_config_var('EXT_SUFFIX')]))")], text=True))
    (tmp_path / "legacyext.c").write_text(LEGACY_C)
    subprocess.check_call(["gcc", "-shared", "-fPIC", "-I", info[0], str(tmp_path / "legacyext.c"),
                           "-o", str(tmp_path / ("legacyext" + info[1]))])
    (tmp_path / "mylib.py").write_text("import legacyext\n")
    code = textwrap.dedent("""\
        import threadwise.testing as t
        t.assert_gil_stays_disabled("json", "threading")
        print("stayed off")
        try:
            t.assert_gil_stays_disabled("json", "mylib")
        except AssertionError as e:
            print("FAILED:", e)
        """)
    # PYTHON_GIL=0 in the caller's environment must not hide the extension's effect
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, str(tmp_path)]), PYTHON_GIL="0")
    out = subprocess.run([ft_python, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "stayed off", out.stdout
    assert lines[1].startswith("FAILED: importing 'mylib' turned the GIL on to load the "
                               "extension module 'legacyext'"), out.stdout
    assert "'json' imported before it and left it off" in lines[1]


def test_the_verdict_on_an_import_report():
    # the fresh interpreter's report, as _import_report returns it on a free-threaded build
    ok = {"start": False, "modules": [{"module": "json", "error": None, "gil": False,
                                       "warnings": []}]}
    assert testing._gil_verdict(ok) == (None, "the GIL stayed off after importing json")
    bad = {"start": False, "modules": [
        {"module": "json", "error": None, "gil": False, "warnings": []},
        {"module": "mylib", "error": None, "gil": True, "warnings": [
            "The global interpreter lock (GIL) has been enabled to load module 'legacyext', "
            "which has not declared that it can run safely without the GIL."]}]}
    message, figures = testing._gil_verdict(bad)
    assert message.startswith("importing 'mylib' turned the GIL on to load the extension "
                              "module 'legacyext'")
    assert figures == "'mylib' turned the GIL on (extension legacyext)"
    missing = {"start": False, "modules": [{"module": "nope", "error": "ModuleNotFoundError: "
                                            "No module named 'nope'", "gil": False,
                                            "warnings": []}]}
    assert "ModuleNotFoundError" in testing._gil_verdict(missing)[0]
    assert "already on when" in testing._gil_verdict({"start": True, "modules": []})[0]


# -- the pytest plugin ----------------------------------------------------------------
USER_TESTS = """
import hashlib, json, sys
import pytest
from threadwise.testing import assert_releases_gil, assert_holds_gil, assert_gil_stays_disabled

def test_sha():
    assert_releases_gil(hashlib.sha256, bytes(8 << 20))

def test_json():
    assert_holds_gil(json.dumps, {str(i): [i] * 3 for i in range(50000)})

def test_wrong():
    with pytest.raises(AssertionError):
        assert_releases_gil(json.dumps, {str(i): [i] * 3 for i in range(50000)})

def test_disabled():
    assert_gil_stays_disabled("json")
"""

UNUSED_TESTS = """
import sys

def test_nothing_heavy_is_loaded():
    assert "threadwise.pytest_plugin" in sys.modules
    loaded = [m for m in ("threadwise.testing", "threadwise.probe.monitor",
                          "threadwise.executor", "IPython", "rich") if m in sys.modules]
    assert loaded == []
"""


def _runpytest(pytester, *args):
    # a subprocess: the plugin loads from its entry point, as in a user's project
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=240)


@pytest.mark.skipif(not GIL, reason="the user tests expect a GIL")
def test_plugin_prints_what_the_assertions_measured(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = _runpytest(pytester)
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines([
        "*- threadwise: 4 measurements (threadwise.testing) -*",
        "ok      releases_gil openssl_sha256(<8.0 MiB of bytes>): *held the GIL in *"
        "[[]test_user.py::test_sha[]]",
        "ok      holds_gil json.dumps(<dict of 50000 items>): *[[]test_user.py::test_json[]]",
        "FAILED  releases_gil json.dumps(<dict of 50000 items>): *[[]test_user.py::test_wrong[]]",
        "skipped gil_stays_disabled json: *not a free-threaded build*"
        "[[]test_user.py::test_disabled[]]",
    ])


def test_plugin_is_silent_and_light_when_unused(pytester):
    pytester.makepyfile(test_unused=UNUSED_TESTS)
    result = _runpytest(pytester)
    result.assert_outcomes(passed=1)
    assert "threadwise:" not in result.stdout.str()


@pytest.mark.skipif(not GIL, reason="the user tests expect a GIL")
def test_plugin_can_be_turned_off(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = _runpytest(pytester, "-p", "no:threadwise", "-k", "sha")
    result.assert_outcomes(passed=1, deselected=3)
    assert "threadwise:" not in result.stdout.str()
