"""Safe unpacking: crafted zip and tar.gz archives that try to escape or explode."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from common.storage.unpack import (
    UnpackLimits,
    UnsafeArchive,
    archive_kind,
    safe_member_path,
    unpack_archive,
)

LIMITS = UnpackLimits(max_file_bytes=4 << 20, max_total_bytes=6 << 20, max_ratio=50, max_files=100)


def make_zip(path: Path, entries: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo("link")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, symlink)
    return path


def make_tar(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.zip", "zip"), ("A.TAR.GZ", "tar.gz"), ("x.tgz", "tar.gz"), ("main.py", None)],
)
def test_archive_kind_comes_from_the_name(name: str, kind: str | None) -> None:
    assert archive_kind(name) == kind


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x", "..\\x", "./"])
def test_member_paths_that_escape_are_refused(name: str) -> None:
    with pytest.raises(UnsafeArchive):
        safe_member_path(name)


def test_member_paths_are_normalised() -> None:
    assert safe_member_path("./src//a.py") == "src/a.py"


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_plain_archive_unpacks_every_file(tmp_path: Path, kind: str) -> None:
    entries = {"src/a.py": b"print(1)\n", "README.md": b"# hi\n"}
    archive = (make_zip if kind == "zip" else make_tar)(tmp_path / f"p.{kind}", entries)
    out = tmp_path / "out"
    out.mkdir()
    assert sorted(unpack_archive(archive, kind, out, LIMITS)) == ["README.md", "src/a.py"]
    assert (out / "src/a.py").read_bytes() == b"print(1)\n"


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize("name", ["../evil.py", "/abs.py", "a/../../evil.py"])
def test_zip_slip_and_absolute_entries_are_refused(tmp_path: Path, kind: str, name: str) -> None:
    archive = (make_zip if kind == "zip" else make_tar)(tmp_path / f"p.{kind}", {name: b"x"})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchive):
        unpack_archive(archive, kind, out, LIMITS)
    assert not (tmp_path / "evil.py").exists()


def test_symlinks_are_refused_in_zip_and_tar(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    zipped = make_zip(tmp_path / "l.zip", {"a": b"x"}, symlink="/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symlink"):
        unpack_archive(zipped, "zip", out, LIMITS)
    tarred = make_tar(tmp_path / "l.tar.gz", {}, links={"l": "../../etc"})
    with pytest.raises(UnsafeArchive, match="link"):
        unpack_archive(tarred, "tar.gz", out, LIMITS)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_bomb_is_refused_by_its_ratio(tmp_path: Path, kind: str) -> None:
    # 3 MB of zeros compresses some thousand times: far over the cap of 50.
    entries = {"zeros.bin": bytes(3 << 20)}
    archive = (make_zip if kind == "zip" else make_tar)(tmp_path / f"b.{kind}", entries)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchive, match="ratio"):
        unpack_archive(archive, kind, out, LIMITS)


def test_a_file_over_its_cap_and_a_total_over_its_cap_are_refused(tmp_path: Path) -> None:
    loose = UnpackLimits(
        max_file_bytes=1 << 20, max_total_bytes=1536 << 10, max_ratio=1e9, max_files=9
    )
    out = tmp_path / "out"
    out.mkdir()
    big = make_tar(tmp_path / "big.tar.gz", {"big": bytes((1 << 20) + 1)})
    with pytest.raises(UnsafeArchive, match="over"):
        unpack_archive(big, "tar.gz", out, loose)
    many = make_zip(tmp_path / "many.zip", {f"f{i}": bytes(600 << 10) for i in range(3)})
    with pytest.raises(UnsafeArchive, match="unpacks to over"):
        unpack_archive(many, "zip", out, loose)


def test_a_corrupt_archive_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchive, match="does not read"):
        unpack_archive(bad, "zip", out, LIMITS)
