"""16 client processes at once against one server, one of them killed with SIGKILL in mid-write.

Each worker prints a line for every operation it *completed* (the server answered); the test then
checks that exactly that state is in the server — and, for FFS, on the image after rump.halt,
with ``p2k fsck -n`` clean — and that the killed client left no file, handle or vnode behind.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from server_harness import ServerProc, ffs_rw_unavailable, free_port, make_ffs_image, run, start, wait_gone

WORKER = r"""
import hashlib, os, random, sys
from p2k.client import connect
url, wid, role = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = connect(url)
d = f"/mnt/w{wid}"
c.sys.mkdir(d, 0o755)
if role == "victim":
    fd = c.sys.open(d + "/endless", os.O_WRONLY | os.O_CREAT, 0o644)
    chunk = os.urandom(1 << 18)
    print("writing", flush=True)
    off = 0
    while True:  # mid-write until killed, over a bounded region so it cannot fill the disk first
        c.sys.pwrite(fd, chunk, off)
        off = (off + len(chunk)) % (16 << 20)
rng = random.Random(wid)
live = []
for j in range(24):
    op = rng.random()
    if op < 0.55 or not live:
        p = f"{d}/f{j}"
        data = rng.randbytes(rng.choice((0, 1, 511, 4096, 65537, 200000)))
        fd = c.sys.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for off in range(0, len(data), 50000):
            c.sys.write(fd, data[off:off + 50000])
        if rng.random() < 0.3:
            c.sys.fsync(fd)
        c.sys.close(fd)
        live.append(p)
        print("write", p, hashlib.sha256(data).hexdigest(), flush=True)
    elif op < 0.7:
        old = live.pop(rng.randrange(len(live)))
        new = f"{d}/r{j}"
        c.sys.rename(old, new)
        live.append(new)
        print("rename", old, new, flush=True)
    elif op < 0.8:
        p = live.pop(rng.randrange(len(live)))
        c.sys.unlink(p)
        print("unlink", p, flush=True)
    elif op < 0.9:
        sub = f"{d}/sub{j}"
        c.sys.mkdir(sub, 0o700)
        print("mkdir", sub, flush=True)
    else:
        assert sorted(c.sys.listdir(d)) == sorted(set(c.sys.listdir(d)))
        for p in live:
            c.sys.stat(p)
print("finished", flush=True)
c.close()
"""


def _expected(lines: list[str]) -> tuple[dict[str, str], set[str], set[str]]:
    files: dict[str, str] = {}
    gone: set[str] = set()
    dirs: set[str] = set()
    for line in lines:
        word, *rest = line.split()
        if word == "write":
            files[rest[0]] = rest[1]
            gone.discard(rest[0])
        elif word == "rename":
            files[rest[1]] = files.pop(rest[0])
            gone.add(rest[0])
        elif word == "unlink":
            files.pop(rest[0])
            gone.add(rest[0])
        elif word == "mkdir":
            dirs.add(rest[0])
    return files, gone, dirs


def _read(sys_: object, path: str) -> bytes:
    s = sys_
    fd = s.open(path, os.O_RDONLY)  # type: ignore[attr-defined]
    out = bytearray()
    while chunk := s.read(fd, 1 << 20):  # type: ignore[attr-defined]
        out += chunk
    s.close(fd)  # type: ignore[attr-defined]
    return bytes(out)


def _check(sys_: object, lines: list[str]) -> None:
    files, gone, dirs = _expected(lines)
    assert files, "the workers completed no writes"
    for path, digest in files.items():
        assert hashlib.sha256(_read(sys_, path)).hexdigest() == digest, path
    for path in gone:
        with pytest.raises(FileNotFoundError):
            sys_.stat(path)  # type: ignore[attr-defined]
    for path in dirs:
        assert sys_.stat(path).st_nlink == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("fstype", ["tmpfs", "ffs"])
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_sixteen_clients_and_a_killed_one(tmp_path: Path, servers: list[ServerProc], transport: str,
                                         fstype: str) -> None:
    img = tmp_path / "disk.img"
    args: list[str] = []
    if fstype == "ffs":
        reason = ffs_rw_unavailable(tmp_path)
        if reason:
            pytest.skip(reason)
        assert make_ffs_image(img, 64) is None
        args = ["-d", f"key=/dev/dk,hostpath={img},size=host"]
    url = "unix://s.sock" if transport == "unix" else f"tcp://127.0.0.1:{free_port()}/"
    s = start(tmp_path, url, *args)
    servers.append(s)
    with s.connect() as c:
        c.sys.mkdir("/mnt", 0o755)
        c.sys.mount(fstype, "/mnt", 0, {"fspec": "/dev/dk"} if fstype == "ffs" else None)
        base = c.stats()

    procs = []
    for wid in range(16):
        role = "victim" if wid == 7 else "worker"
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, s.url, str(wid), role],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    victim = procs[7]
    assert victim.stdout is not None
    assert victim.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()

    lines: list[str] = []
    for p in procs:
        if p is victim:
            continue
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.splitlines()[-1] == "finished"
        lines += out.splitlines()[:-1]

    with s.connect() as c:
        end = time.monotonic() + 10
        while (st := c.stats())["connections"] > 1 and time.monotonic() < end:
            time.sleep(0.05)
        assert (st["connections"], st["open_files"], st["handles"]) == (1, 0, 0)
        # What the workers hold no more: one vnode per live file/dir may stay cached, none in use.
        assert st["vnodes_inuse"] == base["vnodes_inuse"]
        _check(c.sys, lines)
    r = s.halt()
    assert r.returncode == 0, r.stderr
    assert wait_gone(s.pid)

    if fstype == "ffs":
        try:
            import p2k.cli.fsck  # noqa: F401
        except ImportError:
            pass  # p2k fsck not written yet: the read-back below still checks every write
        else:
            r = run("p2k fsck", "-f", "-n", str(img))  # -f: check even though marked clean
            assert r.returncode == 0 and "Phase 5" in r.stdout, r.stdout + r.stderr
        k = p2k.Kernel(env={})
        try:
            k.etfs_register("/dev/dk", str(img), p2k.ETFS_BLK)
            k.sys.mkdir("/mnt", 0o755)
            k.sys.mount("ffs", "/mnt", p2k.MNT_RDONLY, {"fspec": "/dev/dk"})
            _check(k.sys, lines)
        finally:
            k.halt(sync=False)
