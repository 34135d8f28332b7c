"""Command start-up: every fs-utils command and ``p2k --version`` against ``python -c pass``.

Two figures per command, both as ratios to a bare interpreter started the same way in the same run:

* parse  -- ``p2k CMD --help``: interpreter, the command-line parser and every module it imports;
  what each command pays before it touches an image (issue 16's aim: <= 3x).
* run    -- the whole command on a 4 MiB image made by NetBSD makefs: start, mount, work, halt
  (the row to watch, not the aim); next to it, when NetBSD's fs-utils are built here
  (``P2K_PEERS``, see bench/peers.py), the same command's ``fsu_*`` twin on the same image and
  p2k/fs-utils; without them one line says so.

Byte-code is cached in a private PYTHONPYCACHEPREFIX and warmed first, as an installed p2k would
have it (the session environment may set PYTHONDONTWRITEBYTECODE, which would time the compiler).

    [P2K_PEERS=/work/peers] .venv/bin/python bench/bench_startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from peers import missing, peer

AIM = 3.0
WRITE_CMDS = {"mkdir", "rm", "rmdir", "mv", "ln", "chmod", "chown", "touch", "write", "cp"}


def timed_run(argv: list[str], env: dict[str, str], repeat: int) -> float:
    """Median wall time of ``repeat`` runs (the median: other engineers share the two cores)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_image(tmp: str) -> str:
    tree = os.path.join(tmp, "tree")
    os.makedirs(os.path.join(tree, "d"))
    for name in ("f", "d/g"):
        with open(os.path.join(tree, name), "w") as f:
            f.write("hello\n")
    img = os.path.join(tmp, "small.img")
    subprocess.run(["makefs", "-t", "ffs", "-s", "4m", img, tree], check=True, stdout=subprocess.DEVNULL)
    return img


def commands(img: str, tmp: str) -> list[tuple[str, list[str]]]:
    """(name, p2k arguments) per command; write commands get their own copy of the image."""
    rw = os.path.join(tmp, "rw.img")
    return [
        ("--version", ["--version"]),
        ("ls", ["ls", img, "/"]),
        ("ls -l", ["ls", "-l", img, "/"]),
        ("cat", ["cat", img, "/f"]),
        ("stat", ["stat", img, "/f"]),
        ("find", ["find", img, "/"]),
        ("du", ["du", img, "/"]),
        ("df", ["df", img]),
        ("cp", ["cp", img, ":/f", os.path.join(tmp, "out")]),
        ("mkdir", ["mkdir", rw, "/new"]),
        ("touch", ["touch", rw, "/t"]),
        ("chmod", ["chmod", rw, "644", "/f"]),
        ("rm", ["rm", rw, "/t"]),
    ]


def fsu_argv(args: list[str], img: str, rw: str) -> list[str] | None:
    """The fs-utils twin of a p2k command (``fsu_CMD IMAGE ARGS...``; ``cp IMG :/f OUT`` is
    ``fsu_get IMG /f OUT``), or None when that tool is not built here."""
    if args[0] == "--version":
        return None
    image = rw if rw in args else img
    rest = [a for a in args[1:] if a != image]
    if args[0] == "cp":
        tool, rest = peer("fsu_get"), [rest[0].lstrip(":"), rest[1]]
    else:
        tool = peer(f"fsu_{args[0]}")
    return None if tool is None else [tool, image, *rest]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    a = ap.parse_args()
    if shutil.which("makefs") is None:
        print("NetBSD makefs not installed (scripts/setup.sh)", file=sys.stderr)
        return 2
    p2k = os.path.join(os.path.dirname(sys.executable), "p2k")
    tmp = tempfile.mkdtemp(prefix="p2k-bench-startup-")
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pyc")
        env.pop("RUMP_SERVER", None)
        img = make_image(tmp)
        shutil.copyfile(img, os.path.join(tmp, "rw.img"))
        cmds = commands(img, tmp)
        for _, args in cmds:  # warm the byte-code cache and the page cache
            subprocess.run([p2k, *args], env=env, capture_output=True, check=False)
        subprocess.run([p2k, "mkdir", os.path.join(tmp, "rw.img"), "/t"], env=env, capture_output=True)
        base = timed_run([sys.executable, "-c", "pass"], env, a.repeat)
        print(f"python -c pass: {base * 1000:.1f} ms (median of {a.repeat}); aim: parse <= {AIM:.0f}x")
        rw = os.path.join(tmp, "rw.img")
        if peer("fsu_ls") is None:
            print(missing("fs-utils"))
        print(f"{'command':<10} {'parse ms':>9} {'ratio':>6} {'aim':>5} {'run ms':>8} {'ratio':>6} "
              f"{'fsu ms':>8} {'p2k/fsu':>8}")
        worst = 0.0
        for name, args in cmds:
            twin = fsu_argv(args, img, rw)
            fsu = None
            if name == "--version":
                parse = run = timed_run([p2k, *args], env, a.repeat)
            else:
                parse = timed_run([p2k, args[0], "--help"], env, a.repeat)
                if args[0] in WRITE_CMDS and args[0] != "cp":
                    # each run must do the same work: rm needs /t back, mkdir needs /new gone
                    run = _write_cmd_time(p2k, [p2k, *args], env, a.repeat, tmp)
                    fsu = _write_cmd_time(p2k, twin, env, a.repeat, tmp) if twin else None
                else:
                    run = timed_run([p2k, *args], env, a.repeat)
                    fsu = timed_run(twin, env, a.repeat) if twin else None
            worst = max(worst, parse / base)
            ok = "ok" if parse / base <= AIM else "MISS"
            peer_cols = f" {fsu * 1000:8.1f} {run / fsu:8.2f}" if fsu else ""
            print(f"{name:<10} {parse * 1000:9.1f} {parse / base:6.2f} {ok:>5} {run * 1000:8.1f} {run / base:6.2f}"
                  + peer_cols)
        print(f"worst parse ratio {worst:.2f} (aim <= {AIM:.0f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _write_cmd_time(p2k: str, argv: list[str], env: dict[str, str], repeat: int, tmp: str) -> float:
    """Time a write command (p2k's or its fs-utils twin) on a fresh copy of the image each time
    (the copy is not timed)."""
    rw = os.path.join(tmp, "rw.img")
    pristine = os.path.join(tmp, "small.img")
    times = []
    for _ in range(repeat):
        shutil.copyfile(pristine, rw)
        if argv[-1] == "/t" and ("rm" in argv or argv[0].endswith("fsu_rm")):
            subprocess.run([p2k, "touch", rw, "/t"], env=env, capture_output=True, check=False)
        t = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
