"""The ``threadwise`` pytest plugin: what :mod:`threadwise.testing` measured, in the summary.

Registered by the entry point ``pytest11: threadwise`` (active wherever threadwise is
installed; ``-p no:threadwise`` turns it off).  It costs nothing when no test uses
``threadwise.testing``: it imports nothing beyond pytest and the standard library,
and looks for that module in ``sys.modules`` instead of importing it.

::

    a test calls assert_releases_gil(...)  --> threadwise.testing._RECORDS (this process)
    pytest_configure                       --> a _Summary registered for this session
    pytest_runtest_makereport (tryfirst)   --> the new records onto item.user_properties
                                               as ("threadwise", {...}), so that the test
                                               report carries them (to a pytest-xdist
                                               controller too, and into JUnit XML)
    pytest_runtest_logreport               --> collected from each report, once
    pytest_terminal_summary                --> one section, one line per measurement
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Set, Tuple

import pytest

_KEY = "threadwise"


def pytest_configure(config: Any) -> None:
    # the state lives in an object per session (pytester runs sessions inside sessions)
    config.pluginmanager.register(_Summary(), "threadwise-summary")


def _records() -> Tuple[Any, ...]:
    testing = sys.modules.get("threadwise.testing")
    return () if testing is None else tuple(testing.measurements())


class _Summary:
    """The measurements of one session, in the order their reports arrived."""

    def __init__(self) -> None:
        self.taken = len(_records())  # records of threadwise.testing attached already
        self.serial = 0
        self.seen: Set[Tuple[str, int]] = set()
        self.rows: List[Dict[str, Any]] = []

    def take_new(self) -> List[Dict[str, Any]]:
        records = _records()
        new = records[self.taken:]
        self.taken = len(records)
        out = []
        for m in new:
            self.serial += 1
            d = m.to_dict()
            d["id"] = self.serial
            out.append(d)
        return out

    def add(self, worker: str, d: Dict[str, Any]) -> None:
        key = (worker, int(d.get("id", 0)))
        if key not in self.seen:
            self.seen.add(key)
            self.rows.append(d)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> None:
        # before the report is made from the item: what this phase measured goes with it
        for d in self.take_new():
            if not d["test"]:
                d["test"] = item.nodeid
            item.user_properties.append((_KEY, d))

    def pytest_runtest_logreport(self, report: Any) -> None:
        props = getattr(report, "user_properties", None)
        if not props:
            return
        # under pytest-xdist each worker numbers its records: tell the workers apart
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        worker = str(getattr(gateway, "id", ""))
        for name, value in props:
            if name == _KEY and isinstance(value, dict):
                self.add(worker, value)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for d in self.take_new():  # measured outside any test (at import, say)
            self.add("", d)
        if not self.rows:
            return
        tr = terminalreporter
        tr.write_sep("-", "threadwise: %d measurement%s (threadwise.testing)" % (
            len(self.rows), "" if len(self.rows) == 1 else "s"))
        for d in self.rows:
            outcome = str(d.get("outcome", "?"))
            word = {"passed": "ok", "failed": "FAILED", "skipped": "skipped"}.get(outcome, outcome)
            markup = {"passed": {"green": True}, "failed": {"red": True},
                      "skipped": {"yellow": True}}.get(outcome, {})
            tr.write("%-7s " % word, **markup)
            tr.write_line("%s %s: %s%s" % (d.get("check"), d.get("subject"), d.get("figures"),
                                           "  [%s]" % d["test"] if d.get("test") else ""))
