"""The command line on bad input and on drivespecs: one line, non-zero exit, no traceback."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO  # noqa: E402


def p2k(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from p2k.cli.main import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=60, env=env)


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
    assert r.stderr.startswith(f"p2k {args[0]}: ")


def test_fsck_of_garbage_exits_8_without_writing(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.img"
    data = os.urandom(200_000)
    garbage.write_bytes(data)
    r = p2k("fsck", "-n", str(garbage))
    assert r.returncode == 8, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert garbage.read_bytes() == data


def test_errors_name_the_command_the_path_and_the_errno(demo: Path) -> None:
    r = p2k("cat", str(demo), "/no/such/file")
    assert (r.returncode, r.stderr) == (1, "p2k cat: /no/such/file: No such file or directory (ENOENT)\n")
    r = p2k("mkdir", str(demo), "/docs")
    assert (r.returncode, r.stderr) == (1, "p2k mkdir: /docs: File exists (EEXIST)\n")


def test_fstype_is_checked_against_the_image(demo: Path) -> None:
    r = p2k("ls", "-t", "tmpfs", str(demo), "/")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"p2k ls: {demo}: -t tmpfs") and len(r.stderr.splitlines()) == 1, r.stderr
    r = p2k("ls", "-t", "ffs", str(REPO / "README.md"), "/")
    assert r.returncode == 1 and r.stderr.startswith("p2k ls: ") and "README.md: " in r.stderr, r.stderr


def test_options_between_operands(demo: Path) -> None:
    r = p2k("ls", str(demo), "-a", "/docs")
    assert (r.returncode, r.stdout) == (0, ".\n..\nffs.txt\n"), r.stderr


def test_help_is_the_same_whatever_the_environment() -> None:
    """The parser's shape must not depend on RUMP_SERVER: the same operands are documented."""
    env = {k: v for k, v in os.environ.items() if k != "RUMP_SERVER"}
    for cmd in ("ls", "cat", "mkdir", "ln", "mount"):
        plain = p2k(cmd, "--help", env=env)
        served = p2k(cmd, "--help", env={**env, "RUMP_SERVER": "unix:///nonexistent/p2k.sock"})
        assert plain.returncode == served.returncode == 0
        assert plain.stdout == served.stdout
        assert "IMAGE" in plain.stdout


def test_with_rump_server_set_the_first_operand_is_a_path() -> None:
    """With RUMP_SERVER the words are the command's own operands: the error is about the server."""
    env = {**os.environ, "RUMP_SERVER": "unix:///nonexistent/p2k.sock"}
    r = p2k("ln", "-s", "target", "link", env=env)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "required" not in r.stderr and "nonexistent" in r.stderr, r.stderr


def test_every_command_documents_its_operands_environment_and_exit_status() -> None:
    from p2k.cli.main import build_parser

    _, commands = build_parser()
    assert {"ls", "fsck", "mount", "newfs"} <= set(commands)
    for name, p in commands.items():
        for a in p._actions:
            assert a.help, f"p2k {name}: {a.dest} has no help"
        text = p.format_help()
        assert "\nenvironment:\n" in text and "\nexit status:\n" in text, name
        assert "  0 " in text.split("exit status:")[1], name
