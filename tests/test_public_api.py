"""What users see of ``threadwise``, at run time and to a type checker.

Like trio's test that static tools see every public name: the names load lazily
(``__getattr__``, so ``import threadwise`` stays cheap), and the imports under
``TYPE_CHECKING`` are what mypy reads instead.  The two must name the same
things, and mypy must see real types, not ``Any`` (which a lazy ``__getattr__``
gives it for every name it was not told about, misspelt ones included).
"""
import ast
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import threadwise

INIT = Path(threadwise.__file__)


def _module_tree():
    return ast.parse(INIT.read_text(encoding="utf-8"))


def _literal_all(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            assert isinstance(node.value, ast.List), "__all__ must be a literal list"
            return [ast.literal_eval(e) for e in node.value.elts]
    raise AssertionError("threadwise/__init__.py assigns no __all__")


def _type_checking_imports(tree):
    names = set()
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.ImportFrom):
                    names.update(a.asname or a.name for a in stmt.names)
    return names


# -- at run time ---------------------------------------------------------------------
def test_all_is_a_literal_list_matching_the_type_checking_imports():
    tree = _module_tree()
    listed = _literal_all(tree)
    assert listed == threadwise.__all__
    assert len(set(listed)) == len(listed), "a name is listed twice"
    public = set(listed) - {"__version__"}
    assert _type_checking_imports(tree) == public
    assert set(threadwise._EXPORTS) == public
    # the README's names
    assert {"pmap", "Executor", "advise", "Failure", "MapResults", "gil_monitor",
            "holds_gil", "ThreadwiseError"} <= public


def test_every_name_in_all_resolves():
    for name in threadwise.__all__:
        value = getattr(threadwise, name)
        assert value is not None, name
        assert name in dir(threadwise), name
        if name != "__version__":
            # the object is the one in its home module, not a copy
            assert getattr(importlib.import_module(threadwise._EXPORTS[name]), name) is value
    assert issubclass(threadwise.ThreadwiseError, Exception)
    assert issubclass(threadwise.MapResults, list)
    with pytest.raises(AttributeError, match="no attribute 'pmapp'"):
        threadwise.pmapp  # noqa: B018


def test_load_ipython_extension_is_an_ipython_hook_not_api():
    # %load_ext threadwise looks for this name on the package; it is not in __all__ (not
    # API, no TYPE_CHECKING import), and it imports IPython only when IPython calls it
    hook = threadwise.load_ipython_extension
    assert callable(hook) and hook.__module__ == "threadwise"
    assert "load_ipython_extension" not in threadwise.__all__
    assert "load_ipython_extension" not in threadwise._EXPORTS
    assert "load_ipython_extension" not in _type_checking_imports(_module_tree())


def test_import_threadwise_stays_cheap():
    heavy = ("threadwise.executor", "threadwise.probe.monitor", "threadwise.bench",
             "threadwise.report", "threadwise.ipython", "threadwise.testing", "rich", "psutil",
             "cloudpickle", "dask", "matplotlib", "jinja2", "IPython", "pytest")
    out = subprocess.run([sys.executable, "-c", "import sys, threadwise; print(sorted(sys.modules))"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = [m for m in ast.literal_eval(out.stdout.strip())
              if any(m == h or m.startswith(h + ".") for h in heavy)]
    assert loaded == [], "import threadwise loaded %s; keep them behind the lazy __getattr__" % loaded


# -- to a type checker ----------------------------------------------------------------
_GOOD = '''\
from typing import List, Union

import threadwise
from threadwise import Executor, Failure, MapResults, pmap


def inc(x: int) -> int:
    return x + 1


reveal_type(threadwise.pmap)
doubled = threadwise.pmap(lambda x: x + 1, [1, 2])
reveal_type(doubled)
as_list: List[int] = threadwise.pmap(lambda x: x + 1, [1, 2])
first: int = as_list[0]
mr: MapResults = pmap(inc, range(10), backend="threads", workers=2, errors="collect")
choice = mr.choice
outcomes: List[Union[int, Failure]] = list(mr)
with Executor("threads", 2) as ex:
    fut = ex.submit(inc, 1)
    n: int = fut.result()
    mapped = list(ex.map(inc, [1, 2]))
advice = threadwise.advise(inc, range(100), workers=2)
reveal_type(advice)
try:
    threadwise.pmap(inc, [1])
except threadwise.ItemError as e:
    reveal_type(e)
except threadwise.ThreadwiseError as e:
    print(e)
with threadwise.gil_monitor() as m:
    pass
reveal_type(threadwise.holds_gil(len, [1, 2]))
'''

_BAD = '''\
import threadwise

threadwise.pmap(1, 2)
threadwise.pmap(abs, [1], workers="x")
threadwise.Executor(workers="x")
threadwise.pmapp(abs, [1])
'''
# lines of _BAD where mypy must report an error
_BAD_LINES = {3, 4, 5, 6}


def test_mypy_sees_the_public_api_typed(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed here (it is in the test extra: "
                    "pip install -e '.[test]')")
    good = _GOOD + "".join("reveal_type(threadwise.%s)\n" % name for name in threadwise.__all__)
    (tmp_path / "good.py").write_text(good, encoding="utf-8")
    (tmp_path / "bad.py").write_text(_BAD, encoding="utf-8")
    # a config of our own, so that no user or project mypy config changes the result
    (tmp_path / "mypy.ini").write_text("[mypy]\nwarn_unused_ignores = True\n", encoding="utf-8")
    runs = {}
    for name in ("good.py", "bad.py"):
        runs[name] = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--no-error-summary",
             "--show-error-codes", "--cache-dir", str(tmp_path / ".mypy_cache"), name],
            cwd=tmp_path, capture_output=True, text=True, timeout=240)

    good_run = runs["good.py"]
    report = "mypy on good.py (rc %d):\n%s%s" % (good_run.returncode, good_run.stdout,
                                                 good_run.stderr)
    assert good_run.returncode == 0, report
    assert ": error:" not in good_run.stdout, report
    revealed = {}
    for line in good_run.stdout.splitlines():
        m = re.match(r'good\.py:(\d+): note: Revealed type is "(.*)"$', line)
        if m:
            revealed[int(m.group(1))] = m.group(2)
    lines = good.splitlines()
    wanted = [i + 1 for i, text in enumerate(lines) if text.lstrip().startswith("reveal_type(")]
    assert sorted(revealed) == wanted, report
    untyped = ["%s -> Any" % lines[n - 1].strip() for n, t in revealed.items() if t == "Any"]
    assert untyped == [], "mypy sees these as Any:\n" + "\n".join(untyped)
    # spot checks that the types are the real ones
    by_expr = {lines[n - 1].strip(): t for n, t in revealed.items()}
    assert by_expr["reveal_type(doubled)"] == "threadwise.executor._executor.MapResults"
    assert by_expr["reveal_type(threadwise.pmap)"].startswith("def (fn:")
    assert by_expr["reveal_type(threadwise.__version__)"] in ("str", "builtins.str")
    assert "Advice" in by_expr["reveal_type(advice)"]

    bad_run = runs["bad.py"]
    report = "mypy on bad.py (rc %d):\n%s%s" % (bad_run.returncode, bad_run.stdout,
                                                bad_run.stderr)
    assert bad_run.returncode == 1, report
    flagged = {int(m.group(1)) for m in re.finditer(r"^bad\.py:(\d+): error:", bad_run.stdout,
                                                      re.M)}
    assert flagged == _BAD_LINES, report
    assert 'Module has no attribute "pmapp"' in bad_run.stdout, report
