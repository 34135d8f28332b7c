"""Reading a command line: p2k's fast reader (p2k.cli.quickparse) against argparse, which it spares.

Each figure is the time ``p2k.cli.main.parse`` (fast path) or ``p2k.cli.argparser.parse_command_line``
(argparse: importing it with re, enum, gettext and locale, building the command's parser, parsing)
takes in a fresh interpreter that has imported p2k's command modules but nothing else, as
``p2k CMD`` does before it opens the image; median of N interpreters, ratio in the same run.
NetBSD's fs-utils read theirs with getopt(3), which costs nothing measurable.

    .venv/bin/python bench/bench_parse.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

PROBE = """
import sys, time
import p2k.cli.main as m
__import__(sys.argv[2], fromlist=["register"])
words = sys.argv[3:]
t = time.perf_counter()
if sys.argv[1] == "fast":
    args = m.parse(words)
else:
    from p2k.cli.argparser import parse_command_line
    args = parse_command_line(m.SUBCOMMANDS, words)
took = time.perf_counter() - t
assert args is not None and args.command == words[0], args
print(took, "argparse" in sys.modules)
"""

LINES = [("p2k.cli.fsutils", ["find", "IMG", "/"]), ("p2k.cli.fsutils", ["ls", "-lR", "IMG", "/"]),
         ("p2k.cli.fsutils", ["cp", "-p", "IMG", ":/etc/motd", "."]),
         ("p2k.cli.fsutils_write", ["mkdir", "-p", "-m", "700", "IMG", "/a/b"])]


def median_ms(mode: str, module: str, words: list[str], env: dict[str, str], repeat: int) -> tuple[float, bool]:
    times, loaded = [], False
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE, mode, module, *words], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        times.append(float(out[0]) * 1000)
        loaded = out[1] == "True"
    return statistics.median(times), loaded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="p2k-bench-parse-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "RUMP_SERVER")}
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pyc")  # byte-code cached, as installed
        print(f"median of {a.repeat} fresh interpreters each")
        print(f"{'command line':32} {'argparse ms':>11} {'fast ms':>8} {'argparse/fast':>14}")
        for module, words in LINES:
            median_ms("fast", module, words, env, 1)  # warm the byte-code cache
            slow, _ = median_ms("argparse", module, words, env, a.repeat)
            fast, loaded = median_ms("fast", module, words, env, a.repeat)
            note = "  (the fast path loaded argparse!)" if loaded else ""
            print(f"{'p2k ' + ' '.join(words):32} {slow:11.2f} {fast:8.2f} {slow / fast:13.1f}x{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
