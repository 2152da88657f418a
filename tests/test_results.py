"""results.py: the schema, atomic saves, and the errors a bad file gets."""
import json

import pytest

from threadwise.bench import results
from threadwise.errors import OutputError, ResultsFileError


def _doc():
    d = results.new_document({"usable_cores": 2}, {})
    results.add_cell(d, {"key": "a|w|serial|1|-|strong", "interpreter": "a", "workload": "w",
                         "backend": "serial", "workers": 1, "status": "ok"})
    return d


def test_roundtrip(tmp_path):
    p = tmp_path / "r.json"
    results.save(_doc(), p)
    d = results.load(p)
    assert d["schema"] == results.SCHEMA and len(d["cells"]) == 1
    assert results.finished_keys(d) == {"a|w|serial|1|-|strong"}
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_add_cell_replaces_same_key():
    d = _doc()
    results.add_cell(d, dict(d["cells"][0], status="error"))
    assert len(d["cells"]) == 1 and d["cells"][0]["status"] == "error"
    assert results.finished_keys(d) == set()   # an error cell is measured again on resume


@pytest.mark.parametrize("content,match", [
    ("", "is empty"),
    ('{"schema": "threadwise.results/1", "cells": [', "not valid JSON"),
    ('{"schema": "threadwise.results/0", "cells": []}', "has schema"),
    ('{"benchmarks": []}', "not a threadwise results file"),
    ('{"schema": "threadwise.results/1", "cells": [{"key": 1}]}', "lacks"),
])
def test_bad_files_get_three_part_messages(tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ResultsFileError, match=match) as e:
        results.load(p)
    assert str(p) in e.value.message() and "Fix:" in e.value.message()


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
    a, b = _doc(), _doc()
    results.add_cell(b, {"key": "b|w|serial|1|-|strong", "interpreter": "b", "workload": "w",
                         "backend": "serial", "workers": 1, "status": "ok"})
    m = results.merge([a, b])
    assert {c["interpreter"] for c in m["cells"]} == {"a", "b"}
    json.dumps(m)
