#!/usr/bin/env python3
"""Reading through a container against reading the raw disk, in one run.

A whole disk (GPT from sgdisk, an FFS made by makefs in partition 1 holding one 256 MiB file) is
converted with ``qemu-img`` to qcow2; p2k then reads the file sequentially (in-process, 1 MiB reads,
a fresh kernel each time) from ``disk.img:p1`` and from ``disk.qcow2:p1``. The printed ratio is the
qcow2 throughput over the raw one, each the best of ``--repeat`` interleaved runs (the machine is
shared, and a single run swings with the load); aim ≥ 0.5. Optional lines do the same for a compressed qcow2,
VMDK (stream-optimized), xz (multi-block) and gzip copies of the disk, for information.

``--memory`` measures memory instead: the peak RSS of a process reading the file once from a qcow2
with 512-byte clusters (the most L2 tables: 4 MiB of them for the 256 MiB file) and from gzip
and xz copies, under ``--memlimit`` and with no limit, printed beside the limit and the kernel's own peak
(``kern.mem.peak``). ``--before DIR`` runs the same reads with the p2k package found in DIR (a
checkout of an older commit) in a second column: what the change did to the same image.

Usage: ``python bench/bench_containers.py [--workdir DIR] [--size-mib 256] [--all]
[--memory [--memlimit 8m] [--before DIR]]``. Images are cached in the work directory between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 1 << 20


def build_disk(work: Path, size_mib: int) -> Path:
    disk = work / f"disk-{size_mib}m.img"
    if disk.exists():
        return disk
    src = work / "src"
    src.mkdir(exist_ok=True)
    block = os.urandom(CHUNK)
    with open(src / "big", "wb") as f:
        for i in range(size_mib):
            f.write(block[i:] + block[:i])
    fs = work / "fs.img"
    subprocess.run(["makefs", "-t", "ffs", "-B", "le", "-o", "version=2", "-s", f"{size_mib + 32}m", str(fs),
                    str(src)], check=True, capture_output=True)
    tmp = work / "disk.tmp"
    with open(tmp, "wb") as f:
        f.truncate((size_mib + 34) << 20)
    subprocess.run(["sgdisk", "-o", f"-n1:2048:+{size_mib + 32}M", "-t1:a503", str(tmp)], check=True,
                   capture_output=True)
    with open(tmp, "r+b") as out, open(fs, "rb") as inp:
        out.seek(1 << 20)
        while chunk := inp.read(CHUNK):
            out.write(chunk)
    tmp.rename(disk)
    fs.unlink()
    return disk


def convert(disk: Path, name: str, *args: str) -> Path:
    out = disk.with_name(name)
    if not out.exists():
        if args[0] in ("xz", "gzip"):
            cmd = ["xz", "-T2", "--block-size=4MiB", "-1"] if args[0] == "xz" else ["gzip", "-1"]
            with open(out, "wb") as f:
                subprocess.run([*cmd, "-c", str(disk)], stdout=f, check=True)
        else:
            subprocess.run(["qemu-img", "convert", *args, str(disk), str(out)], check=True)
    return out


def read_file(image: str, memlimit: str | None = None) -> tuple[float, int]:
    """Seconds to read /big of ``image`` sequentially through p2k, and the bytes read."""
    import p2k
    from p2k.cli.imagearg import resolve_image

    target = resolve_image(image, True)
    k = p2k.Kernel(env={}, memlimit=memlimit)
    try:
        k.etfs_register("/dev/dk", target.backend, p2k.ETFS_BLK, size=target.size, offset=target.offset,
                        readonly=True)
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
        fd = k.sys.open("/mnt/big", os.O_RDONLY)
        t = time.perf_counter()
        n = 0
        while chunk := k.sys.read(fd, CHUNK):
            n += len(chunk)
        dt = time.perf_counter() - t
        k.sys.close(fd)
        global KERNEL_PEAK
        KERNEL_PEAK = k.mem.peak
    finally:
        k.halt(sync=False)
    return dt, n


KERNEL_PEAK = 0


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) << 10
    return 0


def rss_child(image: str, memlimit: str | None) -> None:
    """One read in this fresh process; prints the peak RSS above what importing took."""
    import p2k.cli.imagearg  # noqa: F401 - the imports are the baseline, not the reading
    import p2k.kernel  # noqa: F401

    base = _status("VmRSS")
    try:
        dt, n = read_file(image, memlimit)
    except OSError as e:  # the reader needs more than the limit: refused at registration
        print(json.dumps({"refused": str(e)}))
        return
    print(json.dumps({"peak": _status("VmHWM") - base, "kernel_peak": KERNEL_PEAK, "seconds": dt, "bytes": n}))


def measure_rss(image: Path, memlimit: str | None, src: str | None) -> dict[str, float | str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, __file__, "--rss-child", f"{image}:p1"] + (["--memlimit", memlimit] if memlimit else [])
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result: dict[str, float | str] = json.loads(out.splitlines()[-1])
    return result


def _cells(m: dict[str, float | str]) -> str:
    if "refused" in m:
        return f"{'refused (ENOMEM)':>24}"
    return f"{float(m['peak']) / (1 << 20):7.1f} M {float(m['kernel_peak']) / (1 << 20):12.1f} M"


def memory_table(disk: Path, memlimit: str, before: str | None) -> None:
    """Peak RSS of one read, small limit against none; with ``before``, the older code beside."""
    images = {"qcow2 512 B clusters": convert(disk, "disk-512.qcow2", "-O", "qcow2", "-o", "cluster_size=512"),
              "gzip": convert(disk, "disk.img.gz", "gzip"), "xz": convert(disk, "disk.img.xz", "xz")}
    print(f"{'image':<22} {'memlimit':>8} {'peak RSS':>9} {'kern.mem.peak':>14}" +
          (f"   {'before: RSS':>9} {'kern.mem.peak':>14}" if before else ""))
    for name, path in images.items():
        for limit in (memlimit, None):
            row = f"{name:<22} {limit or 'none':>8} {_cells(measure_rss(path, limit, None))}"
            if before:
                row += f"   {_cells(measure_rss(path, limit, before))}"
            print(row, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "p2k-bench-containers"))
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--all", action="store_true", help="also compressed qcow2, VMDK and xz (informative)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N interleaved runs (the machine is shared)")
    ap.add_argument("--memory", action="store_true", help="peak RSS under --memlimit and without (see above)")
    ap.add_argument("--memlimit", default=None, help="the small limit of --memory (8m)")
    ap.add_argument("--before", default=None, help="with --memory: a directory holding an older p2k package")
    ap.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.memlimit)
        return 0
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    disk = build_disk(work, args.size_mib)
    if args.memory:
        memory_table(disk, args.memlimit or "8m", args.before)
        return 0
    images = {"raw": disk, "qcow2": convert(disk, "disk.qcow2", "-O", "qcow2")}
    if args.all:
        images["qcow2 -c"] = convert(disk, "disk-c.qcow2", "-c", "-O", "qcow2")
        images["vmdk stream"] = convert(disk, "disk.vmdk", "-O", "vmdk", "-o", "subformat=streamOptimized")
        images["xz"] = convert(disk, "disk.img.xz", "xz")
        images["gzip"] = convert(disk, "disk.img.gz", "gzip")
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeat):
        for name, path in images.items():
            dt, n = read_file(f"{path}:p1")
            if name not in best or dt < best[name][0]:
                best[name] = (dt, n)
    speeds: dict[str, float] = {}
    for name, (dt, n) in best.items():
        speeds[name] = n / dt
        print(f"{name:<12} {n >> 20} MiB in {dt:6.2f} s  {n / dt / 1e6:7.1f} MB/s  (best of {args.repeat})")
    ratio = speeds["qcow2"] / speeds["raw"]
    print(f"qcow2/raw sequential read ratio: {ratio:.2f} (aim >= 0.5)")
    for name in images:
        if name not in ("raw", "qcow2"):
            print(f"{name}/raw ratio: {speeds[name] / speeds['raw']:.2f} (informative)")
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
