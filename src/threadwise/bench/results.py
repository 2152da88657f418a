"""The results file: schema ``threadwise.results/1``, load, validate, save, merge.

One JSON document, rewritten atomically (temp file + rename) after every
finished cell, so a run stopped by Ctrl-C or a crash keeps every cell it
finished and ``--resume`` skips them::

    {"schema": "threadwise.results/1",
     "threadwise": "0.1.0", "created": ..., "updated": ...,
     "environment": {host facts: cpu_model, usable_cores, cores{derivation}, load_avg, ...},
     "interpreters": {label: {implementation, version, free_threaded, gil_enabled,
                              switch_interval_s, start_methods, subinterpreters, ...}},
     "config": {the options of the run},
     "cells": [cell, ...],
     "experiments": {"convoy": [...], "gilcheck": [...], ...},   (claims only)
     "claims": [{"id", "claim", "verdict", "summary", "evidence"}, ...]  (claims only)}

A cell (see docs/results-schema.md for every field)::

    {"key", "interpreter", "command", "workload", "params", "backend", "workers",
     "start_method", "scaling", "tasks", "size", "status": "ok"|"error"|"unsupported",
     "wall_s": {"median", "ci95": [lo, hi], "mean", "stdev", "min", "max", "samples", ...},
     "cpu_s": {...}, "speedup", "speedup_ci95", "parallelism", "startup_s",
     "warnings": [...], "checksums_ok", ...}
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .. import __version__
from .. import _io
from ..errors import ResultsFileError

SCHEMA = "threadwise.results/1"
CELL_REQUIRED = ("key", "interpreter", "workload", "backend", "workers", "status")


def cell_key(interpreter: str, workload: str, backend: str, workers: int,
             start_method: Optional[str] = None, scaling: str = "strong",
             params: Optional[Dict[str, Any]] = None) -> str:
    """The identity of a cell: what --resume compares."""
    p = ",".join("%s=%s" % kv for kv in sorted((params or {}).items()))
    return "|".join([interpreter, workload + ("[%s]" % p if p else ""), backend, str(workers),
                     start_method or "-", scaling])


def new_document(environment: Dict[str, Any], config: Dict[str, Any]) -> Dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {"schema": SCHEMA, "threadwise": __version__, "created": now, "updated": now,
            "environment": environment, "interpreters": {}, "config": config,
            "cells": [], "experiments": {}, "claims": []}


def load(path: "str | os.PathLike[str]") -> Dict[str, Any]:
    """Read and validate a results file; ResultsFileError says what is wrong with it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError("results file %s does not exist" % p,
                               "the path is mistyped, or the run that should write it never started",
                               "check the path (ls %s)" % (p.parent or "."))
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsFileError("results file %s can't be read: %s" % (p, e),
                               "it is not a text file, or permissions forbid reading it",
                               "pass a JSON file written by threadwise bench/claims --output")
    if not text.strip():
        raise ResultsFileError("results file %s is empty" % p,
                               "the run that wrote it was killed before its first cell finished, "
                               "or it is not a threadwise file",
                               "delete it and run threadwise bench --output %s again" % p)
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ResultsFileError("results file %s is not valid JSON (%s)" % (p, e),
                               "it was truncated (disk full, an editor) or is not a threadwise file",
                               "restore it from a copy, or delete it and measure again")
    return validate(doc, str(p))


def validate(doc: Any, name: str = "results") -> Dict[str, Any]:
    if not isinstance(doc, dict) or "schema" not in doc:
        raise ResultsFileError("%s is not a threadwise results file (no \"schema\" field)" % name,
                               "it is some other JSON document",
                               "pass a file written by threadwise bench/claims --output")
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise ResultsFileError(
            "%s has schema %r; this threadwise (%s) reads %r" % (name, schema, __version__, SCHEMA),
            "it was written by another version of threadwise, or by another tool",
            "measure again with this version, or use the threadwise version that wrote it")
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise ResultsFileError("%s has no \"cells\" list" % name, "it was edited or truncated",
                               "measure again")
    for i, c in enumerate(cells):
        missing = [k for k in CELL_REQUIRED if not isinstance(c, dict) or k not in c]
        if missing:
            raise ResultsFileError("%s: cell %d lacks %s" % (name, i, ", ".join(missing)),
                                   "the file was edited by hand or written by a broken run",
                                   "remove that cell or measure again")
    doc.setdefault("interpreters", {})
    doc.setdefault("experiments", {})
    doc.setdefault("claims", [])
    doc.setdefault("environment", {})
    return doc


def check_writable(path: "str | os.PathLike[str]", what: str = "the results file",
                   example: str = "--output ./results.json") -> Path:
    """Fail before measuring (or rendering) anything if ``path`` can't be written."""
    return _io.check_writable(path, what, example)


def save(doc: Dict[str, Any], path: "str | os.PathLike[str]") -> None:
    """Write atomically: a crash mid-write leaves the previous complete file."""
    p = Path(path)
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _io.write_atomic(p, json.dumps(doc, indent=1) + "\n", "the results file", "--output ./results.json")


def finished_keys(doc: Dict[str, Any]) -> set:
    """Keys of the cells a resumed run must not measure again."""
    return {c["key"] for c in doc.get("cells", []) if c.get("status") in ("ok", "unsupported")}


def add_cell(doc: Dict[str, Any], cell: Dict[str, Any]) -> None:
    """Add or replace (same key) a cell."""
    doc["cells"] = [c for c in doc["cells"] if c.get("key") != cell["key"]] + [cell]


def merge(docs: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """One document from several (the report's input); later cells win on equal keys."""
    docs = list(docs)
    if not docs:
        raise ValueError("merge() needs at least one document")
    out = json.loads(json.dumps(docs[0]))
    for d in docs[1:]:
        out["interpreters"].update(d.get("interpreters", {}))
        for c in d.get("cells", []):
            add_cell(out, c)
        for k, v in d.get("experiments", {}).items():
            out["experiments"].setdefault(k, []).extend(v if isinstance(v, list) else [v])
        if d.get("claims"):
            out["claims"] = d["claims"]
    return out


def ok_cells(doc: Dict[str, Any], **match: Any) -> List[Dict[str, Any]]:
    """Cells with status ok whose fields equal ``match``."""
    return [c for c in doc.get("cells", []) if c.get("status") == "ok"
            and all(c.get(k) == v for k, v in match.items())]
