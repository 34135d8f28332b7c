"""Whole-disk images for the tests, made with independent tools around real NetBSD ``makefs`` FFS.

MBR and GPT come from ``sfdisk`` and ``sgdisk``; BSD labels have no Linux tool, so they are packed
here from the format facts (NetBSD and FreeBSD ``struct disklabel``, OpenBSD's 48-bit variant),
deliberately without p2k's own structures, so a mistake in p2k's reading cannot hide in a shared
definition. Each builder returns a ``Disk``: the image, and for each FFS the volume name p2k should
give it, its byte window and the source tree it was made from.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20
SECTOR = 512
DISKMAGIC = 0x82564557
FS_BSDFFS = 7
FS_SWAP = 1
FS_UNUSED = 0

HAVE_TOOLS = all(shutil.which(t) for t in ("makefs", "sfdisk", "sgdisk", "mmls"))


@dataclass
class Fs:
    name: str  # the volume name p2k must give it
    start: int  # bytes
    size: int  # bytes
    tree: Path
    version: int
    endian: str


@dataclass
class Disk:
    path: Path
    filesystems: list[Fs] = field(default_factory=list)


def make_tree(root: Path, seed: int) -> Path:
    """A small tree: text (compressible, for qcow2's compressed clusters) and binary files,
    one spanning indirect blocks, a subdirectory and a symlink."""
    root.mkdir(parents=True)
    (root / "README").write_text(f"disk test tree {seed}\n" * 50)
    (root / "sub").mkdir()
    (root / "sub" / "notes.txt").write_text("".join(f"line {i} of tree {seed}\n" for i in range(3000)))
    blob = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(9000))
    (root / "sub" / "blob.bin").write_bytes(blob)  # 288000 bytes: past the 12 direct blocks
    (root / "empty").write_bytes(b"")
    os.symlink("sub/notes.txt", root / "link")
    return root


def tree_files(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def makefs(img: Path, tree: Path, version: int, endian: str, size: int) -> None:
    subprocess.run(["makefs", "-t", "ffs", "-B", endian, "-o", f"version={version}", "-s", str(size), str(img),
                    str(tree)], check=True, capture_output=True)


def blank(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def put(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def sfdisk(path: Path, script: str) -> None:
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(path)], input=script.encode(),
                   check=True, capture_output=True)


def sgdisk(path: Path | str, *args: str) -> None:
    subprocess.run(["sgdisk", *args, str(path)], check=True, capture_output=True)


def _cksum(label: bytearray, nparts: int, order: str) -> int:
    total = 0
    for (w,) in struct.iter_unpack(order + "H", bytes(label[:148 + 16 * nparts])):
        total ^= w
    return total


def bsd_label(parts: list[tuple[int, int, int]], *, order: str = "<", nparts: int = 16, secperunit: int = 0,
              bad_checksum: bool = False) -> bytes:
    """A NetBSD/FreeBSD ``struct disklabel`` with ``(size, offset, fstype)`` sector triples."""
    head = struct.pack(order + "IHH16s16sIIIIIIHHIHHHHIII20s20sIHHII", DISKMAGIC, 12, 0, b"test", b"",
                       512, 32, 64, max(secperunit // 2048, 1), 2048, secperunit, 0, 0, 0, 3600, 1, 0, 0, 0, 0, 0,
                       b"", b"", DISKMAGIC, 0, nparts, 8192, 8192)
    label = bytearray(head)
    for size, off, fstype in parts:
        label += struct.pack(order + "IIIBBH", size, off, 2048 if fstype == FS_BSDFFS else 0, fstype,
                             8 if fstype == FS_BSDFFS else 0, 0)
    label += bytes(16 * (nparts - len(parts)))
    ck = _cksum(label, nparts, order) ^ (0x5A5A if bad_checksum else 0)
    struct.pack_into(order + "H", label, 136, ck)
    return bytes(label)


def openbsd_label(parts: list[tuple[int, int, int]], *, secperunit: int = 0) -> bytes:
    """An OpenBSD version-1 label: ``(size, offset, fstype)`` with 48-bit values split in two."""
    head = struct.pack("<IHH16s16sIIIIII8sIHHIII20sHH16sIHHII", DISKMAGIC, 12, 0, b"test", b"",
                       512, 63, 255, 1, 16065, secperunit & 0xFFFFFFFF, b"uid12345", 0, 0, 0, 0, 0, 0, b"",
                       secperunit >> 32, 1, b"", DISKMAGIC, 0, 16, 8192, 8192)
    label = bytearray(head)
    for size, off, fstype in parts:
        label += struct.pack("<IIHHBBH", size & 0xFFFFFFFF, off & 0xFFFFFFFF, off >> 32, size >> 32, fstype,
                             0x21 if fstype == FS_BSDFFS else 0, 0)
    label += bytes(16 * (16 - len(parts)))
    struct.pack_into("<H", label, 136, _cksum(label, 16, "<"))
    return bytes(label)


def _ffs(tmp: Path, tag: str, version: int, endian: str, seed: int, size: int) -> tuple[Path, Path]:
    tree = make_tree(tmp / f"tree-{tag}-{seed}", seed)
    img = tmp / f"{tag}-{seed}.ffs"
    makefs(img, tree, version, endian, size)
    return img, tree


def _place(disk: Disk, tmp: Path, name: str, start: int, version: int, endian: str, seed: int,
           size: int = 4 * MiB) -> None:
    img, tree = _ffs(tmp, name, version, endian, seed, size)
    with open(img, "rb") as src, open(disk.path, "r+b") as dst:  # streamed: see digest()
        dst.seek(start)
        shutil.copyfileobj(src, dst, MiB)
    disk.filesystems.append(Fs(name, start, size, tree, version, endian))


def netbsd_mbr(tmp: Path, *, order: str = "<", version: int = 2, endian: str = "le") -> Disk:
    """MBR slice 1 of type 0xA9 at 1 MiB; NetBSD label at its sector 1 with absolute offsets; ``a`` an
    FFS 64 sectors into the slice, ``b`` swap after it, ``c`` the slice, ``d`` the disk."""
    disk = Disk(tmp / "netbsd.img")
    total = 16 * MiB
    blank(disk.path, total)
    sfdisk(disk.path, "label: dos\nstart=2048, type=a9\n")
    slice_start, slice_size = 2048, total // SECTOR - 2048
    a_off = slice_start + 64
    parts = [(8192, a_off, FS_BSDFFS), (2048, a_off + 8192, FS_SWAP), (slice_size, slice_start, FS_UNUSED),
             (total // SECTOR, 0, FS_UNUSED)]
    put(disk.path, (slice_start + 1) * SECTOR, bsd_label(parts, order=order, secperunit=total // SECTOR))
    _place(disk, tmp, "s1a", a_off * SECTOR, version, endian, 11)
    return disk


def freebsd_mbr(tmp: Path) -> Disk:
    """MBR slice 1 of type 0xA5; a bsdlabel at its sector 1 with offsets relative to ``c`` (0)."""
    disk = Disk(tmp / "freebsd.img")
    total = 12 * MiB
    blank(disk.path, total)
    sfdisk(disk.path, "label: dos\nstart=2048, type=a5\n")
    slice_start, slice_size = 2048, total // SECTOR - 2048
    parts = [(8192, 16, FS_BSDFFS), (0, 0, 0), (slice_size, 0, FS_UNUSED)]
    put(disk.path, (slice_start + 1) * SECTOR, bsd_label(parts, nparts=8, secperunit=slice_size))
    _place(disk, tmp, "s1a", (slice_start + 16) * SECTOR, 2, "le", 12)
    return disk


def openbsd_mbr(tmp: Path) -> Disk:
    """MBR slice 2 of type 0xA6 after a Linux slice; OpenBSD v1 label, absolute offsets."""
    disk = Disk(tmp / "openbsd.img")
    total = 16 * MiB
    blank(disk.path, total)
    sfdisk(disk.path, "label: dos\nstart=2048, size=4096, type=83\nstart=8192, type=a6\n")
    slice_start = 8192
    a_off = slice_start + 128
    parts = [(8192, a_off, FS_BSDFFS), (0, 0, 0), (total // SECTOR, 0, FS_UNUSED)]
    put(disk.path, (slice_start + 1) * SECTOR, openbsd_label(parts, secperunit=total // SECTOR))
    _place(disk, tmp, "s2a", a_off * SECTOR, 1, "le", 13)
    return disk


def gpt_freebsd(tmp: Path) -> Disk:
    """A GPT partition of FreeBSD's ``freebsd`` type (a500) holding a bsdlabel, ``a`` 16 sectors in."""
    disk = gpt_disk(tmp, "gptbsd", [("8300", 1, None), ("a500", 8, None)], total=16 * MiB)
    out = subprocess.run(["sgdisk", "-i2", str(disk.path)], check=True, capture_output=True, text=True).stdout
    first = int(out.split("First sector: ")[1].split()[0])
    last = int(out.split("Last sector: ")[1].split()[0])
    parts = [(8192, 16, FS_BSDFFS), (0, 0, 0), (last - first + 1, 0, FS_UNUSED)]
    put(disk.path, (first + 1) * SECTOR, bsd_label(parts, nparts=8, secperunit=last - first + 1))
    _place(disk, tmp, "p2a", (first + 16) * SECTOR, 2, "be", 15)
    return disk


def logical_mbr(tmp: Path) -> Disk:
    """Primary p1, extended p2 holding logicals p5 (Linux, no FFS) and p6 (FFS, big-endian UFS1)."""
    disk = Disk(tmp / "logical.img")
    blank(disk.path, 20 * MiB)
    sfdisk(disk.path, "label: dos\nstart=2048, size=2048, type=83\nstart=4096, type=5\n"
                      "start=6144, size=4096, type=83\nstart=12288, size=8192, type=a9\n")
    _place(disk, tmp, "p6", 12288 * SECTOR, 1, "be", 14)
    return disk


def gpt_disk(tmp: Path, name: str, layout: list[tuple[str, int, str | None]], *,
             device: str | None = None, secsize: int = SECTOR, total: int = 32 * MiB) -> Disk:
    """A GPT made by sgdisk: ``layout`` is (type code, size in MiB, "v2le"-style FFS or None) from 1 MiB
    on; ``device`` (a loop device of ``secsize``-byte sectors over the image) when it is not 512."""
    disk = Disk(tmp / f"{name}.img")
    blank(disk.path, total)
    args = []
    for i, (code, mib, _) in enumerate(layout, 1):
        args += [f"-n{i}:0:+{mib}M", f"-t{i}:{code}"]
    sgdisk(device or disk.path, "-o", *args)
    out = subprocess.run(["sgdisk", "-p", device or str(disk.path)], check=True, capture_output=True, text=True)
    starts = {int(line.split()[0]): int(line.split()[1]) for line in out.stdout.splitlines()
              if line.strip()[:1].isdigit() and len(line.split()) > 3}
    for i, (_, _, ffs) in enumerate(layout, 1):
        if ffs:
            _place(disk, tmp, f"p{i}", starts[i] * secsize, int(ffs[1]), ffs[2:], 20 + i)
    return disk


def mmls(path: Path, *extra: str) -> list[tuple[int, int]]:
    """(start, length) in sectors of each allocated partition ``mmls`` lists."""
    out = subprocess.run(["mmls", "-a", *extra, str(path)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[0].endswith(":") and cols[0][:3].isdigit() and cols[2].isdigit():
            rows.append((int(cols[2]), int(cols[4])))
    return rows


def digest(path: Path, start: int = 0, end: int | None = None) -> str:
    """SHA-256 of ``path[start:end]``, read in 1 MiB pieces: the tests never hold a whole disk in
    memory (a 24 MiB bytes object would raise glibc's mmap threshold and the process's peak RSS for
    every test after it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = (end if end is not None else path.stat().st_size) - start
        while left > 0:
            chunk = f.read(min(MiB, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()
