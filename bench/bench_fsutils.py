"""``p2k ls -lR`` and ``p2k find`` on a 10,000-file image against NetBSD's fs-utils, in one run.

The peer issue 16 names is NetBSD's fs-utils (``fsu_ls``, ``fsu_find``: a rump kernel in the tool's
own process, as p2k's commands have). They are not part of p2k and not built by it: when an engineer
has built them, ``P2K_PEERS=PREFIX`` (or ``fsu_ls``/``fsu_find`` on PATH; see bench/peers.py) makes
this bench time them on the very image p2k reads (a NetBSD-makefs'd UFS1 image) and print
p2k/fs-utils next to the aim (<= 2x) for ``ls /`` (start-up), ``ls -lR`` and ``find``; without them it
says so in one line. In the same run, always, the host's tools over the same tree:

* the host's ``ls -lR`` / ``find`` on the host's own file system (kernel code, warm page cache: a
  stricter peer than fsu_ls, which also runs a file system in user space);
* the host's ``ls -lR`` / ``find`` through a fuse2fs mount of an ext4 image of the tree, when
  fuse2fs is installed (mounting not timed). Its CPU figure is the tool's plus the fuse2fs
  daemon's (mean per run): fsu_ls does its file system work in its own process, as p2k does.

Every figure is a whole process, start-up included (what a user waits for), median of
``--repeat`` runs, output to /dev/null. Aim (issue 16): p2k within 2x of fs-utils.

    P2K_PEERS=/work/peers .venv/bin/python bench/bench_fsutils.py [--files 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import missing, peer

AIM = 2.0


def timed(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall time and median CPU (user + system) of the process: on a shared machine the
    wall time swings with the other tenants, a process's own CPU much less."""
    return timed_pair(argv, None, repeat, env)[0]


def timed_pair(a: list[str], b: list[str] | None, repeat: int, env: dict[str, str],
               ) -> list[tuple[float, float]]:
    """``timed`` for ``a`` and ``b``, their runs alternated: on a shared machine the other
    tenants' load comes and goes, and two commands timed one after the other can each meet a
    different machine (fs-utils' find measured 13 to 20 ms within minutes)."""
    argvs = [a] if b is None else [a, b]
    wall: list[list[float]] = [[] for _ in argvs]
    cpu: list[list[float]] = [[] for _ in argvs]
    for _ in range(repeat):
        for i, argv in enumerate(argvs):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
            wall[i].append(time.perf_counter() - t)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[i].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu, strict=True)]


def daemon_cpu(p: subprocess.Popen[bytes]) -> float:
    """User + system CPU a running daemon has used so far."""
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def output(argv: list[str], env: dict[str, str]) -> list[bytes]:
    """A command's lines, less the rump kernel's boot chatter (fs-utils prints a module warning
    on stdout): the check that both sides listed the same tree the same way."""
    out = subprocess.run(argv, capture_output=True, env=env, check=True).stdout.splitlines()
    return [ln for ln in out if not ln.startswith(b"WARNING: module error")]


def compare(label: str, mine: list[bytes], theirs: list[bytes]) -> str:
    """Both sides print the same lines in the same order: ls sorts; find walks in directory
    order, as NetBSD's does."""
    if mine == theirs:
        return "   (output identical)"
    return f"   (OUTPUT DIFFERS: p2k {len(mine)} lines, fs-utils {len(theirs)})"


def fsutils_rows(p2k: str, img: Path, repeat: int, env: dict[str, str]) -> list[str] | None:
    """p2k against NetBSD's fs-utils on the same image, one printed line per workload; None when
    fs-utils are not built here. ``ls /`` is mostly start-up (issue 16 aims that at <= 3x
    ``python -c pass``, see bench_startup.py); ``ls -lR`` and ``find`` carry the <= 2x aim."""
    fsu_ls, fsu_find = peer("fsu_ls"), peer("fsu_find")
    if fsu_ls is None or fsu_find is None:
        return None
    rows = [f"  NetBSD fs-utils: {fsu_ls}, {fsu_find} (its rump kernel in the tool's process)"]
    for label, pargv, fargv, aim in (
        ("ls /", [p2k, "ls", str(img), "/"], [fsu_ls, str(img), "/"], "start-up: bench_startup.py"),
        ("ls -lR", [p2k, "ls", "-lR", str(img), "/"], [fsu_ls, str(img), "-lR", "/"], f"aim <= {AIM:.0f}x"),
        ("find", [p2k, "find", str(img), "/"], [fsu_find, str(img), "/"], f"aim <= {AIM:.0f}x"),
    ):
        same = compare(label, output(pargv, env), output(fargv, env))
        (t_p2k, c_p2k), (t_fsu, c_fsu) = timed_pair(pargv, fargv, repeat, env)
        rows.append(f"  {label:<7} p2k {t_p2k:6.3f} s (CPU {c_p2k:.3f})   fs-utils {t_fsu:6.3f} s "
                    f"(CPU {c_fsu:.3f})   p2k/fs-utils {t_p2k / t_fsu:5.2f}x wall, "
                    f"{c_p2k / max(c_fsu, 1e-3):5.2f}x CPU   ({aim}){same}")
    return rows


def make_tree(root: Path, nfiles: int) -> None:
    ndirs = max(1, nfiles // 100)
    for d in range(ndirs):
        sub = root / f"d{d:03d}"
        sub.mkdir(parents=True)
        for i in range(nfiles // ndirs):
            (sub / f"file{i:03d}").write_bytes(b"x" * (i * 37 % 3000))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if shutil.which("makefs") is None:
        raise SystemExit("NetBSD makefs not installed (scripts/setup.sh)")
    p2k = str(Path(sys.executable).with_name("p2k"))
    work = Path(tempfile.mkdtemp(prefix="p2k-bench-fsu-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "RUMP_SERVER")}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pyc")
    mnt = work / "mnt"
    mounted = False
    daemon: subprocess.Popen[bytes] | None = None
    try:
        tree = work / "tree"
        make_tree(tree, a.files)
        img = work / "tree.img"  # UFS1: Debian's makefs leaves UFS2 images with unwritten inodes
        subprocess.run(["makefs", "-t", "ffs", "-o", "version=1", str(img), str(tree)], check=True,
                       capture_output=True)
        subprocess.run([p2k, "ls", str(img), "/"], env=env, capture_output=True, check=True)  # warm
        peers: dict[str, Path] = {"host fs": tree}
        if shutil.which("fuse2fs") and shutil.which("mkfs.ext4") and os.geteuid() == 0:
            ext4 = work / "tree.ext4"
            subprocess.run(["mkfs.ext4", "-q", "-d", str(tree), str(ext4), "128m"], check=True, capture_output=True)
            mnt.mkdir()
            daemon = subprocess.Popen(["fuse2fs", "-f", "-o", "ro", str(ext4), str(mnt)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            mounted = True
            while not os.path.ismount(mnt):
                if daemon.poll() is not None:
                    raise SystemExit("fuse2fs failed to mount")
                time.sleep(0.02)
            peers["fuse2fs"] = mnt
        fsu = fsutils_rows(p2k, img, a.repeat, env)
        print(f"{a.files} files in {a.files // 100} directories, UFS1 image by NetBSD makefs; median of {a.repeat}")
        if fsu is None:
            print(f"  {missing('fs-utils (fsu_ls, fsu_find)')}")
        else:
            for line in fsu:
                print(line)
        print(f"  host tools over the same tree (peers: {', '.join(peers)}):")
        for label, pargv, hargv in (("ls -lR", ["ls", "-lR"], ["ls", "-lR"]), ("find", ["find"], ["find"])):
            t_p2k, c_p2k = timed([p2k, *pargv, str(img), "/"], a.repeat, env)
            row = f"  {label:<7} p2k {t_p2k:6.3f} s (CPU {c_p2k:.3f})"
            for name, where in peers.items():
                d0 = daemon_cpu(daemon) if name == "fuse2fs" and daemon else 0.0
                t_peer, c_peer = timed([*hargv, str(where)], a.repeat, env)
                if name == "fuse2fs" and daemon:
                    c_peer += (daemon_cpu(daemon) - d0) / a.repeat
                row += (f"   {name} {t_peer:6.3f} s (CPU {c_peer:.3f}; p2k/peer {t_p2k / t_peer:5.2f}x wall, "
                        f"{c_p2k / max(c_peer, 1e-3):5.2f}x CPU)")
            print(row)
    finally:
        if mounted:
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
            if daemon is not None:
                daemon.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
