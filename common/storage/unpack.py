"""Unpack an uploaded zip or tar.gz into a folder, refusing anything unsafe.

Every entry is checked before a byte of it is written: a path that leaves the
folder (``..``, absolute, a drive letter), a link (a symlink or hard link could
later point a write or a read outside; none is kept), a device or fifo, an entry
over the per-file cap, a total over the total cap, or a compression ratio over the
cap (a bomb). Sizes are counted as the bytes are written, not taken from the
archive's headers, which can lie. The caller removes the folder on any error, so
nothing partial survives.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from common.errors import InvalidInput

_PIECE = 1 << 20


class UnsafeArchive(InvalidInput):
    code = "unsafe_archive"


@dataclass(frozen=True)
class UnpackLimits:
    max_file_bytes: int
    max_total_bytes: int
    max_ratio: float
    max_files: int


def archive_kind(filename: str) -> str | None:
    """``"zip"``, ``"tar.gz"`` or ``None`` (kept as one file), from the upload's name."""
    name = filename.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    return None


def safe_member_path(name: str) -> str:
    """The entry's path, normalised and relative; refuses one that could escape.

    Raises
    ------
    UnsafeArchive
    """
    cleaned = name.replace("\\", "/")
    path = PurePosixPath(cleaned)
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise UnsafeArchive(f"archive entry {name!r} has an absolute path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"archive entry {name!r} leaves the project folder")
    if not parts:
        raise UnsafeArchive(f"archive entry {name!r} has no name")
    return "/".join(parts)


def _copy(source: IO[bytes], target: Path, budget: _Budget) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as out:
        while piece := source.read(_PIECE):
            written += len(piece)
            budget.add(len(piece), target.name, written)
            out.write(piece)
    return written


class _Budget:
    def __init__(self, limits: UnpackLimits, compressed: int) -> None:
        self.limits = limits
        self.compressed = max(compressed, 1)
        self.total = 0

    def add(self, count: int, name: str, file_bytes: int) -> None:
        self.total += count
        if file_bytes > self.limits.max_file_bytes:
            raise UnsafeArchive(
                f"archive entry {name!r} is over {self.limits.max_file_bytes} bytes",
                details={"max_file_bytes": self.limits.max_file_bytes},
            )
        if self.total > self.limits.max_total_bytes:
            raise UnsafeArchive(
                f"the archive unpacks to over {self.limits.max_total_bytes} bytes",
                details={"max_total_bytes": self.limits.max_total_bytes},
            )
        # Small archives compress well without being bombs: judge the ratio only
        # once the output is worth a megabyte.
        if self.total > _PIECE and self.total / self.compressed > self.limits.max_ratio:
            raise UnsafeArchive(
                f"the archive's compression ratio is over {self.limits.max_ratio}",
                details={"max_ratio": self.limits.max_ratio},
            )


def _zip_entries(archive: Path) -> Iterator[tuple[str, bool, IO[bytes] | None, int]]:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            # The Unix mode sits in the high 16 bits of external_attr: 0o12 is a symlink.
            mode = info.external_attr >> 16
            if (mode & 0o170000) == 0o120000:
                raise UnsafeArchive(f"archive entry {info.filename!r} is a symlink")
            if info.is_dir():
                yield info.filename, True, None, 0
                continue
            with zf.open(info) as source:
                yield info.filename, False, source, info.file_size


def _tar_entries(archive: Path) -> Iterator[tuple[str, bool, IO[bytes] | None, int]]:
    with tarfile.open(archive, "r:gz") as tf:
        for member in tf:
            if member.issym() or member.islnk():
                raise UnsafeArchive(f"archive entry {member.name!r} is a link")
            if member.isdir():
                yield member.name, True, None, 0
                continue
            if not member.isfile():
                raise UnsafeArchive(f"archive entry {member.name!r} is not a regular file")
            source = tf.extractfile(member)
            yield member.name, False, source, member.size


def unpack_archive(archive: Path, kind: str, target: Path, limits: UnpackLimits) -> list[str]:
    """Unpack ``archive`` (``"zip"`` or ``"tar.gz"``) into the empty folder ``target``.

    Returns
    -------
    list[str]
        The relative paths of the files written.

    Raises
    ------
    UnsafeArchive
        An unsafe entry, a cap passed, or an archive that does not read; ``target``
        may then hold a part, which the caller removes.
    """
    budget = _Budget(limits, archive.stat().st_size)
    entries = _zip_entries(archive) if kind == "zip" else _tar_entries(archive)
    written: list[str] = []
    root = target.resolve()
    try:
        for name, is_dir, source, declared in entries:
            relative = safe_member_path(name)
            destination = root / relative
            # Belt and braces: the resolved path must still be inside (no link was kept,
            # so this holds; it stays true if that rule ever changes).
            if not destination.resolve().is_relative_to(root):
                raise UnsafeArchive(f"archive entry {name!r} leaves the project folder")
            if is_dir:
                destination.mkdir(parents=True, exist_ok=True)
                continue
            if len(written) >= limits.max_files:
                raise UnsafeArchive(f"the archive has over {limits.max_files} files")
            if declared > limits.max_file_bytes:
                raise UnsafeArchive(
                    f"archive entry {name!r} is over {limits.max_file_bytes} bytes",
                    details={"max_file_bytes": limits.max_file_bytes},
                )
            assert source is not None
            _copy(source, destination, budget)
            written.append(relative)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchive(f"the archive does not read: {type(exc).__name__}") from exc
    return written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
