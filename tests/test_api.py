"""The public API is small and explicit: exactly these names, each importable."""
import subprocess
import sys

import threadwise

EXPECTED = {"advise", "Advice", "pmap", "Executor", "Choice", "Statistics", "ItemError",
            "WorkerCrashedError", "ItemTimeoutError", "gil_monitor", "GilStats", "holds_gil",
            "GilHoldResult", "ThreadwiseError", "__version__", "GilMonitor", "ThreadStats",
            "GilEnabledEvent", "Failure", "MapResults"}


def test_all_is_exactly_the_public_api():
    assert set(threadwise.__all__) == EXPECTED


def test_every_exported_name_resolves():
    for name in threadwise.__all__:
        assert getattr(threadwise, name) is not None
    assert callable(threadwise.pmap) and callable(threadwise.advise)
    assert issubclass(threadwise.ThreadwiseError, Exception)


def test_import_is_cheap():
    # importing threadwise must not pull in the executor, dask or matplotlib
    code = "import sys, threadwise; print(sorted(m for m in ('dask', 'matplotlib', 'threadwise.executor') if m in sys.modules))"
    out = subprocess.check_output([sys.executable, "-c", code], text=True)
    assert out.strip() == "[]"


def test_py_typed_is_shipped():
    import importlib.resources
    assert (importlib.resources.files("threadwise") / "py.typed").is_file()
