"""holds_gil(fn, *args): calls that keep the GIL and calls that release it, for real."""
import hashlib
import json
import sys
import time

import pytest

from threadwise.errors import UsageError
from threadwise.probe import GilHoldResult, holds_gil
from threadwise.probe.holds import check_call


def _python_loop(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_pure_python_and_json_hold_the_gil():
    r = holds_gil(_python_loop, 20000)
    assert isinstance(r, GilHoldResult)
    assert r.holds is True and bool(r)
    assert r.call_s > 0 and r.calls > 10
    doc = {str(i): list(range(30)) for i in range(1000)}
    r = holds_gil(json.dumps, doc, sort_keys=True)
    assert r.holds is True
    if r.held_share is not None:
        assert r.held_share > 0.8
    assert r.longest_stall_s is not None and r.longest_stall_s > 0


def test_sleep_and_big_hashes_release_it():
    r = holds_gil(time.sleep, 0.002)
    assert r.holds is False and not r
    assert r.call_s >= 0.002
    if r.held_share is not None:
        assert r.held_share < 0.3
    r = holds_gil(hashlib.sha256, b"x" * (1 << 20))
    if r.method.startswith("gil-state"):  # the ticker needs a free second core to tell
        assert r.holds is False


def test_errors_of_the_call_propagate_and_bad_input_is_refused():
    def boom():
        raise KeyError("from the call")
    with pytest.raises(KeyError):
        holds_gil(boom)
    with pytest.raises(UsageError):
        holds_gil(42)
    with pytest.raises(UsageError):
        check_call(len, ([],), duration=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sampler reads /proc")
def test_sampled_method_on_linux_cpython():
    if sys.implementation.name != "cpython":
        pytest.skip("the GIL-state sampler is CPython only")
    r = check_call(sorted, (list(range(50000, 0, -1)),), duration=0.15)
    assert r.method == "gil-state sampling"
    assert r.samples > 50
    assert r.holds is True
