"""Kernel-core benchmark: p2k's ``k.sys`` on tmpfs against the host kernel's ``os`` in /dev/shm.

Prints one table with both timings and the ratio for each loop, plus the 20,000-creates figure,
against the aims of issue 2: stat within 8x the host's, 256 MiB read at >= 50% of the host's
throughput, 20,000 creates in one directory in under 1 s.

    .venv/bin/python bench/bench_kernel.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import p2k

MiB = 1 << 20


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def best_of(n: int, fn: Callable[[], Any]) -> float:
    return min(timed(fn) for _ in range(n))


class Side:
    """One loop body per benchmark, for either ``k.sys`` (paths under /mnt) or ``os`` (under a
    /dev/shm directory)."""

    def __init__(self, api: Any, root: str) -> None:
        self.api = api
        self.root = root

    def stat_loop(self, n: int) -> None:
        stat, path = self.api.stat, self.root + "/dir/sub/cached"
        for _ in range(n):
            stat(path)

    def small_files(self, n: int) -> None:
        api, base = self.api, self.root + "/small/"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        data = b"x" * 100
        for i in range(n):
            fd = api.open(f"{base}f{i}", flags, 0o644)
            api.write(fd, data)
            api.close(fd)

    def big_write(self, total: int) -> None:
        api = self.api
        fd = api.open(self.root + "/big", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        chunk = b"\xa5" * MiB
        for _ in range(total // MiB):
            api.write(fd, chunk)
        api.close(fd)

    def big_read(self, total: int) -> None:
        api = self.api
        fd = api.open(self.root + "/big", os.O_RDONLY)
        got = 0
        while data := api.read(fd, MiB):
            got += len(data)
        api.close(fd)
        assert got == total, got

    def setup(self) -> None:
        for d in ("/dir", "/dir/sub", "/small"):
            self.api.mkdir(self.root + d, 0o755)
        fd = self.api.open(self.root + "/dir/sub/cached", os.O_WRONLY | os.O_CREAT, 0o644)
        self.api.close(fd)


def creates_in_one_dir(n: int) -> float:
    k = p2k.Kernel(env={}, nvnodes=1024)
    try:
        k.sys.mkdir("/mnt")
        k.sys.mount("tmpfs", "/mnt")
        k.sys.mkdir("/mnt/big")
        sys_open, sys_close = k.sys.open, k.sys.close
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

        def run() -> None:
            for i in range(n):
                sys_close(sys_open(f"/mnt/big/f{i}", flags, 0o644))

        t = timed(run)
        assert len(k.sys.listdir("/mnt/big")) == n
        return t
    finally:
        k.halt()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller loops (a smoke run)")
    args = ap.parse_args(argv)
    nstat = 20_000 if args.quick else 100_000
    nsmall = 2_000 if args.quick else 10_000
    total = (32 if args.quick else 256) * MiB

    k = p2k.Kernel(env={})
    k.sys.mkdir("/mnt")
    k.sys.mount("tmpfs", "/mnt")
    hostdir = tempfile.mkdtemp(prefix="p2k-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    sides = {"p2k": Side(k.sys, "/mnt"), "host": Side(os, hostdir)}
    rows: list[tuple[str, float, float, str, str]] = []
    try:
        for s in sides.values():
            s.setup()
        t = {name: best_of(3, lambda s=s: s.stat_loop(nstat)) / nstat for name, s in sides.items()}
        rows.append((f"stat cached path (x{nstat})", t["p2k"] * 1e6, t["host"] * 1e6, "us/call",
                     f"{t['p2k'] / t['host']:.1f}x slower (aim <= 8x)"))
        t = {name: timed(lambda s=s: s.small_files(nsmall)) for name, s in sides.items()}
        rows.append((f"open+write+close {nsmall} files", t["p2k"], t["host"], "s",
                     f"{t['p2k'] / t['host']:.1f}x slower"))
        tw = {name: timed(lambda s=s: s.big_write(total)) for name, s in sides.items()}
        tr = {name: best_of(2, lambda s=s: s.big_read(total)) for name, s in sides.items()}
        mb = total / MiB
        rows.append((f"write {mb:.0f} MiB in 1 MiB calls", mb / tw["p2k"], mb / tw["host"], "MiB/s",
                     f"{tw['host'] / tw['p2k'] * 100:.0f}% of host"))
        rows.append((f"read {mb:.0f} MiB in 1 MiB calls", mb / tr["p2k"], mb / tr["host"], "MiB/s",
                     f"{tr['host'] / tr['p2k'] * 100:.0f}% of host (aim >= 50%)"))
    finally:
        k.halt()
        shutil.rmtree(hostdir, ignore_errors=True)
    ncreate = 20_000
    tc = creates_in_one_dir(ncreate)
    rows.append((f"{ncreate} creates in one tmpfs dir", tc, float("nan"), "s",
                 f"{'meets' if tc < 1 else 'misses'} the < 1 s aim"))

    print(f"{'benchmark':<34} {'p2k':>10} {'host':>10} {'unit':<8} ratio")
    for name, a, b, unit, ratio in rows:
        hb = "-" if b != b else f"{b:10.2f}"
        print(f"{name:<34} {a:10.2f} {hb:>10} {unit:<8} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
