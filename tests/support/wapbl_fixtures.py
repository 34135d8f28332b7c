"""The NetBSD-made WAPBL fixtures (../shared/fixtures/wapbl) and their manifests, for tests.

A manifest lists what NetBSD shows after its own replay: one line per path (root excluded),
``path type mode nlink uid gid size target sha256 ino``. ``p2k_manifest`` takes the same record
through p2k's syscalls so the two compare as lists of lines.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "wapbl"
DIRTY = ("f01", "f03", "d07", "d10", "s01", "s05", "s07")
CLEAN = ("c01", "c11")


def fixture_dir() -> Path:
    if not (FIXTURES / "README.md").exists():
        pytest.skip(f"NetBSD WAPBL fixtures not present ({FIXTURES})")
    return FIXTURES


def unpack(name: str, dest: Path) -> Path:
    """The fixture image ``name`` unpacked into ``dest`` (a writable copy)."""
    src = fixture_dir() / f"{name}.img.gz"
    out = dest / f"{name}.img"
    with gzip.open(src, "rb") as f, open(out, "wb") as g:
        shutil.copyfileobj(f, g, 1 << 20)
    return out


def manifest(name: str) -> list[str]:
    lines = (fixture_dir() / f"{name}.manifest.tsv").read_text().splitlines()
    return [ln for ln in lines if ln and not ln.startswith("#")]


def p2k_manifest(k: object, mnt: str = "/mnt") -> list[str]:
    sys_ = k.sys  # type: ignore[attr-defined]
    out: list[str] = []
    stack = [b""]
    base = mnt.encode()
    while stack:
        rel = stack.pop()
        path = base + (b"/" + rel if rel else b"")
        st = sys_.lstat(path)
        if rel:
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
            target = sys_.readlink(path).decode("utf-8", "surrogateescape") if kind == "l" else ""
            digest = ""
            if kind == "f":
                h = hashlib.sha256()
                fd = sys_.open(path, os.O_RDONLY)
                try:
                    while chunk := sys_.read(fd, 1 << 20):
                        h.update(chunk)
                finally:
                    sys_.close(fd)
                digest = h.hexdigest()
            out.append("\t".join(["/" + rel.decode("utf-8", "surrogateescape"), kind, f"{st.st_mode & 0o7777:04o}",
                                  str(st.st_nlink), str(st.st_uid), str(st.st_gid), str(st.st_size),
                                  target, digest, str(st.st_ino)]))
        if stat.S_ISDIR(st.st_mode):
            for name in sys_.listdir(path):
                stack.append(rel + b"/" + name if rel else name)
    return sorted(out)
