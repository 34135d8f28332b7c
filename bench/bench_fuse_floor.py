"""What a FUSE request costs before any file system work: the floor under p2k's metadata figures.

Four daemons answer the same fresh-mount walk (``lstat`` of 10,000 files in 100 directories: one
LOOKUP per name, nothing else), each in its own process so that its CPU is its own:

* ``p2k``: ``p2k mount`` of an FFS image of the tree (makefs), the real thing, on its default
  direct /dev/fuse transport (p2k/puffs/devfuse.py);
* ``p2k, pyfuse3``: the same on ``-o transport=pyfuse3``, the design before devfuse.py;
* ``pyfuse3+trio``: a file system that knows the tree by arithmetic and does no work, served
  through pyfuse3 and trio as p2k's pyfuse3 transport is (the floor of that design);
* ``raw loop``: the same do-nothing file system answering /dev/fuse itself in pure Python (read
  a request, ``struct`` in and out, write the reply; mounted through fusermount3), the floor of
  the direct transport;
* ``fuse2fs``: the C peer of bench_fuse.py, on an ext4 image of the tree.

Printed per daemon: wall time, the daemon's CPU per request, and its resident size once mounted
next to a bare interpreter's (the aim's figure, as bench_fuse.py measures it), then after the walk
(p2k's includes what its kernel now caches: 10,100 inodes' blocks, about 3 MiB, bounded by
``-o memlimit``), so that issue 16's aims (metadata ≥ 1.0× fuse2fs, RSS ≤ 2× bare Python) can be
judged against what each design can reach at best. Run as root: ``.venv/bin/python bench/bench_fuse_floor.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_fuse import python_rss_kib

NDIRS, NFILES = 100, 100
P2K = str(Path(sys.executable).with_name("p2k"))

# ---- the do-nothing tree: node 1 the root, 2+d directory d, 1000+100d+i file i of directory d ----
S_IFDIR, S_IFREG = 0o040000, 0o100000


def tree_lookup(parent: int, name: bytes) -> int | None:
    try:
        if parent == 1 and name.startswith(b"d"):
            d = int(name[1:])
            return 2 + d if 0 <= d < NDIRS else None
        if 2 <= parent < 2 + NDIRS and name.startswith(b"file"):
            i = int(name[4:])
            return 1000 + (parent - 2) * NFILES + i if 0 <= i < NFILES else None
    except ValueError:
        return None
    return None


def tree_mode(node: int) -> int:
    return (S_IFDIR | 0o755) if node < 1000 else (S_IFREG | 0o644)


# ---- the raw loop -------------------------------------------------------------------------------
IN_HDR = struct.Struct("<IIQQIIIHH")  # fuse_in_header
OUT_HDR = struct.Struct("<IiQ")  # fuse_out_header
ATTR = "QQQQQQIIIIIIIIII"  # fuse_attr
ENTRY_OUT = struct.Struct("<IiQ" + "QQQQII" + ATTR)  # header + fuse_entry_out
ATTR_OUT = struct.Struct("<IiQ" + "QII" + ATTR)  # header + fuse_attr_out
INIT_OUT = struct.Struct("<IiQ" + "IIIIHHIIHHII" + "6I")  # header + fuse_init_out (7.31 layout + pad)
LOOKUP, FORGET, GETATTR, INIT, DESTROY, BATCH_FORGET, INTERRUPT = 1, 2, 3, 26, 38, 42, 36
NO_REPLY = (FORGET, BATCH_FORGET, INTERRUPT)


def fusermount(mnt: str, opts: str) -> int:
    """The /dev/fuse descriptor of a new mount at ``mnt``, as libfuse gets it: fusermount3 opens
    and mounts it and passes it back over a socket (so this works unprivileged too)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
    subprocess.run(["fusermount3", "-o", opts, "--", mnt], env=env, pass_fds=(theirs.fileno(),), check=True)
    theirs.close()
    _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    ours.close()
    return fds[0]


def raw_serve(mnt: str) -> None:
    fd = fusermount(mnt, "default_permissions,fsname=floor,subtype=floor")
    now = int(time.time())
    read, write = os.read, os.write
    unpack_in, entry, attr = IN_HDR.unpack_from, ENTRY_OUT.pack, ATTR_OUT.pack
    bufsize = 128 * 1024 + 4096
    print("ready", flush=True)
    while True:
        try:
            req = read(fd, bufsize)
        except OSError as e:
            if e.errno == 19:  # ENODEV: unmounted
                return
            if e.errno in (4, 2):  # EINTR, ENOENT (a request interrupted before we read it)
                continue
            raise
        _, op, unique, node, _, _, _, _, _ = unpack_in(req)
        if op == LOOKUP:
            child = tree_lookup(node, req[40:-1])
            if child is None:
                write(fd, OUT_HDR.pack(16, -2, unique))
            else:
                write(fd, entry(ENTRY_OUT.size, 0, unique, child, 0, 3600, 3600, 0, 0,
                                child, 0, 0, now, now, now, 0, 0, 0, tree_mode(child), 1, 0, 0, 0, 4096, 0))
        elif op == GETATTR:
            write(fd, attr(ATTR_OUT.size, 0, unique, 3600, 0, 0,
                           node, 0, 0, now, now, now, 0, 0, 0, tree_mode(node), 1, 0, 0, 0, 4096, 0))
        elif op == INIT:
            major, minor, readahead, _ = struct.unpack_from("<IIII", req, 40)
            write(fd, INIT_OUT.pack(INIT_OUT.size, 0, unique, 7, min(minor, 31), readahead, 0,
                                    16, 12, 128 * 1024, 1, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        elif op in NO_REPLY:
            continue
        else:
            write(fd, OUT_HDR.pack(16, -38, unique))  # ENOSYS
            if op == DESTROY:
                return


# ---- the same tree through pyfuse3 + trio --------------------------------------------------------
def pyfuse3_serve(mnt: str) -> None:
    import pyfuse3
    import trio

    now = time.time_ns()

    def entry(node: int) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = node
        e.st_mode = tree_mode(node)
        e.st_nlink = 1
        e.st_blksize = 4096
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = now
        e.attr_timeout = e.entry_timeout = 3600
        return e

    class Floor(pyfuse3.Operations):
        async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
            child = tree_lookup(parent_inode, name)
            if child is None:
                raise pyfuse3.FUSEError(2)
            return entry(child)

        async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
            return entry(inode)

    pyfuse3.init(Floor(), mnt, {"default_permissions", "fsname=floor", "subtype=floor"})
    print("ready", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)


# ---- the harness ---------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def walk(mnt: Path) -> float:
    paths = [f"{mnt}/d{d:03d}/file{i:03d}" for d in range(NDIRS) for i in range(NFILES)]
    t = time.perf_counter()
    for p in paths:
        os.lstat(p)
    return time.perf_counter() - t


def measure(label: str, argv: list[str], mnt: Path) -> tuple[float, float, int, int]:
    mnt.mkdir(exist_ok=True)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not os.path.ismount(mnt):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{label} failed to mount: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.02)
        c0, start = cpu_s(proc.pid), rss_kib(proc.pid)
        secs = walk(mnt)
        return secs, cpu_s(proc.pid) - c0, start, rss_kib(proc.pid)
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", choices=("raw", "pyfuse3"), help=argparse.SUPPRESS)
    ap.add_argument("mnt", nargs="?", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        (raw_serve if a.serve == "raw" else pyfuse3_serve)(a.mnt)
        return 0
    if os.geteuid() != 0:
        raise SystemExit("bench_fuse_floor: run as root (fuse2fs and the mounts)")
    work = Path(tempfile.mkdtemp(prefix="p2k-bench-floor-", dir="/var/tmp"))
    try:
        tree = work / "tree"
        for d in range(NDIRS):
            (tree / f"d{d:03d}").mkdir(parents=True)
            for i in range(NFILES):
                (tree / f"d{d:03d}" / f"file{i:03d}").touch()
        ffs, ext4 = work / "tree.ffs", work / "tree.ext4"
        subprocess.run(["makefs", "-t", "ffs", "-o", "version=1", "-s", "64m", str(ffs), str(tree)], check=True,
                       capture_output=True)
        subprocess.run(["mkfs.ext4", "-q", "-d", str(tree), str(ext4), "64m"], check=True, capture_output=True)
        me = [sys.executable, __file__, "--serve"]
        rows = [("p2k", [P2K, "mount", "-f", "-t", "ffs", "-o", "ro", str(ffs), str(work / "m")]),
                ("p2k, pyfuse3", [P2K, "mount", "-f", "-t", "ffs", "-o", "ro,transport=pyfuse3", str(ffs),
                                  str(work / "m")]),
                ("pyfuse3+trio, no fs work", [*me, "pyfuse3", str(work / "m")]),
                ("raw loop, no fs work", [*me, "raw", str(work / "m")]),
                ("fuse2fs", ["fuse2fs", "-f", str(ext4), str(work / "m"), "-o", "ro"])]
        n = NDIRS * NFILES + NDIRS
        bare = python_rss_kib("pass")
        results = {label: measure(label, argv, work / "m") for label, argv in rows}
        f2_secs = results["fuse2fs"][0]
        print(f"fresh-mount lstat of {NDIRS * NFILES} files in {NDIRS} directories ({n} LOOKUPs); "
              f"bare Python RSS {bare / 1024:.1f} MiB")
        for label, (secs, cpu, start, rss) in results.items():
            print(f"  {label:<26} {secs:6.3f} s  ratio {f2_secs / secs:5.2f} (aim >= 1)   daemon CPU "
                  f"{cpu / n * 1e6:5.1f} us/request   RSS {start / 1024:5.1f} MiB = {start / bare:4.2f}x bare "
                  f"(aim <= 2), after the walk {rss / 1024:5.1f} MiB")
        print("ratio = fuse2fs time / this daemon's time")
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(work / "m")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
