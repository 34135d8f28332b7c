"""``p2k demo``: a short in-process tour of a kernel on tmpfs (no FUSE, no image needed)."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy)
if TYPE_CHECKING:  # argparse too: p2k.cli.quickparse reads this command's ordinary command lines
    import argparse
    from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="boot a kernel, use tmpfs through k.sys, print what happened")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    import p2k.kernel

    with p2k.kernel.Kernel() as k:
        k.sys.mkdir("/mnt", 0o755)
        k.sys.mount("tmpfs", "/mnt", 0, {"size": "16m"})
        k.sys.mkdir("/mnt/etc", 0o755)
        fd = k.sys.open("/mnt/etc/motd", os.O_WRONLY | os.O_CREAT, 0o644)
        k.sys.write(fd, b"Welcome to a rump kernel in Python.\n")
        k.sys.close(fd)
        k.sys.symlink("etc/motd", "/mnt/motd")
        print("kernel:", {n: k.sysctl(n) for n in ("hw.ncpu", "kern.maxvnodes")})
        for name in sorted(k.sys.listdir("/mnt")):
            s = k.sys.lstat(f"/mnt/{name}")
            print(f"  {oct(s.st_mode):>9} {s.st_size:6d} /mnt/{name}")
        fd = k.sys.open("/mnt/motd", os.O_RDONLY)
        print("  /mnt/motd:", k.sys.read(fd, 100).decode().strip())
        k.sys.close(fd)
        print("stats:", k.stats())
    return 0
