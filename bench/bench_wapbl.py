#!/usr/bin/env python3
"""WAPBL in p2k: replay cost, and ``-o log`` against today's ordered write-back, in one run.

1. Creates: N files of 4 KiB in 100 directories on a fresh UFS2 image with 64 MiB after the file
   system (then unmount), mounted ordered (p2k's default) and with ``-o log``; files/s and host
   fsyncs, and the log/ordered ratio. The issue's aim is ≥ 2× ordered; see the printout.
2. The same with an fsync after every 10th file (where a journal's commits are what is paid).
   Both next to NetBSD's rump kernel doing the same on the same kind of image (its default mount,
   synchronous metadata, and ``-o log``) when built here: ``P2K_PEERS``, see bench/peers.py.
3. Replay: a read-only mount of every NetBSD-made dirty fixture (../shared/fixtures/wapbl) with
   its log laid over the device, walking the tree, against the same walk with the log ignored
   (the journal flag cleared in a copy): the cost of the overlay.

Usage: ``[P2K_PEERS=/work/peers] python bench/bench_wapbl.py [--files 10000] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import missing, peer, rump_creates  # noqa: E402

import p2k  # noqa: E402
from p2k.cli.main import main as p2k_main  # noqa: E402
from p2k.etfs.device import Device  # noqa: E402
from p2k.fs.ffs import fs as ffs_fs  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "wapbl"


class _Count:
    fsyncs = 0


def _count_fsyncs() -> None:
    orig = Device.fsync

    def fsync(self: Device) -> None:
        _Count.fsyncs += 1
        orig(self)

    Device.fsync = fsync  # type: ignore[method-assign]


def _image(path: Path) -> Path:
    assert p2k_main(["newfs", "-V", "0", "-O", "2", "-s", "256m", str(path)]) == 0
    with open(path, "r+b") as f:
        f.truncate((256 << 20) + (64 << 20))
    return path


def creates(work: Path, n: int, log: bool, every_fsync: int) -> tuple[float, int]:
    img = _image(work / f"c-{int(log)}.img")
    k = p2k.Kernel(env={})
    k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
    k.sys.mkdir("/mnt", 0o755)
    _Count.fsyncs = 0
    t0 = time.perf_counter()
    k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk", **({"log": ""} if log else {})})
    for d in range(100):
        k.sys.mkdir(f"/mnt/d{d}", 0o755)
    data = b"x" * 4096
    for i in range(n):
        fd = k.sys.open(f"/mnt/d{i % 100}/f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
        k.sys.write(fd, data)
        if every_fsync and i % every_fsync == 0:
            k.sys.fsync(fd)
        k.sys.close(fd)
    k.sys.unmount("/mnt")
    dt = time.perf_counter() - t0
    k.halt()
    img.unlink()
    return n / dt, _Count.fsyncs


def netbsd_creates(work: Path, n: int, log: bool, every_fsync: int) -> float | None:
    """The same creates through NetBSD's rump kernel (mount to unmount timed, as above); files/s,
    or None without the peer."""
    if peer("rump_creates") is None:
        return None
    img = _image(work / f"nb-{int(log)}.img")
    try:
        r = rump_creates(str(img), "log" if log else "sync", n, 100, 4096, every_fsync, "rr")
    finally:
        img.unlink()
    return None if r is None else n / (r["mount"] + r["work"] + r["unmount"])


def _walk(k: p2k.Kernel, top: str) -> int:
    n = 0
    for name in k.sys.listdir(top):
        p = f"{top}/{name}"
        st = k.sys.lstat(p)
        n += 1
        if st.st_mode & 0o170000 == 0o040000:
            n += _walk(k, p)
    return n


def replay(work: Path) -> None:
    if not (FIXTURES / "README.md").exists():
        print("replay: fixtures not present, skipped")
        return
    tot_with = tot_without = 0.0
    for name in ("f01", "f03", "d07", "d10", "s01", "s05", "s07"):
        img = work / f"{name}.img"
        with gzip.open(FIXTURES / f"{name}.img.gz") as f, open(img, "wb") as g:
            shutil.copyfileobj(f, g)
        plain = work / f"{name}-plain.img"
        shutil.copy(img, plain)
        raw = plain.read_bytes()
        sb = ffs_fs.find_superblock(lambda o, n, raw=raw: raw[o:o + n], len(raw))
        sb.fs_flags &= ~ffs_fs.FS_DOWAPBL
        with open(plain, "r+b") as f:
            f.seek(sb.loc)
            f.write(sb.encode())
        for path, label in ((img, "with"), (plain, "without")):
            best = 1e9
            for _ in range(3):
                k = p2k.Kernel(env={})
                k.etfs_register("/dev/dk", str(path), p2k.ETFS_BLK, readonly=True)
                k.sys.mkdir("/mnt", 0o755)
                t0 = time.perf_counter()
                k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
                _walk(k, "/mnt")
                best = min(best, time.perf_counter() - t0)
                k.halt()
            if label == "with":
                tot_with += best
            else:
                tot_without += best
    print(f"replay: ro mount + stat walk of 7 dirty fixtures: {tot_with * 1000:.0f} ms with the log "
          f"replayed in memory, {tot_without * 1000:.0f} ms ignoring it (ratio {tot_with / tot_without:.2f})")


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(dir=a.workdir, prefix="p2k-bench-wapbl-"))
    _count_fsyncs()
    try:
        for every, label in ((0, "creates, sync at unmount"), (10, "creates, fsync every 10th")):
            o_rate, o_sync = creates(work, a.files, False, every)
            l_rate, l_sync = creates(work, a.files, True, every)
            print(f"{label}: ordered {o_rate:,.0f} files/s ({o_sync} fsyncs), -o log {l_rate:,.0f} "
                  f"files/s ({l_sync} fsyncs); log/ordered {l_rate / o_rate:.2f}x (aim >= 2x)")
            nb_sync, nb_log = netbsd_creates(work, a.files, False, every), netbsd_creates(work, a.files, True, every)
            if nb_sync is None or nb_log is None:
                print(f"  {missing('rump kernel creates peer (rump_creates)')}")
            else:
                print(f"  NetBSD rump, same run: default mount (sync metadata) {nb_sync:,.0f} files/s, -o log "
                      f"{nb_log:,.0f} files/s; p2k/NetBSD: ordered/default {o_rate / nb_sync:.2f}x, "
                      f"log/log {l_rate / nb_log:.2f}x")
        replay(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run()
