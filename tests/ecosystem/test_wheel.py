"""The package as a user gets it: a wheel built without warnings, installed into a fresh virtual
environment without extras, gives a working ``p2k`` with only the runtime dependencies."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = {"pyfuse3", "trio", "tqdm", "shtab"}
EXTRAS_ONLY = {"fsspec", "pandas", "pytest", "hypothesis", "aiohttp", "dissect-ffs", "ruff",
               "dissect-hypervisor", "indexed-gzip", "python-xz"}


def test_wheel_installs_without_extras(tmp_path: Path) -> None:
    pytest.importorskip("build")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # its notice is no warning
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, env=env, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    noise = [ln for ln in (built.stdout + built.stderr).splitlines()
             if re.search(r"warn|deprecat", ln, re.I) and "Location 'file://" not in ln]
    assert noise == []
    (wheel,) = (tmp_path / "dist").glob("p2k-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                         timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    listed = subprocess.run([str(venv / "bin/pip"), "list", "--format=freeze"], capture_output=True, text=True,
                            check=True).stdout
    names = {ln.split("==")[0].lower() for ln in listed.splitlines()}
    assert RUNTIME <= names and not (EXTRAS_ONLY & names), names

    (tmp_path / "demo.img").write_bytes(gzip.decompress((ROOT / "images/demo.img.gz").read_bytes()))
    ls = subprocess.run([str(venv / "bin/p2k"), "ls", "demo.img", "/"], capture_output=True, text=True,
                        cwd=tmp_path, timeout=120)
    assert ls.returncode == 0, ls.stderr
    assert ls.stdout.split() == ["README", "about-ffs", "docs", "hello.txt", "numbers.txt", "src"]
    cat = subprocess.run([str(venv / "bin/python"), "-m", "p2k", "cat", "demo.img", "/hello.txt"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert cat.stdout == "Hello from FFS.\n", cat.stderr
    # A container without the [containers] extra: one line naming the extra, no traceback.
    gz = subprocess.run([str(venv / "bin/p2k"), "ls", str(ROOT / "images/demo.img.gz"), "/"], capture_output=True,
                        text=True, timeout=120)
    assert gz.returncode == 1 and "p2k[containers]" in gz.stderr and len(gz.stderr.splitlines()) == 1, gz.stderr
