#!/usr/bin/env python3
"""Reading through a container against reading the raw disk, in one run.

A whole disk (GPT from sgdisk, an FFS made by makefs in partition 1 holding one 256 MiB file) is
converted with ``qemu-img`` to qcow2; p2k then reads the file sequentially (in-process, 1 MiB reads,
a fresh kernel each time) from ``disk.img:p1`` and from ``disk.qcow2:p1``. The printed ratio is the
qcow2 throughput over the raw one, each the best of ``--repeat`` interleaved runs (the machine is
shared, and a single run swings with the load); aim ≥ 0.5. Optional lines do the same for a compressed qcow2,
VMDK (stream-optimized) and xz (multi-block) copies of the disk, for information.

Usage: ``python bench/bench_containers.py [--workdir DIR] [--size-mib 256] [--all]``. Images are
cached in the work directory between runs.
"""

from __future__ import annotations

import argparse
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
        if args[0] == "xz":
            with open(out, "wb") as f:
                subprocess.run(["xz", "-T2", "--block-size=4MiB", "-1", "-c", str(disk)], stdout=f, check=True)
        else:
            subprocess.run(["qemu-img", "convert", *args, str(disk), str(out)], check=True)
    return out


def read_file(image: str) -> tuple[float, int]:
    """Seconds to read /big of ``image`` sequentially through p2k, and the bytes read."""
    import p2k
    from p2k.cli.imagearg import resolve_image

    target = resolve_image(image, True)
    k = p2k.Kernel(env={})
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
    finally:
        k.halt(sync=False)
    return dt, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "p2k-bench-containers"))
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--all", action="store_true", help="also compressed qcow2, VMDK and xz (informative)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N interleaved runs (the machine is shared)")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    disk = build_disk(work, args.size_mib)
    images = {"raw": disk, "qcow2": convert(disk, "disk.qcow2", "-O", "qcow2")}
    if args.all:
        images["qcow2 -c"] = convert(disk, "disk-c.qcow2", "-c", "-O", "qcow2")
        images["vmdk stream"] = convert(disk, "disk.vmdk", "-O", "vmdk", "-o", "subformat=streamOptimized")
        images["xz"] = convert(disk, "disk.img.xz", "xz")
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
