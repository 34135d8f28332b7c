"""``p2k getfattr`` / ``p2k setfattr`` on images of both byte orders: round trip in getfattr's
format and encodings, removal, -h on a symlink, one-line errors and exit codes on bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from ffs_work import newfs

from p2k.cli.main import main


@pytest.mark.parametrize("endian", ["le", "be"])
def test_round_trip(tmp_path: Path, endian: str, capsys: pytest.CaptureFixture[str]) -> None:
    img = str(newfs(tmp_path / "x.img", "16m", "-O", "2", "-B", endian))
    assert main(["touch", img, "/f"]) == 0
    assert main(["setfattr", "-n", "user.text", "-v", "hello world", img, "/f"]) == 0
    assert main(["setfattr", "-n", "user.bin", "-v", "0x00ff10", img, "/f"]) == 0
    assert main(["setfattr", "-n", "user.b64", "-v", "0sAAEC", img, "/f"]) == 0
    assert main(["setfattr", "-n", "system.sys", "-v", '"q"', img, "/f"]) == 0
    capsys.readouterr()
    assert main(["getfattr", img, "/f"]) == 0
    assert capsys.readouterr().out == '# file: f\nuser.b64=0sAAEC\nuser.bin=0sAP8Q\nuser.text="hello world"\n\n'
    assert main(["getfattr", "-m", "-", "-e", "hex", img, "/f"]) == 0
    out = capsys.readouterr().out
    assert "system.sys=0x71\n" in out and "user.bin=0x00ff10\n" in out
    assert main(["setfattr", "-x", "user.bin", img, "/f"]) == 0
    assert main(["getfattr", "-n", "user.bin", img, "/f"]) == 1
    assert "p2k getfattr: /f:" in capsys.readouterr().err
    assert main(["ln", "-s", img, "f", "/l"]) == 0
    assert main(["setfattr", "-h", "-n", "user.own", "-v", "1", img, "/l"]) == 0
    capsys.readouterr()
    assert main(["getfattr", "-h", img, "/l"]) == 0
    assert capsys.readouterr().out == '# file: l\nuser.own="1"\n\n'
    assert main(["stat", img, "/f"]) == 0
    # records: text 16+16, b64 16+8, sys 16+8 (name padded to 8 after the 7-byte header, then content)
    assert " Xattr: user 2  system 1  ExtSize: 80\n" in capsys.readouterr().out
    assert main(["dumpfs", "-i", img]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("ino ")]
    f_line = next(ln for ln in lines if "\tmode 100644" in ln)
    assert "\textsize 80\textb " in f_line and not f_line.endswith("extb 0,0")
    assert main(["fsck", "-fn", img]) == 0


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = str(newfs(tmp_path / "y.img", "8m", "-O", "2"))
    assert main(["touch", img, "/f"]) == 0
    capsys.readouterr()
    for argv in (["setfattr", "-n", "user.x", "-v", "0xzz", img, "/f"],
                 ["setfattr", "-n", "trusted.x", img, "/f"],
                 ["getfattr", "-m", "(", img, "/f"],
                 ["getfattr", img, "/missing"],
                 ["setfattr", img, "/f"]):
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc != 0 and "Traceback" not in err and err.startswith("p2k"), (argv, err)
        assert len(err.strip().splitlines()) == 1 or "usage:" in err, err
    u1 = str(newfs(tmp_path / "u1.img", "8m", "-O", "1"))
    assert main(["touch", u1, "/f"]) == 0
    assert main(["setfattr", "-n", "user.x", u1, "/f"]) == 1
    err = capsys.readouterr().err
    assert "UFS1 has no extended attribute area" in err or "Operation not supported" in err, err


def _host_tree(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    (root / "f").write_text("data\n")
    (root / "d" / "g").write_bytes(b"\0" * 5000)
    try:
        os.setxattr(root / "f", "user.k", b"v1")
        os.setxattr(root / "d", "user.dir", b"on a directory")
        os.setxattr(root / "d" / "g", "user.big", bytes(range(256)) * 12)
    except OSError as e:
        pytest.skip(f"host file system without user xattrs ({e.strerror})")
    if shutil.which("setfacl"):
        subprocess.run(["setfacl", "-m", "u:4321:r", str(root / "f")], check=True)
    os.symlink("f", root / "l")
    return root


def _host_xattrs(root: Path) -> dict[str, dict[str, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_symlink():
            out[str(p.relative_to(root))] = {n: os.getxattr(p, n) for n in os.listxattr(p)}
    return out


def test_cp_a_and_makefs_carry_xattrs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _host_tree(tmp_path / "src")
    want = _host_xattrs(src)
    img = str(newfs(tmp_path / "cp.img", "16m", "-O", "2"))
    assert main(["cp", "-a", img, str(src), ":/in"]) == 0
    assert main(["cp", "-a", img, ":/in", str(tmp_path / "out")]) == 0
    assert _host_xattrs(tmp_path / "out") == want
    mk = str(tmp_path / "mk.img")
    assert main(["makefs", "-o", "version=2,xattr", mk, str(src)]) == 0
    assert main(["cp", "-a", mk, ":/", str(tmp_path / "out2")]) == 0
    assert _host_xattrs(tmp_path / "out2") == want
    capsys.readouterr()
    for image in (img, mk):
        assert main(["fsck", "-fn", image]) == 0
        assert "INCORRECT" not in capsys.readouterr().out
    assert main(["makefs", "-o", "xattr", str(tmp_path / "v1.img"), str(src)]) == 1
    assert "needs version=2" in capsys.readouterr().err
