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


def test_fsck_of_a_missing_image_is_a_failed_check(tmp_path: Path) -> None:
    r = p2k("fsck", "-n", str(tmp_path / "missing.img"))
    assert r.returncode == 8, r.stdout + r.stderr
    assert r.stderr == f"p2k fsck: {tmp_path / 'missing.img'}: No such file or directory (ENOENT)\n"


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


def test_help_is_the_same_whatever_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser's shape must not depend on RUMP_SERVER: every command documents the same operands."""
    from p2k.cli.main import build_parser

    monkeypatch.delenv("RUMP_SERVER", raising=False)
    plain = {name: p.format_help() for name, p in build_parser()[1].items()}
    monkeypatch.setenv("RUMP_SERVER", "unix:///nonexistent/p2k.sock")
    served = {name: p.format_help() for name, p in build_parser()[1].items()}
    assert plain == served
    assert all("IMAGE" in plain[cmd] for cmd in ("ls", "cat", "mkdir", "ln", "mount"))


def test_one_command_builds_only_its_own_parser_and_the_same_one() -> None:
    """A command line builds only its command's parser (start-up): the table naming each
    module's commands must match what the modules register, and the parser built alone must be
    the one the full build gives (same help text)."""
    from p2k.cli.main import SUBCOMMANDS, build_parser

    _, full = build_parser()
    assert sorted(full) == sorted(n for names in SUBCOMMANDS.values() for n in names)
    for names in SUBCOMMANDS.values():
        for name in names:
            _, alone = build_parser(name)
            assert set(alone) == {name}, name
            assert alone[name].format_help() == full[name].format_help(), name
    _, unknown = build_parser("no-such-command")
    assert set(unknown) == set(full)


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


@pytest.mark.parametrize("prog", ["rump_server", "rump.halt", "rump.sysctl"])
def test_getopt_programs_have_a_full_help_page(prog: str) -> None:
    """The NetBSD-compatible programs keep getopt (``rump.halt -h`` halts), so ``--help`` is theirs
    alone: exit 0 on stdout, every option of the usage line explained, and the same ENVIRONMENT and
    EXIT STATUS sections as the p2k commands."""
    import re

    exe = Path(sys.executable).with_name(prog)
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "RUMP_SERVER"})
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    usage, _, rest = r.stdout.partition("\n\n")
    options = rest.split("\noptions:\n")[1].split("\n\nenvironment:\n")[0]
    explained = set(re.findall(r"^  (-\w|--[\w-]+)", options, re.M))
    flags = {f"-{c}" for group in re.findall(r"\[-(\w+)\]", usage) for c in group}
    flags |= set(re.findall(r"\[(-\w|--[\w-]+) ", usage))
    assert flags and flags <= explained, flags - explained
    assert "\nexit status:\n  0 " in r.stdout and "\n  1 " in r.stdout.split("exit status:")[1]
    assert "\nenvironment:\n" in r.stdout and "RUMP_" in r.stdout.split("environment:")[1]


def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path) -> None:
    """``p2k ls -l IMG /many | head -1``: the closed pipe ends the command quietly, as ls does. The
    listing is made larger than a pipe's buffer, so the command really meets the closed pipe."""
    tree = tmp_path / "tree" / "many"
    tree.mkdir(parents=True)
    for i in range(2000):
        (tree / f"file-with-a-longish-name-{i:05d}").touch()
    img = tmp_path / "many.img"
    subprocess.run(["makefs", "-t", "ffs", "-s", "8m", str(img), str(tree.parent)], check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from p2k.cli.main import main; sys.exit(main())",
                             "ls", "-l", str(img), "/many"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert err == ""


@pytest.mark.parametrize(("argv", "server", "want"), [
    (["chmod", "IMG", "644", "/a", "/b"], False, {"image": "IMG", "mode": "644", "paths": ["/a", "/b"]}),
    (["chmod", "644", "/a", "/b"], True, {"image": None, "mode": "644", "paths": ["/a", "/b"]}),
    (["ls", "-d", "key=/dev/dk,hostpath=x", "/a", "-l", "/b"], False, {"image": None, "paths": ["/a", "/b"]}),
    (["ls", "IMG", "-l", "/a", "/b"], False, {"image": "IMG", "paths": ["/a", "/b"]}),
    (["ls", "IMG"], False, {"image": "IMG", "paths": ["/"]}),
    (["ls"], True, {"image": None, "paths": ["/"]}),
    (["ls", "/"], True, {"image": None, "paths": ["/"]}),
    (["ln", "-s", "t", "l"], True, {"image": None, "target": "t", "link": "l"}),
    (["find", "IMG", "/etc", "-name", "x"], False, {"image": "IMG", "path": "/etc", "name": "x"}),
    (["mount", "-t", "tmpfs", "none", "/mnt"], True, {"image": "none", "mountpoint": "/mnt"}),
])
def test_operands_are_dealt_after_parsing(monkeypatch: pytest.MonkeyPatch, argv: list[str], server: bool,
                                         want: dict[str, object]) -> None:
    """The same parser serves every mode; only the dealing of the words differs (RUMP_SERVER and
    -d take the IMAGE's place, options may come between operands)."""
    from p2k.cli.imagearg import settle_operands
    from p2k.cli.main import build_parser

    if server:
        monkeypatch.setenv("RUMP_SERVER", "unix:///nonexistent/p2k.sock")
    else:
        monkeypatch.delenv("RUMP_SERVER", raising=False)
    parser, commands = build_parser()
    args, extra = parser.parse_known_args(argv)
    settle_operands(commands[argv[0]], args, extra)
    assert {k: getattr(args, k) for k in want} == want


def test_too_many_or_too_few_operands_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from p2k.cli.errors import UsageError
    from p2k.cli.imagearg import settle_operands
    from p2k.cli.main import build_parser

    monkeypatch.delenv("RUMP_SERVER", raising=False)
    parser, commands = build_parser()
    for argv in (["ln", "IMG", "a", "b", "c"], ["cat", "IMG"], ["chmod", "IMG", "644"]):
        args, extra = parser.parse_known_args(argv)
        with pytest.raises(UsageError):
            settle_operands(commands[argv[0]], args, extra)
