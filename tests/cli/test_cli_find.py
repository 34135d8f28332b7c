"""``p2k find`` walks as NetBSD's find does: each directory's entries in directory order (the
order its blocks hold them, as fts gives them without a comparison function), ``-s`` for names
in order. The order is checked against The Sleuth Kit's ``fls``, which reads the directory
blocks itself, on an image NetBSD's makefs wrote (makefs does not store names sorted)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None or shutil.which("fls") is None,
                                reason="NetBSD makefs or The Sleuth Kit's fls not installed")


def find(*args: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "p2k", "find", *args], capture_output=True, text=True, timeout=60,
                       check=True)
    return r.stdout.splitlines()


@pytest.fixture(scope="module")
def img(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("find")
    tree = work / "tree"
    for d in ("zeta", "alpha", "mid/inner", "mid/other"):
        (tree / d).mkdir(parents=True)
    for i in range(40):
        (tree / ("zeta", "alpha", "mid/inner")[i % 3] / f"f{(i * 7919) % 97:02d}").write_bytes(b"x" * i)
    (tree / "top").write_bytes(b"t")
    out = work / "tree.img"
    subprocess.run(["makefs", "-t", "ffs", "-o", "version=1", "-s", "4m", str(out), str(tree)], check=True,
                   capture_output=True)
    return out


def fls_order(img: Path) -> list[str]:
    """Paths in the order the directory blocks hold them, depth first, as fls prints them."""
    out = subprocess.run(["fls", "-r", "-p", "-u", str(img)], capture_output=True, text=True, check=True).stdout
    paths = ["/" + line.split("\t", 1)[1] for line in out.splitlines()]
    return ["/"] + [p for p in paths if p != "/$OrphanFiles"]  # TSK's own virtual directory


def test_find_walks_in_directory_order(img: Path) -> None:
    want = fls_order(img)
    assert want != ["/"] + sorted(want[1:])  # makefs stored these names out of order: the test can tell
    assert find(str(img), "/") == want
    assert find(str(img), "/", "-type", "f") == [p for p in want if p.rsplit("/", 1)[1].startswith(("f", "top"))]


def test_find_s_sorts_each_directory(img: Path) -> None:
    got = find("-s", str(img), "/")
    assert sorted(got) == sorted(fls_order(img))
    # each directory's entries by name, each followed by what is below it (a preorder walk)
    assert got == sorted(got, key=lambda p: p.split("/"))
    assert find("-s", str(img), "/", "-type", "d") == [p for p in got if p in ("/", "/alpha", "/mid", "/mid/inner",
                                                                             "/mid/other", "/zeta")]
