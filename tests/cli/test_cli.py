"""The command line on bad input and on drivespecs: one line, non-zero exit, no traceback."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO  # noqa: E402


def p2k(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from p2k.cli.main import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = tmp_path_factory.mktemp("cli") / "demo.img"
    img.write_bytes(gzip.decompress((REPO / "images" / "demo.img.gz").read_bytes()))
    return img


def test_drivespec_takes_the_place_of_the_image(demo: Path) -> None:
    spec = f"key=/dev/dk,hostpath={demo},size=host"
    r = p2k("ls", "-d", spec, "/docs")
    assert (r.returncode, r.stdout) == (0, "ffs.txt\n"), r.stderr
    r = p2k("cat", "-d", spec, "/hello.txt")
    assert (r.returncode, r.stdout) == (0, "Hello from FFS.\n"), r.stderr
    r = p2k("ls", str(demo), "/src")
    assert (r.returncode, r.stdout) == (0, "hello.py\n"), r.stderr


@pytest.mark.parametrize("args", [
    ("ls", "{garbage}"),
    ("ls", "{truncated}"),
    ("cat", "{garbage}", "/x"),
    ("dumpfs", "{garbage}"),
    ("ls", "-d", "key=dk,hostpath={garbage}", "/"),
    ("ls", "-d", "key=/dev/dk,hostpath={garbage},disklabel=a", "/"),
    ("ls", "{garbage}:a"),
    ("ls", "{missing}"),
    ("newfs", "-F", "-s", "1k", "{missing}"),
    ("cat", "{demo}", "/no/such/file"),
])
def test_bad_input_is_one_line_and_non_zero(tmp_path: Path, demo: Path, args: tuple[str, ...]) -> None:
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(os.urandom(200_000))
    truncated = tmp_path / "truncated.img"
    truncated.write_bytes(demo.read_bytes()[:70_000])
    names = {"garbage": garbage, "truncated": truncated, "missing": tmp_path / "missing.img", "demo": demo}
    r = p2k(*(a.format(**names) for a in args))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("p2k: ")


def test_fsck_of_garbage_exits_8_without_writing(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.img"
    data = os.urandom(200_000)
    garbage.write_bytes(data)
    r = p2k("fsck", "-n", str(garbage))
    assert r.returncode == 8, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert garbage.read_bytes() == data
