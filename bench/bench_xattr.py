"""getxattr through the mount: p2k (FFS, attributes in the UFS2 ext area) against fuse2fs (ext4,
attributes in the inode) in the same run.

One file on each with 20 user attributes of 17 bytes (all inside the 1 KiB ext4 inode); the timed
loop is N ``os.getxattr`` calls cycling over them (each a FUSE GETXATTR round trip: the host
kernel caches no xattrs), then N/10 ``os.listxattr``. Printed: seconds each, ratio = fuse2fs
time / p2k time (p2k's speed relative to fuse2fs; 1.00 = equal; aim >= 0.5, issue 13), and each
daemon's CPU per request, which a loaded machine disturbs far less than the wall times.
Run as root: ``python bench/bench_xattr.py [N]`` (N = 10000); ``P2K_FUSE_TRANSPORT=pyfuse3`` in
the environment measures p2k on its pyfuse3 transport instead of the direct one.

Where p2k's time goes (py-spy of the daemon, 2026-11-30). On pyfuse3 + trio a getxattr cost the
daemon 24–30 us of CPU (ratio 0.22–0.61): 45% inside pyfuse3's Cython dispatch and reply, 15–25% in
trio's scheduler and epoll, 17% in p2k. On the direct /dev/fuse transport (devfuse.py, the default)
it costs 11 us, fuse2fs 9–18 in the same runs: of the daemon's busy time about a third is the kernel work
(port, vnode, the permission check, the parsed area: 4–6 us), two thirds the ``readv`` and
``writev`` on /dev/fuse that every FUSE daemon pays; ratio 1.4–1.7.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fuse import Daemon, fuse2fs_daemon, p2k_daemon  # noqa: E402

P2K = str(Path(sys.executable).parent / "p2k")
NAMES = [f"user.attr{i}" for i in range(20)]


def prepare(mnt: Path) -> Path:
    f = mnt / "f"
    f.write_bytes(b"x" * 100)
    for i, n in enumerate(NAMES):
        os.setxattr(f, n, f"value number {i:04d}".encode())
    return f


def loop_get(f: Path, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        os.getxattr(f, NAMES[i % len(NAMES)])
    return time.perf_counter() - t


def loop_list(f: Path, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        os.listxattr(f)
    return time.perf_counter() - t


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    if os.geteuid() != 0 or not shutil.which("fuse2fs"):
        raise SystemExit("bench_xattr: run as root with fuse2fs installed")
    work = Path(tempfile.mkdtemp(prefix="p2k-bench-xattr-"))
    try:
        ffs, ext4 = work / "ffs.img", work / "ext4.img"
        subprocess.run([P2K, "newfs", "-O2", "-s", "64m", str(ffs)], check=True, capture_output=True)
        subprocess.run(["mkfs.ext4", "-F", "-q", "-b", "4096", "-I", "1024", str(ext4), "64M"], check=True)
        results = {}
        for label, start in (("p2k", lambda: p2k_daemon(str(ffs), work / "m-p2k", "rw")),
                             ("fuse2fs", lambda: fuse2fs_daemon(ext4, work / "m-f2fs"))):
            d: Daemon = start()
            try:
                f = prepare(d.mnt)
                loop_get(f, 200)  # warm up: lookups, caches
                c0 = d.cpu_s()
                get = loop_get(f, n)
                c1 = d.cpu_s()
                results[label] = (get, loop_list(f, n // 10), (c1 - c0) / n * 1e6)
            finally:
                d.stop()
        (pg, pl, pc), (fg, fl, fc) = results["p2k"], results["fuse2fs"]
        print(f"{n} getxattr:      p2k {pg:7.3f} s   fuse2fs {fg:7.3f} s   ratio {fg / pg:.2f} (aim >= 0.5)   "
              f"daemon CPU p2k {pc:.1f} us/request, fuse2fs {fc:.1f}")
        print(f"{n // 10} listxattr:    p2k {pl:7.3f} s   fuse2fs {fl:7.3f} s   ratio {fl / pl:.2f}")
        print("ratio = fuse2fs time / p2k time (p2k's speed relative to fuse2fs; 1.00 = equal)")
    finally:
        for m in ("m-p2k", "m-f2fs"):
            subprocess.run(["fusermount3", "-u", "-z", str(work / m)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
