"""Progress bars: drawn on a terminal (a real pty), absent when stdout is a pipe, with -q, or with
--json — and the commands' own output is the same either way."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from eco_images import data_tree, makefs, needs_makefs

P2K = [sys.executable, "-m", "p2k"]
BAR = re.compile(rb"\d+/\d+ \[|[?\d.]+[kM]?(B|it|inodes|cg|files|cuts)/s\]")


def run_pty(argv: list[str], cwd: Path) -> tuple[int, bytes]:
    """Run ``argv`` with stdin/stdout/stderr on a new 100x24 pseudo-terminal; (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(cwd)
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    out = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), bytes(out)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("progress")
    tree = data_tree(d / "tree")
    for i in range(200):
        (tree / "data" / f"f{i}").write_text(str(i))
    return makefs(d / "disk.img", tree, "64m")


@needs_makefs
def test_fsck_bars_on_a_terminal_only(image: Path) -> None:
    code, tty = run_pty([*P2K, "fsck", "-fn", str(image)], image.parent)
    assert code == 0
    assert b"inodes/s" in tty and b"Phase 1" in tty and b"fsck Phase 5" in tty, tty[-2000:]
    piped = subprocess.run([*P2K, "fsck", "-fn", str(image)], capture_output=True, cwd=image.parent)
    assert piped.returncode == 0 and not BAR.search(piped.stdout + piped.stderr)
    for line in piped.stdout.splitlines():  # the same report, the bars drawn around it
        assert line.rstrip() in tty
    code, quiet = run_pty([*P2K, "fsck", "-q", "-fn", str(image)], image.parent)
    assert code == 0 and not BAR.search(quiet) and b"\r\x1b" not in quiet
    code, js = run_pty([*P2K, "fsck", "--json", "-fn", str(image)], image.parent)
    assert code == 0 and not BAR.search(js) and js.lstrip().startswith(b"{")


@needs_makefs
def test_cp_newfs_makefs_crashtest_bars(image: Path, tmp_path: Path) -> None:
    code, out = run_pty([*P2K, "cp", "-R", str(image), ":/data", str(tmp_path / "data")], tmp_path)
    assert code == 0 and b"cp copied" in out and BAR.search(out), out[-1000:]
    assert len(list((tmp_path / "data").iterdir())) == 201
    code, out = run_pty([*P2K, "newfs", "-F", "-O", "2", "-s", "32m", str(tmp_path / "n.img")], tmp_path)
    assert code == 0 and b"newfs cylinder groups" in out and b"cg/s" in out, out[-1000:]
    code, out = run_pty([*P2K, "makefs", "-t", "ffs", "-s", "8m", str(tmp_path / "m.img"), str(tmp_path / "data")],
                        tmp_path)
    assert code == 0 and b"makefs files" in out and b"files/s" in out, out[-1000:]
    code, out = run_pty([*P2K, "crashtest", "--workload", "smallfiles", "--cuts", "2"], tmp_path)
    assert code == 0 and b"cuts/s" in out, out[-1000:]
    piped = subprocess.run([*P2K, "makefs", "-t", "ffs", "-s", "8m", str(tmp_path / "m2.img"), str(tmp_path / "data")],
                           capture_output=True, cwd=tmp_path)
    assert piped.returncode == 0 and not BAR.search(piped.stdout + piped.stderr)


@needs_makefs
def test_gzip_index_pass_has_a_bar_on_a_terminal_only(image: Path, tmp_path: Path) -> None:
    """The first read of a gzip'd image indexes the whole stream (a release image: gigabytes); on a
    terminal that pass is shown, in a pipe the listing is all there is."""
    gz = tmp_path / "disk.img.gz"
    with gz.open("wb") as out:
        subprocess.run(["gzip", "-1", "-c", str(image)], stdout=out, check=True)
    code, tty = run_pty([*P2K, "ls", str(gz), "/data"], tmp_path)
    assert code == 0 and b"ls gzip index" in tty and BAR.search(tty), tty[-1000:]
    piped = subprocess.run([*P2K, "ls", str(gz), "/data"], capture_output=True, cwd=tmp_path)
    assert piped.returncode == 0 and not BAR.search(piped.stdout + piped.stderr), piped.stderr
    assert b"f199" in piped.stdout and b"f199" in tty
