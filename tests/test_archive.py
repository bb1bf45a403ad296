"""edgelaw.archive.bundle: reproducible builds, tamper detection and safe extraction."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from edgelaw.archive import bundle as archive
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file

CREATED = "2024-05-01T12:00:00+00:00"
META = {"created": CREATED, "pipeline_version": "0.1.0", "config_hash": "abc"}


@pytest.fixture
def sources(tmp_path) -> dict[str, Path]:
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    files = {
        "config/config.yaml": b"device: auto\n",
        "results/auto/host.json": b'{"cpu": "x"}\n',
        "results/auto/runs/m/q/tokens.parquet": bytes(range(256)) * 50,
        # Over 100 characters, so the tar needs a pax header; it must stay reproducible too.
        "results/" + "long-name-" * 12 + "/x.json": b"{}\n",
    }
    out = {}
    for i, (name, data) in enumerate(sorted(files.items())):
        path = src / "deep" / f"f{i}"
        path.write_bytes(data)
        out[name] = path
    return out


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def _write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _manifest_for(files: dict[str, bytes]) -> bytes:
    listing = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in files.items()}
    return json.dumps({"format": archive.FORMAT, "created": CREATED, "files": listing}).encode()


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> Path:
    """Copy an archive keeping its manifest, replacing (bytes) or dropping (None) members, adding new ones."""
    members = _members(src)
    for name, data in change.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    return _write_tar(dst, [_file(n, d) for n, d in members.items()])


# ---------------------------------------------------------------- build and verify


def test_build_then_verify(tmp_path, sources):
    out = tmp_path / "a.tar.gz"
    manifest = archive.build(out, sources, META)
    assert archive.verify(out) == manifest == archive.read_manifest(out)
    assert manifest["format"] == "edgelaw-archive/1"
    assert manifest["created"] == CREATED and manifest["config_hash"] == "abc"
    assert set(manifest["files"]) == set(sources)
    for name, src in sources.items():
        assert manifest["files"][name] == {"sha256": sha256_file(src), "bytes": src.stat().st_size}

    names = list(_members(out))
    assert names[0] == "MANIFEST.json" and names[1:] == sorted(sources)
    with tarfile.open(out, "r:gz") as tar:
        for m in tar:
            assert m.isreg() and (m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, "", "", 0o644)


def test_two_builds_are_byte_identical(tmp_path, sources):
    a = tmp_path / "one" / "a.tar.gz"
    b = tmp_path / "two" / "other-name.tar.gz"
    archive.build(a, sources, META)
    # Different dict order and output name must not matter either.
    archive.build(b, dict(reversed(list(sources.items()))), META)
    assert sha256_file(a) == sha256_file(b)


def test_created_defaults_to_now_with_zero_member_mtime(tmp_path, sources, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    out = tmp_path / "a.tar.gz"
    manifest = archive.build(out, sources, {"note": "x"})
    assert manifest["created"].endswith("+00:00")
    with tarfile.open(out, "r:gz") as tar:
        assert {m.mtime for m in tar} == {0}
    with gzip.open(out) as gz:
        gz.read(1)
    assert out.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "a\\b", "a//b", "a/", "", "./a", "C:x", "MANIFEST.json"])
def test_build_refuses_unsafe_names(tmp_path, sources, name):
    out = tmp_path / "a.tar.gz"
    with pytest.raises(EdgelawError, match="member"):
        archive.build(out, {**sources, name: next(iter(sources.values()))}, META)
    assert not out.exists()


def test_build_refuses_file_and_folder_clash(tmp_path, sources):
    src = next(iter(sources.values()))
    with pytest.raises(EdgelawError, match="both a file and the folder"):
        archive.build(tmp_path / "a.tar.gz", {"a": src, "a/b": src}, META)


def test_build_refuses_reserved_meta(tmp_path, sources):
    with pytest.raises(EdgelawError, match="format"):
        archive.build(tmp_path / "a.tar.gz", sources, {"format": "mine"})


def test_missing_source_leaves_nothing(tmp_path, sources):
    out = tmp_path / "out" / "a.tar.gz"
    with pytest.raises(EdgelawError, match="results/gone.parquet"):
        archive.build(out, {**sources, "results/gone.parquet": tmp_path / "nope.parquet"}, META)
    assert not out.exists()


def test_interrupted_build_leaves_no_file_and_keeps_old(tmp_path, sources, monkeypatch):
    out = tmp_path / "out" / "a.tar.gz"
    archive.build(out, sources, META)
    before = sha256_file(out)
    real, calls = archive._add_file, []

    def failing(tar, name, *args):
        calls.append(name)
        if len(calls) == 2:
            # The source vanishes after hashing, i.e. midway through writing the tar.
            args[0].unlink()
        return real(tar, name, *args)

    monkeypatch.setattr(archive, "_add_file", failing)
    with pytest.raises(EdgelawError, match="cannot archive source"):
        archive.build(out, sources, META)
    assert sha256_file(out) == before  # the old archive is untouched
    assert [p.name for p in out.parent.iterdir()] == ["a.tar.gz"]  # no temp file left behind


def test_source_changed_during_build_leaves_nothing(tmp_path, sources, monkeypatch):
    out = tmp_path / "out" / "a.tar.gz"
    real, calls = archive._add_file, []

    def rewriting(tar, name, src, *args):
        calls.append(name)
        if len(calls) == 2:
            # Same size, different bytes: only the hash taken while archiving can notice.
            src.write_bytes(bytes(b ^ 1 for b in src.read_bytes()))
        return real(tar, name, src, *args)

    monkeypatch.setattr(archive, "_add_file", rewriting)
    with pytest.raises(EdgelawError, match="changed while the archive was built"):
        archive.build(out, sources, META)
    assert list(out.parent.iterdir()) == []


# ---------------------------------------------------------------- tampering


@pytest.fixture
def built(tmp_path, sources) -> Path:
    out = tmp_path / "a.tar.gz"
    archive.build(out, sources, META)
    return out


def test_changed_member_fails_verify(tmp_path, built):
    bad = _rewrite(built, tmp_path / "bad.tar.gz", {"results/auto/host.json": b'{"cpu": "y"}\n'})
    with pytest.raises(EdgelawError) as e:
        archive.verify(bad)
    assert "results/auto/host.json: sha256 mismatch" in str(e.value)
    assert "tokens.parquet" not in str(e.value)


def test_extra_member_fails_verify(tmp_path, built):
    bad = _rewrite(built, tmp_path / "bad.tar.gz", {"evil.sh": b"rm -rf ~\n"})
    with pytest.raises(EdgelawError, match="extra member evil.sh not in the manifest"):
        archive.verify(bad)


def test_removed_member_fails_verify(tmp_path, built):
    bad = _rewrite(built, tmp_path / "bad.tar.gz", {"config/config.yaml": None})
    with pytest.raises(EdgelawError, match="missing member config/config.yaml"):
        archive.verify(bad)


def test_all_problems_are_listed(tmp_path, built):
    bad = _rewrite(built, tmp_path / "bad.tar.gz", {"config/config.yaml": None, "evil.sh": b"x", "results/auto/host.json": b"y"})
    with pytest.raises(EdgelawError) as e:
        archive.verify(bad)
    for part in ["missing member config/config.yaml", "extra member evil.sh", "results/auto/host.json: sha256 mismatch"]:
        assert part in str(e.value)


def test_duplicate_member_fails_verify(tmp_path, built):
    members = _members(built)
    name = "results/auto/host.json"
    bad = _write_tar(tmp_path / "bad.tar.gz", [_file(n, d) for n, d in members.items()] + [_file(name, b"evil")])
    with pytest.raises(EdgelawError, match="appears more than once"):
        archive.verify(bad)


def test_missing_manifest_fails_verify(tmp_path):
    bad = _write_tar(tmp_path / "bad.tar.gz", [_file("a.txt", b"x")])
    with pytest.raises(EdgelawError, match="MANIFEST.json is missing"):
        archive.verify(bad)
    with pytest.raises(EdgelawError, match="has no MANIFEST.json"):
        archive.read_manifest(bad)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_archive_is_unreadable(tmp_path, built, keep):
    data = built.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EdgelawError, match="is not a readable edgelaw archive.*rebuild it or fetch it again"):
        archive.verify(cut)
    with pytest.raises(EdgelawError, match="not a readable edgelaw archive"):
        archive.extract(cut, tmp_path / "dest")
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").rglob("*"))


@pytest.mark.parametrize("content", [b"", b"not a tarball at all", gzip.compress(b"plain text, not a tar")])
def test_garbage_is_unreadable(tmp_path, content):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(content)
    with pytest.raises(EdgelawError, match="not a readable edgelaw archive"):
        archive.verify(path)


def test_missing_archive(tmp_path):
    with pytest.raises(EdgelawError, match="does not exist"):
        archive.verify(tmp_path / "nope.tar.gz")


# ---------------------------------------------------------------- extract


def test_extract_roundtrip(tmp_path, built, sources):
    dest = tmp_path / "dest"
    manifest = archive.extract(built, dest)
    assert manifest == archive.read_manifest(built)
    for name, src in sources.items():
        assert (dest / name).read_bytes() == src.read_bytes()
    assert not (dest / "MANIFEST.json").exists()
    assert not list(dest.rglob(".*.tmp-*"))


def _evil(tmp_path: Path, name: str, members: list[tuple[tarfile.TarInfo, bytes | None]], listed: dict[str, bytes]) -> Path:
    manifest = tarfile.TarInfo("MANIFEST.json"), _manifest_for(listed)
    return _write_tar(tmp_path / name, [manifest, *members])


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _evil_cases(tmp_path: Path) -> dict[str, tuple[Path, str, Path]]:
    """name -> (archive, member to be named in the error, would-be target outside dest)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"secret")
    abs_target = tmp_path / "abs-evil.txt"
    payload = b"pwned"
    return {
        "dotdot": (_evil(tmp_path, "dotdot.tar.gz", [_file("../evil.txt", payload)], {"../evil.txt": payload}),
                   "../evil.txt", tmp_path / "evil.txt"),
        "absolute": (_evil(tmp_path, "abs.tar.gz", [_file(str(abs_target), payload)], {str(abs_target): payload}),
                     str(abs_target), abs_target),
        "symlink": (_evil(tmp_path, "sym.tar.gz",
                          [_link("link", str(outside), tarfile.SYMTYPE), _file("link/evil.txt", payload)],
                          {"link": b"", "link/evil.txt": payload}),
                    "link", outside / "evil.txt"),
        "hardlink": (_evil(tmp_path, "hard.tar.gz",
                           [_link("hl", str(tmp_path / "secret.txt"), tarfile.LNKTYPE)], {"hl": b""}),
                     "hl", None),
    }


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "hardlink"])
@pytest.mark.parametrize("skip_verify", [False, True])
def test_extract_refuses_unsafe_members(tmp_path, monkeypatch, case, skip_verify):
    bad, member, outside = _evil_cases(tmp_path)[case]
    if skip_verify:
        # extract must hold on its own, not only because verify() ran first.
        monkeypatch.setattr(archive, "verify", lambda p: archive.read_manifest(p))
    dest = tmp_path / "dest"
    with pytest.raises(EdgelawError) as e:
        archive.extract(bad, dest)
    assert member in str(e.value)
    if outside is not None:
        assert not outside.exists()
    assert (tmp_path / "secret.txt").read_bytes() == b"secret"
    assert not dest.exists() or not any(dest.rglob("*"))


def test_verify_refuses_unsafe_members(tmp_path):
    for bad, member, _ in _evil_cases(tmp_path).values():
        with pytest.raises(EdgelawError, match="failed verification") as e:
            archive.verify(bad)
        assert member in str(e.value)


def test_extract_refuses_device_and_fifo(tmp_path):
    for kind in (tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE):
        info = tarfile.TarInfo("dev")
        info.type = kind
        bad = _evil(tmp_path, f"dev{kind.decode()}.tar.gz", [(info, None)], {"dev": b""})
        with pytest.raises(EdgelawError, match="member dev is a device or fifo"):
            archive.extract(bad, tmp_path / "dest")
        assert not (tmp_path / "dest" / "dev").exists()


def test_extract_does_not_follow_symlink_planted_in_dest(tmp_path, built, monkeypatch):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    outside.mkdir()
    dest.mkdir()
    (dest / "results").symlink_to(outside)
    with pytest.raises(EdgelawError, match="would be written outside"):
        archive.extract(built, dest)
    assert not any(outside.rglob("*"))
    assert not (dest / "config").exists()  # refused before anything was written


def test_extract_rechecks_hashes_while_writing(tmp_path, built, monkeypatch):
    # As if the archive were replaced between verify() and unpacking.
    bad = _rewrite(built, tmp_path / "bad.tar.gz", {"results/auto/host.json": b'{"cpu": "y"}\n'})
    monkeypatch.setattr(archive, "verify", lambda p: archive.read_manifest(p))
    dest = tmp_path / "dest"
    with pytest.raises(EdgelawError, match="results/auto/host.json changed since verification"):
        archive.extract(bad, dest)
    assert not (dest / "results/auto/host.json").exists()
    assert not list(dest.rglob(".*.tmp-*"))
