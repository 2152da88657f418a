"""bench/results.py and bench/model.py: the schema, atomic saves, and the errors a bad file gets."""
import json
import math

import pytest

from threadwise.bench import results, stats
from threadwise.bench.model import Cell, ResultsDocument, merge
from threadwise.errors import OutputError, ResultsFileError


def _cell(interp="a", status="ok", **kw):
    s = stats.summarize([0.1, 0.11, 0.12])
    f = dict(key="%s|w|serial|1|-|strong" % interp, interpreter=interp, workload="w",
             backend="serial", workers=1, status=status, tasks=2, size=10)
    if status == "ok":
        f.update(wall_s=s, cpu_s=s, speedup=1.0, speedup_ci95=(1.0, 1.0))
    f.update(kw)
    return Cell(**f)


def _doc(*cells):
    return results.new_document({"usable_cores": 2}, {}).with_cell(cells[0] if cells else _cell())


def test_roundtrip(tmp_path):
    p = tmp_path / "r.json"
    saved = results.save(_doc(), p)
    d = results.load(p)
    assert d.schema == results.SCHEMA and len(d.cells) == 1
    assert d == saved                         # every field survives the file
    assert d.finished_keys() == {"a|w|serial|1|-|strong"}
    assert d.cells[0].wall_s.median == pytest.approx(0.11)
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_unknown_fields_are_kept(tmp_path):
    raw = _doc().to_json()
    raw["future_field"] = {"x": 1}
    raw["cells"][0]["future_cell_field"] = [1, 2]
    d = ResultsDocument.from_json(raw)
    assert d.extra["future_field"] == {"x": 1}
    assert d.to_json()["cells"][0]["future_cell_field"] == [1, 2]


def test_with_cell_replaces_same_key():
    d = _doc()
    d2 = d.with_cell(_cell(status="error", error="boom"))
    assert len(d2.cells) == 1 and d2.cells[0].status == "error"
    assert d2.finished_keys() == set()   # an error cell is measured again on resume
    assert d.cells[0].status == "ok"     # the model is immutable: the old document is unchanged


@pytest.mark.parametrize("content,match", [
    ("", "is empty"),
    ('{"schema": "threadwise.results/1", "cells": [', "not valid JSON"),
    ('{"schema": "threadwise.results/0", "cells": []}', "has schema"),
    ('{"benchmarks": []}', "not a threadwise results file"),
    ('{"schema": "threadwise.results/1", "cells": [{"key": 1}]}', "lacks"),
    ('{"schema": "threadwise.results/1", "cells": "x"}', "no \"cells\" list"),
    ('{"schema": "threadwise.results/1", "cells": [], "interpreters": "x"}', "interpreters: expected an object"),
    ('[' * 100000 + ']' * 100000, "not valid JSON|not a threadwise"),
    ('{"schema": "threadwise.results/1", "cells": [], "x": "\\ud800"}', "not valid Unicode"),
    ('{"schema": "threadwise.results/1", "cells": [], "x": ' + '[' * 100 + ']' * 100 + '}', "nested more than"),
])
def test_bad_files_get_three_part_messages(tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ResultsFileError, match=match) as e:
        results.load(p)
    assert str(p) in e.value.message() and "Fix:" in e.value.message()


@pytest.mark.parametrize("field,value,match", [
    ("workers", 10 ** 400, "too large"),
    ("workers", "2", "expected an integer"),
    ("workers", 0, "workers and tasks must be >= 1"),
    ("status", "great", "status 'great'"),
    ("speedup", float("nan"), "not finite"),
    ("warnings", "x", "expected a list"),
])
def test_bad_cell_fields(field, value, match):
    raw = _doc().to_json()
    raw["cells"][0][field] = value
    with pytest.raises(ResultsFileError, match=match):
        ResultsDocument.from_json(json.loads(json.dumps(raw)) if isinstance(value, str) else raw)


def test_binary_and_latin1_files(tmp_path):
    p = tmp_path / "bin.json"
    p.write_bytes(b'{"schema": "\xff\xfe"}')
    with pytest.raises(ResultsFileError, match="not UTF-8"):
        results.load(p)


def test_missing_file(tmp_path):
    with pytest.raises(ResultsFileError, match="does not exist"):
        results.load(tmp_path / "nope.json")


def test_check_writable(tmp_path):
    results.check_writable(tmp_path / "ok.json")
    with pytest.raises(OutputError, match="does not exist"):
        results.check_writable(tmp_path / "no" / "dir" / "r.json")
    with pytest.raises(OutputError, match="directory"):
        results.check_writable(tmp_path)


def test_merge_keeps_cells_of_both():
    a, b = _doc(), _doc().with_cell(_cell("b"))
    m = merge([a, b])
    assert {c.interpreter for c in m.cells} == {"a", "b"}
    json.dumps(m.to_json())
    assert all(math.isfinite(c.wall_s.median) for c in m.cells)
