"""A task's `artifact` blocks, fetched into its directory before it starts, as Nomad's go-getter does.

Sources the dev agent fetches: a local path (`/abs/path`, `file:///abs/path`, `file::/abs/path`) and
an http(s) URL on a loopback host; anything else is refused when the job is registered
(`unsupported`), never accepted and skipped. go-getter's destination rules:

- mode "any" (the default): a directory's contents go into the destination dir; an archive
  (.tar, .tar.gz/.tgz, .tar.bz2/.tbz2, .tar.xz/.txz, .zip) is unpacked there unless
  `options { archive = "false" }`; any other file is copied there under its own name.
- mode "dir": like "any", but the source must be a directory or an archive.
- mode "file": the destination is the file itself.
- `options { checksum = "sha256:<hex>" }` (md5, sha1, sha256, sha512) is verified before anything
  is written.

The destination lies in the task's directory, which the task's user owns and may have filled with
symlinks on an earlier run: no component of the destination may be a symlink, files are created with
O_NOFOLLOW, and archives are unpacked with tarfile's "data" filter (no absolute paths, no `..`, no
links out), so the root-run agent never writes outside the allocation.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

ARCHIVES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
OPTIONS = ("archive", "checksum")
MAX_DOWNLOAD = 1 << 30  # a loopback artifact larger than 1 GiB is refused rather than filling the disk


class ArtifactError(Exception):
    """The artifact cannot be fetched; the task fails with "Failed Artifact Download"."""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_path(source: str) -> str | None:
    """The local path a source names, or None when it is not a local source."""
    if source.startswith("file::"):
        source = source[len("file::"):]
    if source.startswith("file://"):
        parsed = urllib.parse.urlparse(source)
        if parsed.netloc not in ("", "localhost"):
            return None
        return urllib.parse.unquote(parsed.path)
    return source if source.startswith("/") else None


def unsupported(source: str, options: dict[str, str] | None) -> str | None:
    """Why the dev agent cannot fetch this artifact, or None."""
    if local_path(source) is None:
        parsed = urllib.parse.urlparse(source)
        if parsed.scheme not in ("http", "https") or not _loopback(parsed.hostname or ""):
            return (f"artifact source {source!r} is not supported by the dev agent (it fetches local paths, "
                    "file:// URLs and http(s) URLs on a loopback host)")
    for key in options or {}:
        if key not in OPTIONS:
            return f"artifact option {key!r} is not supported by the dev agent (it honours: {', '.join(OPTIONS)})"
    return None


def _checksum(data_path: Path, spec: str) -> None:
    kind, _, want = spec.strip().partition(":")
    if kind not in ("md5", "sha1", "sha256", "sha512"):
        raise ArtifactError(f"unsupported checksum type: {kind}")
    digest = hashlib.new(kind)
    with open(data_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != want.lower():
        raise ArtifactError(f"Checksums did not match for {data_path.name}.\nExpected: {want}\n"
                            f"Got: {digest.hexdigest()}")


def _safe_dir(root: Path, rel: str) -> Path:
    """`root`/`rel` as a real directory (created), with no symlink anywhere below `root`."""
    path = root
    for part in Path(rel).parts:
        if part in ("", "."):
            continue
        if part == "..":
            raise ArtifactError("destination escapes allocation directory")
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            continue
        if not stat.S_ISDIR(mode):  # a symlink (or a file) where a directory must be
            raise ArtifactError(f"destination {rel!r}: {part!r} is not a directory")
    return path


def _write_file(dest: Path, src: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 stat.S_IMODE(os.stat(src).st_mode) or 0o644)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out)


def _copy_tree(src: Path, dest: Path) -> None:
    for entry in sorted(src.iterdir()):
        target = dest / entry.name
        if entry.is_symlink():
            continue  # go-getter copies files and dirs; a link in the source could point anywhere
        if entry.is_dir():
            _copy_tree(entry, _safe_dir(dest, entry.name))
        elif entry.is_file():
            _write_file(target, entry)


def _unpack(archive: Path, name: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="nomadmesh-artifact-") as tmp:
        try:
            if name.endswith(".zip"):
                with zipfile.ZipFile(archive) as z:
                    z.extractall(tmp)  # zipfile drops absolute paths and `..` from member names
            else:
                with tarfile.open(archive) as t:
                    t.extractall(tmp, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
            raise ArtifactError(f"error unpacking {name}: {e}") from None
        _copy_tree(Path(tmp), dest)


def _download(url: str, into: Path) -> Path:
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    target = into / name
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(target, "wb") as out:
            copied = 0
            for block in iter(lambda: resp.read(1 << 20), b""):
                copied += len(block)
                if copied > MAX_DOWNLOAD:
                    raise ArtifactError(f"{url}: larger than {MAX_DOWNLOAD} bytes")
                out.write(block)
    except OSError as e:
        raise ArtifactError(f"error downloading {url!r}: {e}") from None
    return target


def fetch(task_dir: Path, source: str, relative_dest: str, mode: str = "any",
          options: dict[str, str] | None = None) -> None:
    """Fetch one artifact into `task_dir`/`relative_dest` (already interpolated by the caller)."""
    options = options or {}
    why = unsupported(source, options)
    if why:
        raise ArtifactError(why)
    with tempfile.TemporaryDirectory(prefix="nomadmesh-artifact-") as tmp:
        local = local_path(source)
        src = Path(local) if local is not None else _download(source, Path(tmp))
        if not src.exists():
            raise ArtifactError(f"source path error: stat {src}: no such file or directory")
        if src.is_file() and options.get("checksum"):
            _checksum(src, options["checksum"])
        root = task_dir.parent  # the allocation dir: a destination may reach alloc/ (../alloc/data)
        rel = os.path.normpath(os.path.join(task_dir.name, relative_dest or "local/"))
        if rel.startswith(".."):
            raise ArtifactError("destination escapes allocation directory")
        name = src.name.lower()
        archive = src.is_file() and name.endswith(ARCHIVES) and options.get("archive", "true") != "false"
        if mode == "file":
            if not src.is_file():
                raise ArtifactError(f"source {source!r} is not a file (mode is file)")
            parent = _safe_dir(root, os.path.dirname(rel))
            _write_file(parent / os.path.basename(rel), src)
        elif src.is_dir():
            _copy_tree(src, _safe_dir(root, rel))
        elif archive:
            _unpack(src, name, _safe_dir(root, rel))
        elif mode == "dir":
            raise ArtifactError(f"source {source!r} is neither a directory nor an archive (mode is dir)")
        else:
            _write_file(_safe_dir(root, rel) / src.name, src)

