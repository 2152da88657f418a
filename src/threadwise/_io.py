"""Files threadwise writes: checked before any work, replaced atomically, never half-written.

Every output (the results file after each cell, the HTML report, the pyperf export)
goes through :func:`write_atomic`::

    check_writable(path)          before measuring or rendering: a bad -o fails in a second
    text --> .NAME.XXXX.tmp       in the same folder (same file system, so rename is atomic)
         --> fsync-free rename    over NAME: a reader sees the old file or the new one
    any failure                   the temporary file is removed; NAME keeps its old content

The new file gets the old file's permission bits, or 0644 for a new one (mkstemp's
0600 would hide a report from the web server that serves it).
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Union

from .errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]


def check_writable(path: PathLike, what: str, example: str) -> Path:
    """Fail before any work if ``path`` can't be written; ``example`` is a flag that would work."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    why = None
    if p.is_dir():
        why = "it is a directory"
    elif not folder.is_dir():
        why = "its folder %s does not exist" % folder
    elif not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        why = "permission denied"
    if why:
        raise OutputError("can't write %s %s: %s" % (what, p, why),
                          "the output path is wrong or not writable by this user",
                          "choose another path, e.g. %s" % example)
    return p


def write_atomic(path: PathLike, text: str, what: str, example: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) in one rename; on failure leave no temporary file."""
    p = check_writable(path, what, example)
    folder = p.parent if str(p.parent) else Path(".")
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
    except OSError:
        mode = 0o644
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + p.name + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", errors="strict") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, p)
        tmp = None
    except (OSError, UnicodeError) as e:
        raise OutputError("can't write %s %s: %s" % (what, p, e),
                          "the disk is full, the path is not writable, or the text is not valid UTF-8",
                          "free space or choose another path, e.g. %s" % example) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return p
