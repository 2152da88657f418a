"""Hostile and careless results files: every reader (--resume, report, export) ends with
exit status 0 or 2 and a message, never a traceback; what export writes, pyperf reads.

Property-based (Hypothesis) on the model, which every reader goes through, plus a fixed
corpus run through the real command line."""
import json
import math
import subprocess
import sys

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from threadwise.bench import results, stats  # noqa: E402
from threadwise.bench.model import ResultsDocument  # noqa: E402
from threadwise.errors import ThreadwiseError  # noqa: E402
from threadwise.report import export  # noqa: E402
from conftest import cli  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

# any JSON, with the strings and numbers a hostile file holds
text = st.text(alphabet=st.characters(), max_size=20)   # includes surrogates, NUL, ESC, bidi
numbers = st.one_of(st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), numbers, text),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(text, inner, max_size=4)),
                           max_leaves=20)


def _valid_cell(i, **kw):
    s = stats.summarize([0.1, 0.11, 0.12]).to_json()
    c = {"key": "k%d" % i, "interpreter": "py", "workload": "cpu-python", "backend": "threads",
         "workers": 2, "status": "ok", "tasks": 2, "size": 10, "wall_s": s, "cpu_s": s,
         "speedup": 1.5, "speedup_ci95": [1.4, 1.6], "parallelism": 1.5}
    c.update(kw)
    return c


def _doc(cells):
    d = results.new_document({"usable_cores": 2}, {}).to_json()
    d["cells"] = cells
    return d


def _read(raw):
    """The reader's contract: a model, or a ThreadwiseError with three parts."""
    try:
        return ResultsDocument.from_json(raw)
    except ThreadwiseError as e:
        assert e.what and e.fix
        return None


@SETTINGS
@given(json_values)
def test_any_json_document_is_read_or_refused(value):
    _read(value)
    _read({"schema": results.SCHEMA, "cells": [value] if not isinstance(value, list) else value})


@SETTINGS
@given(st.dictionaries(st.sampled_from(["key", "interpreter", "workload", "backend", "workers",
                                        "status", "tasks", "size", "speedup", "speedup_ci95",
                                        "warnings", "tag", "start_method", "params", "wall_s",
                                        "others_share", "error"]), json_values, max_size=8))
def test_any_cell_fields_are_read_or_refused(fields):
    doc = _read(_doc([_valid_cell(0, **fields)]))
    if doc is not None:       # what the model accepts, the views can show
        json.dumps(doc.to_json())
        suite, _ = export.to_pyperf(doc)
        for b in suite["benchmarks"]:
            assert b["metadata"]["name"].isprintable()
            assert all(math.isfinite(v) for r in b["runs"] for v in r.get("values", []))


@SETTINGS
@given(st.lists(text, min_size=1, max_size=3), st.lists(st.floats(min_value=1e-12, max_value=1e12),
                                                          min_size=1, max_size=5))
def test_hostile_labels_and_values_export_to_what_pyperf_reads(labels, samples):
    pyperf = pytest.importorskip("pyperf")
    s = stats.summarize(samples).to_json()
    cells = [_valid_cell(i, interpreter=label, workload=label, tag=label, wall_s=s, cpu_s=s)
             for i, label in enumerate(labels)]
    doc = _read(_doc(cells))
    if doc is None:          # e.g. a lone surrogate in a label: refused, with a message
        return
    suite, _ = export.to_pyperf(doc)
    for b in suite["benchmarks"]:
        run = b["runs"][0]
        pyperf.Run(run["values"], metadata=dict(b["metadata"], **run.get("metadata", {})), collect_metadata=False)


CORPUS = {
    "empty.json": b"",
    "binary.json": bytes(range(256)) * 4,
    "latin1.json": '{"schema": "threadwise.results/2", "cells": [], "x": "caf\xe9"}'.encode("latin-1"),
    "surrogate.json": b'{"schema": "threadwise.results/2", "cells": [], "environment": {"os": "\\ud800"}}',
    "deep.json": b"[" * 100000 + b"]" * 100000,
    "huge-int.json": b'{"schema": "threadwise.results/2", "cells": [{"key": "a", "interpreter": "p", '
                     b'"workload": "w", "backend": "serial", "workers": 1' + b"0" * 400 + b', "status": "error"}]}',
    "nan.json": json.dumps(_doc([_valid_cell(0, speedup=float("nan"))])).encode(),
    "inf-sample.json": json.dumps(_doc([_valid_cell(0, wall_s=dict(_valid_cell(0)["wall_s"],
                                                                    samples=[float("inf")]))])).encode(),
    "wrong-types.json": json.dumps(dict(_doc([]), interpreters="x", cells=[])).encode(),
    "ansi-labels.json": json.dumps(_doc([_valid_cell(0, interpreter="py\x1b[31mred\x00", tag="\x07")])).encode(),
    "schema-0.json": b'{"schema": "threadwise.results/0", "cells": []}',
    "array.json": b"[]",
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_through_every_reader(tmp_path, name):
    f = tmp_path / name
    f.write_bytes(CORPUS[name])
    for args in (["report", str(f), "-o", str(tmp_path / "r.html")],
                 ["export", str(f), "-o", str(tmp_path / "p.json")],
                 ["bench", "--resume", str(f)]):
        p = cli(*args, timeout=120)
        assert p.returncode in (0, 2), (args, p.returncode, p.stderr[-2000:])
        assert "Traceback" not in p.stderr, (args, p.stderr[-2000:])
        if p.returncode == 2:
            assert "Fix:" in p.stderr
    assert not list(tmp_path.glob(".*.tmp"))      # no half-written output left behind
