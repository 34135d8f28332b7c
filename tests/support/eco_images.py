"""Images for the ecosystem tests, made with NetBSD's makefs from trees written here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from p2k.etfs.disklabel import FS_BSDFFS, LABEL_BYTE_OFFSET, build_disklabel

needs_makefs = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")

CSV = "city,population\nAmsterdam,921402\nBerkeley,124321\nKyoto,1463723\n"
LABEL_OFFSET_SECTORS = 64


def makefs(image: Path, tree: Path, size: str = "16m", *extra: str) -> Path:
    subprocess.run(["makefs", "-t", "ffs", "-s", size, "-o", "version=2", *extra, str(image), str(tree)],
                   check=True, capture_output=True)
    return image


def data_tree(root: Path, big: int = 0) -> Path:
    """``data/x.csv``, ``etc/motd``, a symlink, and (with ``big``) a file of ``big`` bytes."""
    (root / "data").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "data" / "x.csv").write_text(CSV)
    (root / "etc" / "motd").write_text("Welcome to NetBSD.\n")
    (root / "motd").symlink_to("etc/motd")
    if big:
        (root / "data" / "big.bin").write_bytes(bytes(range(256)) * (big // 256))
    return root


def labelled(ffs: Path, out: Path) -> Path:
    """``ffs`` as partition *a* of a NetBSD disklabel, starting 64 sectors into ``out``."""
    body = ffs.read_bytes()
    head = bytearray(LABEL_OFFSET_SECTORS * 512)
    label = build_disklabel([(len(body) // 512, LABEL_OFFSET_SECTORS, FS_BSDFFS)])
    head[LABEL_BYTE_OFFSET:LABEL_BYTE_OFFSET + len(label)] = label
    out.write_bytes(bytes(head) + body)
    return out
