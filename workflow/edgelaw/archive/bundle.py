"""Result archives: one gzip tar with a checksummed manifest, so others can verify and replay a run.

An archive is built from an explicit member map (archive name -> source file) and starts with
MANIFEST.json, which lists the sha256 and size of every other member. `verify` checks the archive
against that manifest and `extract` unpacks it only after verification, with its own member checks,
so that an archive from somebody else can never write outside the folder it is unpacked into.

Builds are reproducible: members are added in name order with normalised owner, mode and mtime,
and the gzip header carries no name or time, so the same inputs (including meta["created"]) give
byte-identical archives. The safety checks are done here rather than left to `tarfile`'s extraction
filters, whose presence and defaults differ between Python versions.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zlib
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Iterator

from edgelaw.core.atomic import atomic_path
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file

FORMAT = "edgelaw-archive/1"
MANIFEST = "MANIFEST.json"
_RESERVED_META = ("format", "files")
_CHUNK = 1 << 20
# Everything that a damaged or foreign file can make tarfile/gzip raise while reading.
# Plain OSError is left out so that a full disk while extracting is not blamed on the archive.
_READ_ERRORS = (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, UnicodeError)


# ---------------------------------------------------------------- names and members


def _name_problem(name: str) -> str | None:
    """Why `name` is not a safe relative POSIX member name, or None if it is."""
    if not isinstance(name, str) or not name:
        return "empty name"
    if "\\" in name:
        return "contains a backslash"
    if "\x00" in name:
        return "contains a NUL byte"
    # A Windows drive ("C:x") would be absolute once unpacked there.
    if name.startswith("/") or PureWindowsPath(name).drive:
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "contains a '..' component"
    # Empty and "." parts would let two different names unpack to the same file.
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' component"
    return None


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why this tar member may not be unpacked, or None if it is a plain file with a safe name."""
    why = _name_problem(member.name)
    if why:
        return f"member {member.name!r} {why}"
    if member.issym():
        return f"member {member.name} is a symlink (to {member.linkname!r}); only regular files are allowed"
    if member.islnk():
        return f"member {member.name} is a hardlink (to {member.linkname!r}); only regular files are allowed"
    if member.ischr() or member.isblk() or member.isfifo():
        return f"member {member.name} is a device or fifo; only regular files are allowed"
    if member.isdir():
        return f"member {member.name} is a directory; only regular files are allowed"
    # isreg() is also true for GNU sparse files, whose layout we do not want to trust.
    if not member.isreg() or member.issparse():
        return f"member {member.name} is not a regular file (tar type {member.type!r})"
    return None


def _folder_clashes(names: set[str]) -> list[str]:
    """Names that are also used as a folder by another name ('a' and 'a/b' cannot both be unpacked)."""
    clashes = []
    for name in sorted(names):
        parts = name.split("/")
        for k in range(1, len(parts)):
            if (folder := "/".join(parts[:k])) in names:
                clashes.append(f"member {folder} is both a file and the folder of {name}")
    return clashes


# ---------------------------------------------------------------- build


class _HashingReader:
    """Wraps a source file so the bytes that go into the tar are hashed as tarfile reads them."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        block = self._f.read(n)
        self.sha256.update(block)
        return block


def _created(meta: dict) -> tuple[str, int]:
    """The manifest's creation time and the member mtime derived from it.

    Without meta["created"] the time is taken from SOURCE_DATE_EPOCH (the reproducible-builds
    convention) or the clock, and members get mtime 0, so only the manifest differs between builds.
    """
    if "created" in meta:
        try:
            when = datetime.fromisoformat(str(meta["created"]))
        except ValueError:
            raise EdgelawError(
                f"archive meta 'created' is {meta['created']!r}, not an ISO time; pass e.g. '2024-05-01T12:00:00+00:00'"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return str(meta["created"]), max(0, int(when.timestamp()))
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), timezone.utc).isoformat(timespec="seconds"), int(epoch)
    return datetime.now(timezone.utc).isoformat(timespec="seconds"), 0


def _check_sources(files: dict[str, str | os.PathLike]) -> dict[str, Path]:
    """Refuse unsafe names and missing sources before anything is written."""
    problems = []
    for name, src in files.items():
        if name == MANIFEST:
            problems.append(f"member {MANIFEST} is reserved for the manifest; rename it")
        elif why := _name_problem(name):
            problems.append(f"member name {name!r} {why}; use a relative POSIX path like 'results/x.parquet'")
        elif not Path(src).is_file():
            problems.append(f"member {name}: source {src} is not an existing regular file")
    problems += _folder_clashes(set(files) | {MANIFEST})
    if problems:
        raise EdgelawError("cannot build archive:\n  - " + "\n  - ".join(problems))
    return {name: Path(files[name]) for name in sorted(files)}


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_file(tar: tarfile.TarFile, name: str, src: Path, entry: dict, mtime: int) -> None:
    """Add one source file, failing if it no longer matches what the manifest says about it."""
    try:
        with open(src, "rb") as f:
            reader = _HashingReader(f)
            tar.addfile(_tarinfo(name, entry["bytes"], mtime), reader)
    except OSError as e:
        # tarfile raises OSError when the source got shorter after it was hashed.
        raise EdgelawError(
            f"member {name}: cannot archive source {src} ({e}); check the file and free space, then rebuild"
        ) from None
    if reader.sha256.hexdigest() != entry["sha256"]:
        raise EdgelawError(f"member {name}: source {src} changed while the archive was built; rebuild when it is stable")


def build(out_path: str | os.PathLike, files: dict[str, str | os.PathLike], meta: dict) -> dict:
    """Write a reproducible .tar.gz of `files` (member name -> source) plus MANIFEST.json; return the manifest."""
    if clash := [k for k in _RESERVED_META if k in meta]:
        raise EdgelawError(f"archive meta may not set {clash}; these manifest fields are written by edgelaw.archive.bundle")
    sources = _check_sources(files)
    created, mtime = _created(meta)
    listing = {name: {"sha256": sha256_file(src), "bytes": src.stat().st_size} for name, src in sources.items()}
    manifest = {"format": FORMAT, "created": created, **meta, "files": listing}
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    except TypeError as e:
        raise EdgelawError(f"archive meta is not JSON-serialisable ({e}); pass plain str/int/float/list/dict values") from None
    blob = text.encode()
    with atomic_path(out_path) as tmp:
        # filename="" and mtime=0 keep the temp name and the clock out of the gzip header.
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tarinfo(MANIFEST, len(blob), mtime), io.BytesIO(blob))
                for name, src in sources.items():
                    _add_file(tar, name, src, listing[name], mtime)
    return json.loads(text)


# ---------------------------------------------------------------- read and verify


def _unreadable(path: Path, e: BaseException) -> EdgelawError:
    return EdgelawError(f"{path} is not a readable edgelaw archive ({type(e).__name__}: {e}); rebuild it or fetch it again")


def _open(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise EdgelawError(f"archive {path} does not exist; check the path or build it with the archive step")
    try:
        return tarfile.open(path, mode="r:gz")
    except (*_READ_ERRORS, OSError) as e:
        raise _unreadable(path, e) from None


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    f = tar.extractfile(member)
    assert f is not None  # only called for regular files
    while block := f.read(_CHUNK):
        yield block


def _parse_manifest(path: Path, blob: bytes) -> dict:
    try:
        manifest = json.loads(blob.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgelawError(f"{path}: {MANIFEST} is not valid JSON ({e}); rebuild the archive") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise EdgelawError(f"{path}: {MANIFEST} has format {found!r}, expected {FORMAT!r}; rebuild it with this edgelaw")
    files = manifest.get("files")
    ok = isinstance(files, dict) and all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int) for e in files.values()
    )
    if not ok:
        raise EdgelawError(f"{path}: {MANIFEST} 'files' is not a map of name -> {{sha256, bytes}}; rebuild the archive")
    return manifest


def read_manifest(archive_path: str | os.PathLike) -> dict:
    """The archive's manifest, without checking the other members (it is the first member of our builds)."""
    path = Path(archive_path)
    with _open(path) as tar:
        try:
            for member in tar:
                if member.name == MANIFEST and member.isreg():
                    return _parse_manifest(path, b"".join(_read_member(tar, member)))
        except _READ_ERRORS as e:
            raise _unreadable(path, e) from None
    raise EdgelawError(f"{path} has no {MANIFEST}; it was not built by edgelaw or is damaged — rebuild it")


def _digest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    for block in _read_member(tar, member):
        h.update(block)
        n += len(block)
    return h.hexdigest(), n


def _scan(path: Path) -> tuple[dict | None, list[str]]:
    """One pass over the archive: the manifest (if any) and every problem found."""
    problems: list[str] = []
    manifest_blob: bytes | None = None
    seen: dict[str, tuple[str, int]] = {}
    refused: set[str] = set()
    with _open(path) as tar:
        try:
            for member in tar:
                if why := _member_problem(member):
                    problems.append(why)
                    refused.add(member.name)
                elif member.name in seen or (member.name == MANIFEST and manifest_blob is not None):
                    # A later copy would silently replace the verified one on extraction.
                    problems.append(f"member {member.name} appears more than once")
                elif member.name == MANIFEST:
                    manifest_blob = b"".join(_read_member(tar, member))
                else:
                    seen[member.name] = _digest(tar, member)
            # Reading to the end makes gzip check its CRC and notice truncation after the last member.
            while tar.fileobj.read(_CHUNK):
                pass
        except _READ_ERRORS as e:
            raise _unreadable(path, e) from None
    if manifest_blob is None:
        return None, [f"{MANIFEST} is missing; the archive was not built by edgelaw or is damaged"] + problems
    manifest = _parse_manifest(path, manifest_blob)
    return manifest, problems + _compare(manifest["files"], seen, refused)


def _short(digest: str) -> str:
    return digest[:12] + "…"


def _compare(listed: dict, seen: dict[str, tuple[str, int]], refused: set[str]) -> list[str]:
    problems = []
    for name, entry in sorted(listed.items()):
        if why := _name_problem(name):
            problems.append(f"manifest lists unsafe name {name!r} ({why})")
        elif name not in seen and name not in refused:
            problems.append(f"missing member {name} (listed in the manifest)")
        elif name in seen:
            sha, size = seen[name]
            if sha != entry["sha256"]:
                problems.append(f"{name}: sha256 mismatch (manifest {_short(entry['sha256'])}, archive {_short(sha)})")
            if size != entry["bytes"]:
                problems.append(f"{name}: size mismatch (manifest {entry['bytes']} bytes, archive {size})")
    problems += [f"extra member {name} not in the manifest" for name in sorted(set(seen) - set(listed))]
    problems += _folder_clashes(set(listed) | {MANIFEST})
    return problems


def verify(archive_path: str | os.PathLike) -> dict:
    """Check every member against MANIFEST.json; raise EdgelawError listing all problems, else return it."""
    path = Path(archive_path)
    manifest, problems = _scan(path)
    if problems:
        raise EdgelawError(
            f"{path} failed verification:\n  - " + "\n  - ".join(problems) + "\nrebuild the archive or fetch it again"
        )
    assert manifest is not None
    return manifest


# ---------------------------------------------------------------- extract


_UNSAFE = "the archive is unsafe; do not use it, fetch it from a trusted source"


def _target_for(dest: Path, name: str) -> Path:
    """Where member `name` goes under `dest` (already resolved), refusing anything that could land elsewhere."""
    if why := _name_problem(name):
        raise EdgelawError(f"refusing to extract: member {name!r} {why}; {_UNSAFE}")
    target = dest.joinpath(*PurePosixPath(name).parts)
    # resolve() follows symlinks already present in dest, so a planted link cannot redirect us.
    if not target.resolve().is_relative_to(dest):
        raise EdgelawError(
            f"refusing to extract: member {name} would be written outside {dest} (a symlink in the destination?); "
            "extract into an empty folder"
        )
    return target


def _target(dest: Path, member: tarfile.TarInfo) -> Path:
    if why := _member_problem(member):
        raise EdgelawError(f"refusing to extract: {why}; {_UNSAFE}")
    return _target_for(dest, member.name)


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, entry: dict) -> None:
    h = hashlib.sha256()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                for block in _read_member(tar, member):
                    h.update(block)
                    out.write(block)
            # Re-checked as written, in case the archive was replaced after verify() read it.
            if h.hexdigest() != entry["sha256"]:
                raise EdgelawError(f"member {member.name} changed since verification; fetch the archive again")
            tmp.chmod(0o644)
    except _READ_ERRORS:
        raise  # the caller reports a damaged archive
    except OSError as e:
        raise EdgelawError(f"cannot extract member {member.name} to {target} ({e}); fix or empty the destination") from None


def extract(archive_path: str | os.PathLike, dest: str | os.PathLike) -> dict:
    """Verify the archive, then unpack its files (not the manifest) under `dest`; return the manifest."""
    path = Path(archive_path)
    manifest = verify(path)
    listed = manifest["files"]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    # Check every destination before writing any, so a refusal leaves nothing half-unpacked.
    for name in sorted(listed):
        _target_for(dest, name)
    written: set[str] = set()
    with _open(path) as tar:
        try:
            for member in tar:
                target = _target(dest, member)
                if member.name == MANIFEST:
                    continue
                if member.name not in listed:
                    raise EdgelawError(f"refusing to extract: member {member.name} is not in the manifest; {_UNSAFE}")
                _write_member(tar, member, target, listed[member.name])
                written.add(member.name)
        except _READ_ERRORS as e:
            raise _unreadable(path, e) from None
    # Only possible if the file was replaced after verify(); a partial replay must not look complete.
    if missing := sorted(set(listed) - written):
        raise EdgelawError(f"{path}: members {missing} vanished since verification; fetch the archive again")
    return manifest


def pack_results(out: str | os.PathLike, device: str, config: dict, result_files: list[str]) -> dict:
    """One device's archive: its result files (names as given, relative to the working directory), the
    validated config and the environment's lock (`pip freeze`), with the code version in the manifest."""
    import subprocess
    import sys
    import tempfile

    import yaml

    from edgelaw import __version__
    from edgelaw.core import layout
    from edgelaw.core.provenance import git_commit

    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=True))
        lock = Path(tmp) / "requirements.lock"
        freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                                text=True, check=True)
        lock.write_text(freeze.stdout)
        files = {layout.ARCHIVE_CONFIG: config_file, layout.ARCHIVE_LOCK: lock}
        files.update({path: path for path in result_files})
        return build(out, files, {
            "device": device, "edgelaw_version": __version__, "git_commit": git_commit(),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
