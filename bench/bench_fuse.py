"""p2k mount against fuse2fs (the C FUSE driver for ext2/3/4) on the same data in the same run.

Workloads (the issue's list): sequential write and read of 256 MiB in 1 MiB blocks, create 5,000
files, stat 10,000 entries, read 10,000 files of 4 KiB, and the daemon's peak RSS with
``-o memlimit=64m`` while a 1 GiB file is read. Every read workload starts from a fresh mount so
neither side is served from the host's FUSE page cache; the images themselves stay in the host's
page cache for both, so the figures compare the two daemons' own costs.

p2k serves reads from an FFS image made by ``makefs -t ffs`` from the same tree that
``mkfs.ext4 -d`` put into the ext4 image. Writes go to FFS when p2k's FFS mounts read-write, else
to tmpfs (said in the output). Ratios are p2k/fuse2fs throughput: above 1 means p2k is faster; each is
the median of ``--rounds`` alternated pairs (default 3), with the range beside it.
Each line also gives both daemons' CPU for the workload and its ratio (fuse2fs CPU / p2k CPU):
on a shared machine a neighbour's burst during one side's half moves the wall-time ratio by
±30%, the daemons' own CPU far less.

Run as root: ``.venv/bin/python bench/bench_fuse.py [--small]`` (``--small`` for a quick check).
p2k serves on its default transport (p2k/puffs/devfuse.py, /dev/fuse answered directly);
``P2K_FUSE_TRANSPORT=pyfuse3`` in the environment measures the pyfuse3 + trio one instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

P2K = str(Path(sys.executable).with_name("p2k"))
MiB = 1 << 20


class Daemon:
    """A FUSE daemon in the foreground (``-f``) whose mount is live."""

    def __init__(self, argv: list[str], mnt: Path) -> None:
        mnt.mkdir(parents=True, exist_ok=True)
        self.mnt = mnt
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not os.path.ismount(mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{argv[0]} failed to mount: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.02)

    def rss_kib(self, field: str = "VmRSS") -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self) -> float:
        """User + system CPU the daemon has used (a load-robust figure: wall times on a shared
        machine swing with the other tenants, a daemon's own CPU much less)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        subprocess.run(["fusermount3", "-u", str(self.mnt)], check=False, capture_output=True)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def p2k_daemon(image: str, mnt: Path, opts: str, fstype: str = "ffs") -> Daemon:
    return Daemon([P2K, "mount", "-f", "-t", fstype, "-o", opts, image, str(mnt)], mnt)


def fuse2fs_daemon(image: Path, mnt: Path, opts: str = "rw") -> Daemon:
    return Daemon(["fuse2fs", "-f", str(image), str(mnt), "-o", opts], mnt)


# ---- workloads: each returns seconds -------------------------------------------------------------
def seq_write(mnt: Path, size: int) -> float:
    block = os.urandom(MiB)
    t = time.perf_counter()
    fd = os.open(mnt / "seq.out", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    for _ in range(size // MiB):
        os.write(fd, block)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t


def seq_read(path: Path) -> float:
    t = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    while os.read(fd, MiB):
        pass
    os.close(fd)
    return time.perf_counter() - t


def create_files(mnt: Path, n: int, name: str = "created") -> float:
    d = mnt / name
    d.mkdir()
    t = time.perf_counter()
    for i in range(n):
        os.close(os.open(d / f"c{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
    return time.perf_counter() - t


def stat_entries(paths: list[Path]) -> float:
    t = time.perf_counter()
    for p in paths:
        os.lstat(p)
    return time.perf_counter() - t


def read_files(paths: list[Path]) -> float:
    t = time.perf_counter()
    for p in paths:
        with open(p, "rb") as f:
            f.read()
    return time.perf_counter() - t


def python_rss_kib(code: str) -> int:
    """Resident size of an interpreter after ``code`` (the peer for the daemon's RSS aim), read
    as the daemon's is (VmRSS). Not ``ru_maxrss``: subprocess starts the child with vfork, and
    the high-water mark survives the exec, so the figure was this benchmark's own size (15–20
    MiB where a bare interpreter is 11)."""
    out = subprocess.run([sys.executable, "-c", f"{code}\n"
                          "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


# ---- data ----------------------------------------------------------------------------------------
def build_tree(tree: Path, seq_size: int, big_size: int, nsmall: int) -> list[str]:
    tree.mkdir()
    for name, size in (("seq.bin", seq_size), ("big.bin", big_size)):
        with open(tree / name, "wb") as f:
            chunk = os.urandom(MiB)
            for _ in range(size // MiB):
                f.write(chunk)
    rels = []
    for i in range(nsmall):
        d = tree / "small" / f"d{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"s{i:05d}").write_bytes(os.urandom(4096))
        rels.append(f"small/d{i // 100:03d}/s{i:05d}")
    return rels


def make_images(work: Path, tree: Path, total: int) -> tuple[Path, Path]:
    ext4 = work / "ext4.img"
    size_mb = total // MiB * 13 // 10 + 256
    subprocess.run(["truncate", "-s", f"{size_mb}M", str(ext4)], check=True)
    subprocess.run(["mkfs.ext4", "-F", "-q", "-d", str(tree), str(ext4)], check=True)
    ffs = work / "ffs.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-o", "version=2,bsize=32768,fsize=4096",
                    "-s", f"{size_mb}m", "-f", "20000", str(ffs), str(tree)], check=True, capture_output=True)
    return ext4, ffs


def ffs_writable(work: Path) -> bool:
    probe = work / "probe.img"
    subprocess.run(["makefs", "-t", "ffs", "-s", "8m", str(probe), str(work / "empty")], check=True,
                   capture_output=True)
    try:
        d = p2k_daemon(str(probe), work / "probe-mnt", "rw")
    except SystemExit:
        return False
    try:
        (d.mnt / "x").write_bytes(b"x")
        return True
    except OSError:
        return False
    finally:
        d.stop()
        probe.unlink()


def peak_rss_during(d: Daemon, fn: Callable[[], float]) -> tuple[int, int, float]:
    """(baseline RSS KiB, peak RSS KiB, seconds) of ``d`` while ``fn`` runs, sampled every 10 ms
    (VmHWM covers what sampling might miss)."""
    base = d.rss_kib()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], d.rss_kib())
            time.sleep(0.01)

    th = threading.Thread(target=sample)
    th.start()
    try:
        secs = fn()
    finally:
        stop.set()
        th.join()
    return base, max(peak[0], d.rss_kib("VmHWM")), secs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="quick run: 32 MiB, 1,000 files, 128 MiB big file")
    ap.add_argument("--dir", default=None, help="work directory (default: a new one in /var/tmp)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated p2k/fuse2fs pairs per workload (default 3)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_fuse: run as root (fuse2fs and p2k mount with allow_other)")
    seq = (32 if a.small else 256) * MiB
    big = (128 if a.small else 1024) * MiB
    nsmall = 1000 if a.small else 10_000
    ncreate = 500 if a.small else 5000
    work = Path(tempfile.mkdtemp(prefix="p2k-bench-", dir=a.dir or "/var/tmp"))
    try:
        (work / "empty").mkdir()
        print(f"building data in {work} ...", flush=True)
        rels = build_tree(work / "tree", seq, big, nsmall)
        ext4, ffs = make_images(work, work / "tree", seq + big + nsmall * 4096)
        shutil.rmtree(work / "tree")
        write_on_ffs = ffs_writable(work)
        wfs = "FFS" if write_on_ffs else "tmpfs (p2k FFS is read-only so far)"
        results: list[tuple[str, float, float]] = []

        def both(label: str, run: Callable[[Path, int], float], p2k_mount: Callable[[], Daemon]) -> None:
            """``rounds`` alternated pairs (p2k, then fuse2fs, each on a fresh mount): the median
            ratio with its range, since one pair can land on a neighbour's burst either side."""
            pairs: list[tuple[float, float, float, float]] = []
            # fuse2fs mounted as p2k is: read-only for the read workloads, so neither side pays
            # for what the other is spared (p2k's read-only mounts skip OPEN, devfuse.Session.open)
            f2fs_opts = "ro" if p2k_mount is p2k_ro else "rw"
            for i in range(a.rounds):
                got = []
                for make in (p2k_mount, lambda: fuse2fs_daemon(ext4, work / "m-f2fs", f2fs_opts)):
                    d = make()
                    try:
                        c0 = d.cpu_s()
                        got.append(run(d.mnt, i))
                        got.append(d.cpu_s() - c0)
                    finally:
                        d.stop()
                pairs.append((got[0], got[2], got[1], got[3]))
            ratios = sorted(f / p for p, f, _, _ in pairs)
            t_p, t_f, c_p, c_f = (statistics.median(x[k] for x in pairs) for k in range(4))
            spread = f" ({ratios[0]:.2f}–{ratios[-1]:.2f})" if len(ratios) > 1 else ""
            results.append((label, t_p, t_f))
            print(f"  {label:<34} p2k {t_p:8.3f} s   fuse2fs {t_f:8.3f} s   "
                  f"ratio {statistics.median(ratios):5.2f}{spread} (aim >= 1)   daemon CPU p2k {c_p:.2f} s "
                  f"fuse2fs {c_f:.2f} s (ratio {c_f / max(c_p, 0.01):.2f})", flush=True)

        def p2k_ro() -> Daemon:
            return p2k_daemon(str(ffs), work / "m-p2k", "ro")

        def p2k_w() -> Daemon:
            if write_on_ffs:
                return p2k_daemon(str(ffs), work / "m-p2k", "rw")
            return p2k_daemon("none", work / "m-p2k", "rw", fstype="tmpfs")

        print(f"reads from FFS (makefs) vs ext4 (mkfs.ext4 -d); writes to p2k {wfs} vs ext4")
        both(f"sequential write {seq // MiB} MiB", lambda m, i: seq_write(m, seq), p2k_w)
        both(f"sequential read {seq // MiB} MiB", lambda m, i: seq_read(m / "seq.bin"), p2k_ro)
        both(f"create {ncreate} files", lambda m, i: create_files(m, ncreate, f"created{i}"), p2k_w)
        both(f"stat {nsmall} entries", lambda m, i: stat_entries([m / r for r in rels]), p2k_ro)
        both(f"read {nsmall} files of 4 KiB", lambda m, i: read_files([m / r for r in rels]), p2k_ro)
        both("  same, both mounted read-write", lambda m, i: read_files([m / r for r in rels]), p2k_w)

        d = p2k_daemon(str(ffs), work / "m-p2k", "ro,memlimit=64m")
        try:
            base, peak, secs = peak_rss_during(d, lambda: seq_read(d.mnt / "big.bin"))
        finally:
            d.stop()
        f = fuse2fs_daemon(ext4, work / "m-f2fs", "ro")
        try:
            fbase, fpeak, fsecs = peak_rss_during(f, lambda: seq_read(f.mnt / "big.bin"))
        finally:
            f.stop()
        print(f"  read {big // MiB} MiB file, memlimit=64m: p2k RSS {base / 1024:.1f} → peak {peak / 1024:.1f} MiB "
              f"(+{(peak - base) / 1024:.1f} MiB, {big / MiB / secs:.0f} MiB/s); "
              f"fuse2fs {fbase / 1024:.1f} → {fpeak / 1024:.1f} MiB ({big / MiB / fsecs:.0f} MiB/s)")
        bare, floor = python_rss_kib("pass"), python_rss_kib("import trio, pyfuse3")
        print(f"  daemon RSS {base / 1024:.1f} MiB = {base / bare:.2f}x a bare Python's {bare / 1024:.1f} MiB "
              f"(aim <= 2x); importing trio + pyfuse3 alone (the pyfuse3 transport's floor): "
              f"{floor / 1024:.1f} MiB = {floor / bare:.2f}x")
        print("ratio = fuse2fs time / p2k time (p2k throughput relative to fuse2fs; 1.00 = equal)")
    finally:
        for m in ("m-p2k", "m-f2fs", "probe-mnt"):
            subprocess.run(["fusermount3", "-u", "-z", str(work / m)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
