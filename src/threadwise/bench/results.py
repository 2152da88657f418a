"""The results file: read, check and write a :class:`~threadwise.bench.model.ResultsDocument`.

One JSON document, rewritten atomically (temp file + rename, :mod:`threadwise._io`)
after every finished cell, so a run stopped by Ctrl-C or a crash keeps every cell
it finished and ``--resume`` skips them::

    path --load()--> bytes (<= MAX_BYTES) --json--> dict --ResultsDocument.from_json--> model
    model --save()--> to_json --> JSON text --> write_atomic(path)

The model (fields, schema history) is in :mod:`threadwise.bench.model`; every field is
described in docs/results-schema.md.  A file that is missing, empty, binary, not JSON,
too big, too deep, of another schema or with a wrong field raises
:class:`~threadwise.errors.ResultsFileError` (exit status 2 at the command line).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict

from .. import __version__, _io
from ..errors import ResultsFileError
from .model import SCHEMA, Environment, ResultsDocument, cell_key

#: a results file larger than this is not one threadwise wrote (a full claims run is ~1 MB)
MAX_BYTES = 256 * 1024 * 1024

__all__ = ["SCHEMA", "cell_key", "check_writable", "load", "loads", "new_document", "save"]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def new_document(environment: Dict[str, Any], config: Dict[str, Any]) -> ResultsDocument:
    """An empty document for a new run."""
    t = now()
    return ResultsDocument(schema=SCHEMA, threadwise=__version__, created=t, updated=t,
                           environment=Environment.from_json(environment), config=config)


def load(path: "str | os.PathLike[str]") -> ResultsDocument:
    """Read and check a results file; ResultsFileError says what is wrong with it."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ResultsFileError("results file %s does not exist" % p,
                               "the path is mistyped, or the run that should write it never started",
                               "check the path (ls %s)" % (p.parent or ".")) from None
    except OSError as e:
        raise ResultsFileError("results file %s can't be read: %s" % (p, e.strerror or e),
                               "it is a folder, or permissions forbid reading it",
                               "pass a JSON file written by threadwise bench/claims --output") from None
    if len(data) > MAX_BYTES:
        raise ResultsFileError("results file %s is larger than %d MiB" % (p, MAX_BYTES >> 20),
                               "it is not a file threadwise wrote (a full claims run is about 1 MB)",
                               "pass a JSON file written by threadwise bench/claims --output")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ResultsFileError("results file %s is not UTF-8 text (byte %d)" % (p, e.start),
                               "it is a binary file, or text in another encoding",
                               "pass a JSON file written by threadwise bench/claims --output") from None
    if not text.strip():
        raise ResultsFileError("results file %s is empty" % p,
                               "the run that wrote it was killed before its first cell finished, "
                               "or it is not a threadwise file",
                               "delete it and run threadwise bench --output %s again" % p)
    return loads(text, str(p))


def loads(text: str, name: str = "results") -> ResultsDocument:
    """A document from JSON text (``name`` is used in messages)."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ResultsFileError("results file %s is not valid JSON (%s)" % (name, why),
                               "it was truncated (disk full, an editor) or is not a threadwise file",
                               "restore it from a copy, or delete it and measure again") from None
    return ResultsDocument.from_json(raw, name)


def check_writable(path: "str | os.PathLike[str]", what: str = "the results file",
                   example: str = "--output ./results.json") -> Path:
    """Fail before measuring (or rendering) anything if ``path`` can't be written."""
    return _io.check_writable(path, what, example)


def save(doc: ResultsDocument, path: "str | os.PathLike[str]") -> ResultsDocument:
    """Write atomically (a crash mid-write leaves the previous complete file); returns the
    document with its ``updated`` time set."""
    from dataclasses import replace
    doc = replace(doc, updated=now())
    _io.write_atomic(path, json.dumps(doc.to_json(), indent=1) + "\n", "the results file",
                     "--output ./results.json")
    return doc
