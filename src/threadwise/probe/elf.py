"""Just enough ELF to find a symbol: the hook-free finder's way to ``_PyRuntime``.

Reads an ELF file (the python executable or ``libpython3.X.so``) with ``struct``
alone: the header, the program headers (to turn a symbol's link-time address
into a run-time one) and the symbol tables, ``.dynsym`` first (kept by
stripped builds: ``_PyRuntime`` and ``Py_Version`` are exported) and then
``.symtab`` (present in unstripped builds).  Only what a symbol lookup needs
is read, with ``pread``: a 30 MB interpreter with debug information costs a
few hundred kilobytes of reads.

::

    ElfFile(path).symbol("_PyRuntime") -> (link-time address, size)
    load_bias(elf, mappings)           -> run-time address - link-time address

Nothing here is specific to Python; :mod:`threadwise.probe.target` uses it.
"""
from __future__ import annotations

import os
import struct
from typing import Dict, List, NamedTuple, Optional, Tuple

__all__ = ["ElfError", "ElfFile", "Segment", "load_bias"]

_SHT_SYMTAB = 2
_SHT_DYNSYM = 11
_PT_LOAD = 1
_ET_EXEC = 2


class ElfError(Exception):
    """Not an ELF file, or one we can't read (the message says which)."""


class Segment(NamedTuple):
    """A ``PT_LOAD`` program header."""

    offset: int
    vaddr: int
    filesz: int
    memsz: int


class _Section(NamedTuple):
    type: int
    offset: int
    size: int
    link: int
    entsize: int


class ElfFile:
    """An ELF file opened for symbol look-ups (call :meth:`close`, or use ``with``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise ElfError("can't open %s: %s" % (path, exc.strerror or exc)) from None
        try:
            self._read_headers()
        except (ElfError, struct.error, OSError) as exc:
            self.close()
            raise ElfError("%s is not a readable ELF file (%s)" % (path, exc)) from None
        self._symbols: Dict[str, Optional[Tuple[int, int]]] = {}

    def __enter__(self) -> "ElfFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _pread(self, size: int, offset: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        if len(data) != size:
            raise ElfError("truncated at offset %d" % offset)
        return data

    def _read_headers(self) -> None:
        ident = self._pread(16, 0)
        if ident[:4] != b"\x7fELF":
            raise ElfError("no ELF magic")
        if ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ElfError("unknown ELF class or byte order")
        self.bits = 64 if ident[4] == 2 else 32
        self.endian = "<" if ident[5] == 1 else ">"
        e = self.endian
        if self.bits == 64:
            hdr = struct.unpack(e + "HHIQQQIHHHHHH", self._pread(48, 16))
        else:
            hdr = struct.unpack(e + "HHIIIIIHHHHHH", self._pread(36, 16))
        (self.type, self.machine, _version, _entry, phoff, shoff, _flags, _ehsize,
         phentsize, phnum, shentsize, shnum, _shstrndx) = hdr
        self.segments = self._read_segments(phoff, phentsize, phnum)
        self.sections = self._read_sections(shoff, shentsize, shnum)

    def _read_segments(self, phoff: int, entsize: int, num: int) -> List[Segment]:
        out: List[Segment] = []
        if not phoff or not num:
            return out
        table = self._pread(entsize * num, phoff)
        for i in range(num):
            if self.bits == 64:
                p_type, _fl, off, vaddr, _pa, filesz, memsz, _al = struct.unpack_from(
                    self.endian + "IIQQQQQQ", table, i * entsize)
            else:
                p_type, off, vaddr, _pa, filesz, memsz, _fl, _al = struct.unpack_from(
                    self.endian + "IIIIIIII", table, i * entsize)
            if p_type == _PT_LOAD:
                out.append(Segment(off, vaddr, filesz, memsz))
        return out

    def _read_sections(self, shoff: int, entsize: int, num: int) -> List[_Section]:
        out: List[_Section] = []
        if not shoff or not num:
            return out
        table = self._pread(entsize * num, shoff)
        for i in range(num):
            if self.bits == 64:
                _n, typ, _fl, _a, off, size, link, _info, _al, ent = struct.unpack_from(
                    self.endian + "IIQQQQIIQQ", table, i * entsize)
            else:
                _n, typ, _fl, _a, off, size, link, _info, _al, ent = struct.unpack_from(
                    self.endian + "IIIIIIIIII", table, i * entsize)
            out.append(_Section(typ, off, size, link, ent))
        return out

    def symbol(self, name: str) -> Optional[Tuple[int, int]]:
        """(link-time address, size) of the defined symbol ``name``, or None."""
        if name not in self._symbols:
            found = None
            for kind in (_SHT_DYNSYM, _SHT_SYMTAB):
                found = self._lookup(name.encode("ascii"), kind)
                if found is not None:
                    break
            self._symbols[name] = found
        return self._symbols[name]

    def _lookup(self, name: bytes, kind: int) -> Optional[Tuple[int, int]]:
        for sec in self.sections:
            if sec.type != kind or not sec.entsize or sec.link >= len(self.sections):
                continue
            strsec = self.sections[sec.link]
            strtab = self._pread(strsec.size, strsec.offset)
            # the offsets at which the name is stored (whole strings only)
            wanted = set()
            i = strtab.find(b"\0" + name + b"\0")
            while i >= 0:
                wanted.add(i + 1)
                i = strtab.find(b"\0" + name + b"\0", i + 1)
            if not wanted:
                continue
            table = self._pread(sec.size, sec.offset)
            fmt = self.endian + ("IBBHQQ" if self.bits == 64 else "IIIBBH")
            for entry in struct.iter_unpack(fmt, table[:len(table) - len(table) % sec.entsize]):
                if entry[0] not in wanted:
                    continue
                if self.bits == 64:
                    value, size, shndx = entry[4], entry[5], entry[3]
                else:
                    value, size, shndx = entry[1], entry[2], entry[5]
                if shndx != 0 and value:  # defined here, not an import
                    return value, size
        return None

    def read_at_vaddr(self, vaddr: int, size: int) -> Optional[bytes]:
        """The file's bytes at link-time address ``vaddr`` (initialised data only)."""
        for seg in self.segments:
            if seg.vaddr <= vaddr and vaddr + size <= seg.vaddr + seg.filesz:
                return self._pread(size, seg.offset + vaddr - seg.vaddr)
        return None


def load_bias(elf: ElfFile, mappings: List[Tuple[int, int]]) -> Optional[int]:
    """Run-time minus link-time addresses for ``elf``, given its mappings in the
    process as (start address, file offset) pairs.

    The segment that starts at the lowest file offset is mapped at the mapping
    of that page; a non-PIE executable (``ET_EXEC``) is loaded where it was linked.
    """
    if elf.type == _ET_EXEC:
        return 0
    if not elf.segments or not mappings:
        return None
    page = 4096
    first = min(elf.segments, key=lambda s: s.offset)
    want = first.offset - first.offset % page
    for start, offset in mappings:
        if offset == want:
            return start - (first.vaddr - first.vaddr % page)
    # another page size: place the segment by the mapping with the lowest offset
    start, offset = min(mappings, key=lambda m: m[1])
    return start - offset - (first.vaddr - first.offset)
