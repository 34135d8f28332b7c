"""Commands that only read or write an image never import the FUSE stack (pyfuse3, trio).

Importing it costs about 80 ms and 17 MiB, twice the whole start-up of ``p2k ls``; it crept in
once through ``p2k.puffs``'s package import when ``cp -p`` and ``stat`` began to use the Linux
extended-attribute names kept there. Each command runs in a fresh interpreter on a real image.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("makefs") is None, reason="NetBSD makefs not installed")

PROBE = """
import sys
from p2k.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & {"trio", "pyfuse3"}), file=sys.stderr)
"""


def test_image_commands_leave_the_fuse_stack_alone(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_bytes(b"data\n")
    img = tmp_path / "fs.img"
    subprocess.run(["makefs", "-t", "ffs", "-s", "4m", str(img), str(tree)], check=True, capture_output=True)
    out = tmp_path / "out"
    for argv in (["ls", "-lR", str(img)], ["stat", str(img), "/d/f"], ["cp", "-p", str(img), ":/d/f", str(out)],
                 ["find", str(img)], ["cat", str(img), "/d/f"], ["du", str(img)], ["df", str(img)],
                 ["cp", str(img), str(out), ":/d/g"]):
        r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
        assert "LOADED" in r.stderr, r.stderr
        loaded = r.stderr.rsplit("LOADED", 1)[1].strip()
        assert loaded == "[]", f"p2k {' '.join(argv[:1])} imported {loaded}"
    assert out.read_bytes() == b"data\n"
