"""An allocation's files for the client fs API (ls, stat, cat, readat, stream), confined to its dir.

Every path comes from a URL, so it is hostile: it is checked as Nomad checks it (a `..` that
climbs out of the allocation dir is "Path escapes the alloc directory"), and then opened with
openat2(RESOLVE_BENEATH), so the kernel itself refuses any step (a `..`, an absolute or a relative
symlink, planted by a task, even between our check and our open) that would leave the allocation
dir. Nomad follows a symlink whose absolute target happens to lie inside the allocation dir; we
refuse absolute symlinks altogether (RESOLVE_BENEATH cannot tell them apart), which is stricter.
openat2 needs Linux 5.6 or later.

Reading a task's secrets dir is prohibited, as in Nomad, but judged on the file actually opened
(its /proc/self/fd link), not on the path's spelling, so `local/link -> ../secrets/x` is refused too.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import posixpath
import stat as st
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadmesh.agent.runtime.events import rfc3339

_SYS_OPENAT2 = 437  # the same number on every Linux architecture
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


class AllocFsError(Exception):
    """kind: "escape", "missing", "notdir", "isdir", "prohibited" or "other"; message is Nomad's text."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


ESCAPES = "Path escapes the alloc directory"


def _escapes_lexically(path: str) -> bool:
    """Nomad's PathEscapesAllocViaRelative: join onto a two-level dir, then look for a leading `..`."""
    base = "/alloc-dir/alloc-id"
    full = posixpath.normpath(posixpath.join(base, path.lstrip("/") if path.startswith("/") else path))
    return posixpath.relpath(full, base).startswith("..")


def _relative(path: str) -> str:
    return posixpath.normpath(path.lstrip("/") or ".")


def _oserror(e: OSError, op: str, full: Path) -> AllocFsError:
    text = os.strerror(e.errno).lower() if e.errno else str(e)
    if e.errno == errno.EXDEV or e.errno == errno.ELOOP:
        return AllocFsError("escape", ESCAPES)
    if e.errno == errno.ENOENT:
        return AllocFsError("missing", f"{op} {full}: {text}")
    if e.errno == errno.ENOTDIR:
        return AllocFsError("notdir", f"{op} {full}: {text}")
    return AllocFsError("other", f"{op} {full}: {text}")


def open_beneath(root: Path, path: str, flags: int, op: str = "open") -> int:
    """An fd for `path` inside `root` (absolute means relative to `root`, as in Nomad's API)."""
    if _escapes_lexically(path):
        raise AllocFsError("escape", ESCAPES)
    full = root / _relative(path)
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise _oserror(e, op, full) from None
    try:
        how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
        # syscall(2) is variadic: pass every integer at its full width (long / size_t).
        fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(root_fd),
                           ctypes.c_char_p(_relative(path).encode()), ctypes.byref(how),
                           ctypes.c_size_t(ctypes.sizeof(how)))
        if fd < 0:
            err = ctypes.get_errno()
            raise _oserror(OSError(err, os.strerror(err)), op, full)
        return int(fd)
    finally:
        os.close(root_fd)


_GO_TYPE_CHARS = (  # Go's FileMode.String(): one letter per type bit, in this order
    ("d", lambda m: st.S_ISDIR(m)), ("L", lambda m: st.S_ISLNK(m)), ("D", lambda m: st.S_ISBLK(m) or st.S_ISCHR(m)),
    ("p", lambda m: st.S_ISFIFO(m)), ("S", lambda m: st.S_ISSOCK(m)), ("u", lambda m: bool(m & st.S_ISUID)),
    ("g", lambda m: bool(m & st.S_ISGID)), ("c", lambda m: st.S_ISCHR(m)), ("t", lambda m: bool(m & st.S_ISVTX)),
)


def go_file_mode(mode: int) -> str:
    """os.FileMode.String() as Nomad reports FileMode: "drwxr-xr-x", "-rw-r--r--", "Lrwxrwxrwx"."""
    kinds = "".join(c for c, test in _GO_TYPE_CHARS if test(mode)) or "-"
    perms = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    return kinds + perms


def _info(name: str, s: os.stat_result) -> dict[str, Any]:
    return {"Name": name, "IsDir": st.S_ISDIR(s.st_mode), "Size": s.st_size, "FileMode": go_file_mode(s.st_mode),
            "ModTime": rfc3339(s.st_mtime_ns)}


def list_dir(root: Path, path: str) -> list[dict[str, Any]]:
    """Nomad's AllocFileInfo of each entry (not following symlinks, as Go's os.ReadDir)."""
    fd = open_beneath(root, path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        entries = []
        for name in sorted(os.listdir(fd)):
            try:
                entries.append(_info(name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
            except FileNotFoundError:
                continue  # removed while we listed
        return entries
    finally:
        os.close(fd)


def stat_path(root: Path, path: str) -> dict[str, Any]:
    """Nomad's AllocFileInfo of one path, symlinks followed (inside the allocation only)."""
    fd = open_beneath(root, path, os.O_PATH, "stat")
    try:
        s = os.fstat(fd)
        name = posixpath.basename(posixpath.normpath("/" + path)) or root.name
        info = _info(name, s)
        regular = st.S_ISREG(s.st_mode)  # never open a FIFO or a device just to sniff it
        info["ContentType"] = _content_type(fd, path) if regular else "application/octet-stream"
        return info
    finally:
        os.close(fd)


def _content_type(path_fd: int, path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    try:
        fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "application/octet-stream"
    try:
        return sniff(os.read(fd, 512))
    except OSError:
        return "application/octet-stream"
    finally:
        os.close(fd)


_SIGNATURES = ((b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"),
               (b"\xff\xd8\xff", "image/jpeg"), (b"\x1f\x8b\x08", "application/x-gzip"),
               (b"PK\x03\x04", "application/zip"), (b"%!PS-Adobe-", "application/postscript"))


def sniff(head: bytes) -> str:
    """The common cases of Go's http.DetectContentType (which Nomad's stat uses)."""
    stripped = head.lstrip(b"\t\n\x0c\r ")
    lowered = stripped[:14].lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<div", b"<p>")):
        return "text/html; charset=utf-8"
    if stripped.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B) for b in head):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


@dataclass
class OpenFile:
    fd: int
    path: str  # as the client named it

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def deleted(self) -> bool:
        return os.fstat(self.fd).st_nlink == 0

    def read(self, offset: int, n: int) -> bytes:
        try:
            return os.pread(self.fd, n, offset)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.ESPIPE:  # a FIFO: no offsets, read what is there
                try:
                    return os.read(self.fd, n)
                except BlockingIOError:
                    return b""
            raise

    def close(self) -> None:
        os.close(self.fd)


def secret_dirs(root: Path) -> list[Path]:
    """Every task's secrets dir in the allocation (`<alloc>/<task>/secrets`), symlinks resolved."""
    return [Path(os.path.realpath(d)) for d in Path(root).glob("*/secrets")]


def open_file(root: Path, path: str) -> OpenFile:
    """Open a regular file to read; a directory or anything in a task's secrets dir is refused."""
    fd = open_beneath(root, path, os.O_RDONLY | os.O_NONBLOCK, "stat")  # a FIFO must not block the open
    try:
        if st.S_ISDIR(os.fstat(fd).st_mode):
            raise AllocFsError("isdir", f"file {json.dumps(path)} is a directory")
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if any(real == d or d in real.parents for d in secret_dirs(root)):
            raise AllocFsError("prohibited", f"Reading secret file prohibited: {path}")
    except BaseException:
        os.close(fd)
        raise
    return OpenFile(fd, path)
