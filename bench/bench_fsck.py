"""p2k fsck -n against e2fsck -fn on the same tree: wall time and peak RSS, printed as ratios.

A tree of N small files (default 100,000, in directories of 100, sizes 0..16 KiB) is generated
once; NetBSD makefs builds a 2 GiB UFS2 image of it and ``mkfs.ext4 -d`` an ext4 image of the same
size. Each checker runs as a child process; its peak RSS comes from ``wait4``. Usage:

    python bench/bench_fsck.py [--files N] [--size 2g] [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_tree(root: Path, nfiles: int) -> None:
    root.mkdir(parents=True)
    per_dir = 100
    blob = os.urandom(16384)
    for i in range(nfiles):
        d = root / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir()
        size = (i * 2654435761) % 16385 if i % 10 else 0
        (d / f"f{i:06d}").write_bytes(blob[:size])


def run(cmd: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit status) of one child process."""
    # Without PYTHONDONTWRITEBYTECODE (a session environment may set it): otherwise every run
    # would time the compiler on p2k's ~100 modules, which no installed p2k pays.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, ru = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, ru.ru_maxrss, os.waitstatus_to_exitcode(status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--size", default="2g")
    ap.add_argument("--work", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    for tool in ("makefs", "mkfs.ext4", "e2fsck"):
        if shutil.which(tool) is None:
            print(f"bench_fsck: {tool} not installed", file=sys.stderr)
            return 1
    work = Path(a.work or tempfile.mkdtemp(prefix="bench_fsck."))
    tree, ufs, ext = work / "tree", work / "ufs2.img", work / "ext4.img"
    try:
        if not tree.exists():
            t = time.perf_counter()
            make_tree(tree, a.files)
            print(f"tree: {a.files} files in {time.perf_counter() - t:.1f}s")
        if not ufs.exists():
            subprocess.run(["makefs", "-t", "ffs", "-o", "version=2", "-s", a.size, str(ufs), str(tree)],
                           check=True, capture_output=True)
        if not ext.exists():
            subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(ext), a.size], check=True,
                           capture_output=True)
        p2k = [sys.executable, "-m", "p2k.cli.main", "fsck", "-fn", str(ufs)]
        e2 = ["e2fsck", "-fn", str(ext)]
        best: dict[str, tuple[float, int]] = {}
        for name, cmd in (("p2k fsck -fn", p2k), ("e2fsck -fn", e2)):
            runs = [run(cmd) for _ in range(a.runs)]
            codes = {code for _w, _r, code in runs}
            if codes != {0}:
                # Still a full check; say so (Debian's makefs has left UFS2 images with a few
                # unwritten inodes that fsck rightly reports).
                print(f"{name}: exit status {sorted(codes)} (inconsistencies reported)")
            best[name] = (min(r[0] for r in runs), max(r[1] for r in runs))
            print(f"{name:14s} wall {best[name][0]:7.2f}s  peak RSS {best[name][1] / 1024:7.1f} MiB")
        (pw, pr), (ew, er) = best["p2k fsck -fn"], best["e2fsck -fn"]
        print(f"ratio p2k/e2fsck: wall {pw / ew:.2f}x  RSS {pr / er:.2f}x  (aim: wall within 5x)")
        return 0
    finally:
        if not a.keep and a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
