"""The ecosystem's commands: ``p2k info``, ``p2k completion bash|zsh``, ``python -m p2k``."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from eco_images import data_tree, labelled, makefs, needs_makefs

import p2k

ROOT = Path(__file__).resolve().parents[2]
P2K = [sys.executable, "-m", "p2k"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*P2K, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_python_m_p2k_and_one_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"p2k {p2k.__version__}"
    from importlib.metadata import version

    assert version("p2k") == p2k.__version__  # the package metadata reads the same one place


@needs_makefs
def test_info_labelled_image(tmp_path: Path) -> None:
    img = labelled(makefs(tmp_path / "fs.img", data_tree(tmp_path / "tree"), "8m", "-B", "be"),
                   tmp_path / "disk.img")
    r = run("info", str(img))
    assert r.returncode == 0, r.stderr
    assert "container   none (raw image)" in r.stdout
    assert "partitions  disklabel map, 512-byte sectors" in r.stdout
    assert "  a     4.2BSD " in r.stdout and f"file system {img}:a" in r.stdout
    assert "FFSv2 (UFS2), big-endian, superblock at 8192" in r.stdout
    assert "state     clean" in r.stdout and "journal   none" in r.stdout
    facts = json.loads(run("info", "--json", str(img)).stdout)
    (fs,) = facts["filesystems"]
    assert (fs["name"], fs["version"], fs["byteorder"], fs["size"], fs["clean"]) == ("a", 2, "big", 8 << 20, True)


def test_info_container(tmp_path: Path) -> None:
    r = run("info", str(ROOT / "images/demo.img.gz"))
    assert r.returncode == 0, r.stderr
    assert "container   gzip (read-only)" in r.stdout and "size      2.0 MiB" in r.stdout
    assert "FFSv2 (UFS2), little-endian" in r.stdout


def test_info_dirty_and_not_ffs(tmp_path: Path) -> None:
    img = tmp_path / "demo.img"
    img.write_bytes(gzip.decompress((ROOT / "images/demo.img.gz").read_bytes()))
    assert "UFS2), little-endian" in run("info", str(img)).stdout
    k = p2k.Kernel(env={})  # leave it mounted read-write at a "crash": the clean flag stays off
    k.etfs_register("/dev/dk", str(img))
    k.sys.mkdir("/mnt", 0o755)
    k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
    k.sys.sync()
    facts = json.loads(run("info", "--json", str(img)).stdout)
    k.halt()
    assert (facts["filesystems"][0]["clean"], facts["filesystems"][0]["was_clean"]) == (False, True)
    (tmp_path / "zero.img").write_bytes(bytes(1 << 20))
    r = run("info", str(tmp_path / "zero.img"))
    assert r.returncode == 1 and "no FFS file system found" in r.stdout
    r = run("info", str(tmp_path / "missing.img"))
    assert r.returncode != 0 and r.stderr.startswith("p2k") and "Traceback" not in r.stderr


def test_bash_completion_from_the_parser(tmp_path: Path) -> None:
    script = run("completion", "bash").stdout
    (tmp_path / "p2k.bash").write_text(script)
    probe = f"""
source {tmp_path}/p2k.bash
complete -p p2k >/dev/null || exit 3
COMP_WORDS=(p2k fs); COMP_CWORD=1; COMP_LINE="p2k fs"; COMP_POINT=6
_shtab_p2k p2k fs p2k; echo "subcommands: ${{COMPREPLY[*]}}"
COMP_WORDS=(p2k fsck -); COMP_CWORD=2; COMP_LINE="p2k fsck -"; COMP_POINT=10
_shtab_p2k p2k - fsck; echo "options: ${{COMPREPLY[*]}}"
"""
    r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    subs = r.stdout.split("subcommands:")[1].split("\n")[0].split()
    assert subs == ["fsck"], r.stdout  # the only subcommand starting with "fs"
    opts = r.stdout.split("options:")[1].split()
    assert {"-n", "-y", "-p", "--json", "-q"} <= set(opts), r.stdout


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_completion_parses(tmp_path: Path) -> None:
    script = run("completion", "zsh").stdout
    assert script.startswith("#compdef p2k") and "fsck:" in script and "info" in script
    (tmp_path / "_p2k").write_text(script)
    r = subprocess.run(["zsh", "-n", str(tmp_path / "_p2k")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


WAPBL = ROOT.parent / "shared" / "fixtures" / "wapbl"


@pytest.mark.skipif(not (WAPBL / "d10.img.gz").exists(), reason="NetBSD WAPBL fixtures (../shared/fixtures) absent")
def test_info_reports_a_netbsd_journal(tmp_path: Path) -> None:
    img = tmp_path / "d10.img"
    img.write_bytes(gzip.decompress((WAPBL / "d10.img.gz").read_bytes()))
    before = img.read_bytes()
    from p2k.fs.ffs.fs import find_superblock
    from p2k.fs.ffs.wapbl import log_state

    def pread(off: int, n: int) -> bytes:
        return before[off:off + n]

    sb = find_superblock(pread, len(before))
    replay = log_state(sb, pread, len(before), sb.fs_ncg * sb.fs_ipg)  # what a mount would replay
    assert replay.transactions >= 1  # the fixture is dirty (its README)
    r = run("info", str(img))
    assert r.returncode == 0, r.stderr
    assert (f"journal   WAPBL log, 1.0 MiB in inode 233: {replay.transactions} transaction(s), "
            f"{len(replay.blocks)} block(s) to replay") in r.stdout
    assert "flags wapbl" in r.stdout and "NOT CLEAN" in r.stdout
    (fs,) = json.loads(run("info", "--json", str(img)).stdout)["filesystems"]
    assert (fs["journal"]["kind"], fs["journal"]["size"], fs["journal"]["where"]) == ("wapbl", 1 << 20, "in inode 233")
    assert img.read_bytes() == before  # info only reads


@needs_makefs
def test_fsutils_resolve_absolute_links_inside_the_image(tmp_path: Path) -> None:
    tree = data_tree(tmp_path / "tree")
    (tree / "usr/share/zoneinfo").mkdir(parents=True)
    (tree / "usr/share/zoneinfo/UTC").write_bytes(b"TZif2 UTC")
    (tree / "etc/localtime").symlink_to("/usr/share/zoneinfo/UTC")
    img = makefs(tmp_path / "disk.img", tree)
    r = run("cat", str(img), "/etc/localtime")
    assert (r.returncode, r.stdout) == (0, "TZif2 UTC"), r.stderr
    r = run("ls", str(img), "/../..")
    assert r.stdout.split() == ["data", "etc", "motd", "usr"], r.stderr
    r = run("cat", str(img), "/nope")
    assert r.returncode == 1 and r.stderr.strip() == "p2k cat: /nope: No such file or directory (ENOENT)", r.stderr
