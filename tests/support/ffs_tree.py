"""The source tree FFS images are made from, the makefs driver, and a snapshot of what to expect.

``make_tree`` writes every kind of node that ``makefs -t ffs`` can store: regular files of sizes
that land on fragment and block edges, a file that needs double-indirect blocks on 4 and 8 KiB
block sizes, sparse files, fast and slow symlinks on both sides of the inline-length rule,
FIFOs, character and block devices (mknod; only as root), hard links, names of 1 and 255 bytes,
a 10,000-entry directory and 40 levels of nesting. All timestamps are fixed so images are
reproducible. ``snapshot`` records what the host says about that tree; tests compare p2k's view
of an image against it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

MTIME = 1_500_000_000  # fixed seconds; each node gets MTIME + a small index
DINDIR_SIZE = (12 + 2048 + 3) * 8192  # double indirect on UFS1/UFS2 with 4 KiB and 8 KiB blocks
BIGDIR_ENTRIES = 10_000


def _content(seed: int, n: int) -> bytes:
    """Deterministic, incompressible-looking bytes (so a wrong block shows as a wrong hash)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:n])


def make_tree(root: Path, *, bigdir: int = BIGDIR_ENTRIES, dindir_size: int = DINDIR_SIZE,
              devices: bool | None = None) -> Path:
    """Create the test tree under ``root`` (which must not exist) and return it."""
    root.mkdir(parents=True)
    if devices is None:
        devices = os.geteuid() == 0
    files: dict[str, int] = {
        "empty": 0, "one": 1, "f511": 511, "f512": 512, "f513": 513, "f1023": 1023, "f4095": 4095,
        "f4096": 4096, "f4097": 4097, "f8191": 8191, "f8193": 8193, "f65537": 65537,
        "twelve_blocks_4k": 12 * 4096, "indirect_4k": 12 * 4096 + 1, "f200k": 200_000,
        "f1m": 1 << 20,
    }
    for i, (name, size) in enumerate(files.items()):
        (root / name).write_bytes(_content(i, size))
    (root / "README").write_text("p2k FFS test tree.\nEvery file here is checked byte for byte.\n")
    if dindir_size:
        (root / "dindir").write_bytes(_content(99, dindir_size))
    # sparse files: a hole at the start, in the middle, and at the end
    with open(root / "sparse", "wb") as f:
        f.seek(300_000)
        f.write(b"middle")
        f.seek(2_000_000)
        f.write(b"end")
    with open(root / "sparse_tail", "wb") as f:
        f.write(b"head")
        f.truncate(1_000_000)
    # names of 1 and 255 bytes
    (root / "x").write_bytes(b"one-byte name\n")
    (root / ("n" * 255)).write_bytes(b"255-byte name\n")
    sub = root / "sub"
    sub.mkdir()
    (sub / ("d" * 255)).mkdir()
    (sub / "a").write_text("a\n")
    # symlinks either side of the inline rule (60 bytes UFS1, 120 UFS2; strictly less is inline)
    for n in (1, 59, 60, 61, 119, 120, 121, 1000):
        os.symlink(("target/" * 200)[:n], root / f"link{n}")
    os.symlink("README", root / "link_readme")
    os.symlink("sub/a", root / "link_sub")
    os.symlink("/nonexistent/dangling", root / "link_dangling")
    # hard links (inside one directory and across directories)
    (root / "hard1").write_bytes(b"hard link content\n")
    os.link(root / "hard1", root / "hard2")
    os.link(root / "hard1", sub / "hard3")
    # special files
    os.mkfifo(root / "fifo", 0o640)
    if devices:
        os.mknod(root / "chardev", 0o620 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "blockdev", 0o660 | stat.S_IFBLK, os.makedev(7, 1))
    # owners and modes
    os.chown(root / "one", 1000, 100)
    os.chown(root / "f511", 65534, 65533)
    os.chmod(root / "f512", 0o4755)
    os.chmod(root / "f513", 0o2711)
    os.chmod(sub, 0o1777)
    os.chmod(root / "empty", 0o000)
    # deep nesting
    d = root / "deep"
    for i in range(40):
        d = d / f"level{i:02d}"
    d.mkdir(parents=True)
    (d / "bottom").write_text("at the bottom\n")
    # the big directory
    big = root / "bigdir"
    big.mkdir()
    for i in range(bigdir):
        (big / f"entry{i:05d}").touch()
    (big / "nonempty").write_bytes(_content(7, 3000))
    # Fixed times, deepest first so that directory times are not disturbed afterwards. Whole
    # seconds: Debian's makefs (the MirBSD port) stores no nanoseconds.
    paths = sorted(root.rglob("*"), key=lambda p: -len(p.parts))
    for i, p in enumerate([*paths, root]):
        t = (MTIME + i % 1000) * 1_000_000_000
        os.utime(p, ns=(t, t), follow_symlinks=False)
    return root


@dataclass(frozen=True)
class Node:
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    rdev: int
    target: bytes | None
    digest: str | None
    ino_key: tuple[int, int]


def snapshot(root: Path) -> dict[bytes, Node]:
    """Relative path (bytes, ``b""`` for the root) → what the host says about it."""
    out: dict[bytes, Node] = {}
    broot = bytes(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        for name in [b"", *dirnames, *filenames] if dirpath == broot else [*dirnames, *filenames]:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            rel = os.path.relpath(p, broot) if name or dirpath != broot else b""
            if rel == b".":
                rel = b""
            target = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[rel] = Node(st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                            st.st_size if not stat.S_ISDIR(st.st_mode) else -1,
                            st.st_mtime_ns, st.st_rdev, target, digest, (st.st_dev, st.st_ino))
    return out


def makefs(img: Path, tree: Path, *, version: int, endian: str, bsize: int, fsize: int,
           density: int | None = None, size: str | None = None, extra: tuple[str, ...] = ()) -> Path:
    """Run the real NetBSD ``makefs -t ffs`` (Debian's MirBSD port). The size is given explicitly
    (``-s``) or as generous free-block slack, since makefs' own estimate can come up short."""
    opts = [f"version={version}", f"bsize={bsize}", f"fsize={fsize}"]
    if density:
        opts.append(f"density={density}")
    cmd = ["makefs", "-t", "ffs", "-B", endian, "-o", ",".join(opts)]
    cmd += ["-s", size] if size else ["-b", "10%", "-f", "10%"]
    cmd += [*extra, str(img), str(tree)]
    subprocess.run(cmd, check=True, capture_output=True)
    return img


# ---- p2k's side ----------------------------------------------------------------------------------
def mount_image(img: Path | str, *, memlimit: str | None = None, key: str = "/dev/dk",
                mnt: str = "/mnt") -> object:
    """A fresh kernel with ``img`` mounted read-only at ``mnt``; the caller halts it."""
    import p2k

    k = p2k.Kernel(memlimit=memlimit)
    k.etfs_register(key, str(img), p2k.ETFS_BLK, readonly=True)
    k.sys.mkdir(mnt, 0o755)
    k.sys.mount("ffs", mnt, p2k.MNT_RDONLY, {"fspec": key})
    return k


def p2k_snapshot(k: object, mnt: str = "/mnt", *, read_data: bool = True,
                 max_read: int | None = None) -> dict[bytes, Node]:
    """The same record as ``snapshot``, taken through p2k's syscalls (lstat, listdir, readlink,
    open/read). Directories seen twice (a cycle in a corrupt image) are not entered again."""
    sys_ = k.sys  # type: ignore[attr-defined]
    out: dict[bytes, Node] = {}
    seen_dirs: set[int] = set()
    stack: list[bytes] = [b""]
    base = mnt.encode()
    while stack:
        rel = stack.pop()
        path = base + (b"/" + rel if rel else b"")
        st = sys_.lstat(path)
        target = sys_.readlink(path) if stat.S_ISLNK(st.st_mode) else None
        digest = None
        if stat.S_ISREG(st.st_mode) and read_data:
            h = hashlib.sha256()
            fd = sys_.open(path, os.O_RDONLY)
            try:
                left = st.st_size if max_read is None else min(st.st_size, max_read)
                while left > 0:
                    chunk = sys_.read(fd, min(left, 1 << 20))
                    if not chunk:
                        break
                    h.update(chunk)
                    left -= len(chunk)
            finally:
                sys_.close(fd)
            digest = h.hexdigest()
        out[rel] = Node(st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                        st.st_size if not stat.S_ISDIR(st.st_mode) else -1,
                        st.st_mtime_ns, st.st_rdev, target, digest, (st.st_dev, st.st_ino))
        if stat.S_ISDIR(st.st_mode) and st.st_ino not in seen_dirs:
            seen_dirs.add(st.st_ino)
            for name in sys_.listdir(path):
                stack.append(rel + b"/" + name if rel else name)
    return out
