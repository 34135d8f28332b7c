"""The fast command-line reader (p2k.cli.quickparse) against argparse, the reference.

Whenever the fast path answers, argparse must give the very same namespace (every attribute:
options, defaults, ``func``, ``command``, the operands as settle_operands deals them, with and
without RUMP_SERVER); whenever argparse would say something (help, a usage error) the fast path
must decline, so that ``p2k`` prints what argparse prints. Command lines are generated from each
command's argparse declarations (its option strings, values, clusters, abbreviations, ``=``
forms) mixed with operands and junk words; the expected namespaces come from argparse itself.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2k.cli.argparser import build_parser, read_command_line
from p2k.cli.errors import UsageError
from p2k.cli.main import SUBCOMMANDS
from p2k.cli.quickparse import parse_quickly

COMMANDS = [(module, name) for module, names in SUBCOMMANDS.items() for name in names]
MODULE = {name: module for module, name in COMMANDS}
FAST = {"cat", "cp", "df", "du", "find", "ls", "stat", "chmod", "chown", "ln", "mkdir", "mv", "rm", "rmdir",
        "touch", "write", "getfattr", "mount", "dumpfs", "parts", "info", "sysctl"}
# ^ the fast path must read their ordinary command lines (the others declare what it leaves to argparse)
OPERANDS = ["IMG", "/", "/a", "b", ":/c", "-", "", "x y", "644", "0:0", "a=b"]
JUNK = ["-5", "-1.5", "--", "-Z", "--he", "--hel", "-h", "--help", "--version", "--ver", "-=", "---", "-x y", "-Zq"]
SERVER = "unix:///nonexistent/p2k.sock"
EXAMPLES = 5000 if os.environ.get("P2K_FULL") == "1" else 300  # per fs-utils command (CI: 300, ~6 s in all)

_PARSERS: dict[str, tuple[Any, Any]] = {}


def argparse_reading(words: list[str]) -> dict[str, Any] | str:
    """What argparse makes of ``p2k WORDS``: the namespace's attributes, or what it said."""
    name = words[0]
    if name not in _PARSERS:
        _PARSERS[name] = build_parser(SUBCOMMANDS, name)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            args = read_command_line(_PARSERS[name][0], _PARSERS[name][1], words)
    except UsageError as e:
        return f"usage error: {e}"
    except SystemExit as e:
        return f"exit {e.code}: {out.getvalue()[:60]}"
    return vars(args) if args is not None else "no command"


def fast_reading(words: list[str]) -> dict[str, Any] | None:
    args = parse_quickly(MODULE[words[0]], words[0], words[1:])
    return None if args is None else vars(args)


def _tokens(command: str) -> st.SearchStrategy[list[str]]:
    """Groups of words for ``command``, from its argparse declarations."""
    sub = build_parser(SUBCOMMANDS, command)[1][command]
    options = [a for a in sub._actions if a.option_strings]  # noqa: SLF001 - argparse has no public list
    takes_value = [a for a in options if a.nargs is None and a.const is None and type(a).__name__ == "_StoreAction"]
    strings = [s for a in options for s in a.option_strings]
    shorts = [s[1] for s in strings if len(s) == 2 and s[1] != "-"]
    value_shorts = [s[1] for a in takes_value for s in a.option_strings if len(s) == 2]
    values = sorted({str(c) for a in takes_value for c in (a.choices or ())} | {"ro", "ffs", "x", "*.c"})
    value = st.sampled_from(values + OPERANDS[:4] + ["-", "-x"])
    choices: list[st.SearchStrategy[list[str]]] = [
        st.lists(st.sampled_from(OPERANDS), min_size=1, max_size=3),
        st.sampled_from(JUNK).map(lambda w: [w]),
    ]
    if strings:
        choices.append(st.sampled_from(strings).map(lambda s: [s]))
        longs = [s for s in strings if len(s) > 3]
        if longs:  # abbreviations, and flags given a value
            choices.append(st.tuples(st.sampled_from(longs), st.integers(2, 6)).map(lambda t: [t[0][:t[1]]]))
            choices.append(st.tuples(st.sampled_from(longs), value).map(lambda t: [f"{t[0]}={t[1]}"]))
    if takes_value:
        opt = st.sampled_from([s for a in takes_value for s in a.option_strings])
        choices.append(st.tuples(opt, value).map(list))
        choices.append(st.tuples(opt, value).map(lambda t: [t[0] + t[1]] if len(t[0]) == 2 else [f"{t[0]}={t[1]}"]))
    if shorts:  # clusters: flags, perhaps ending in an option that takes a value (joined or not)
        cluster = st.tuples(st.lists(st.sampled_from(shorts), min_size=1, max_size=4),
                            st.sampled_from(value_shorts + [""]), value, st.booleans())
        choices.append(cluster.map(lambda t: ["-" + "".join(t[0]) + t[1] + t[2]] if t[1] and t[3]
                                   else ["-" + "".join(t[0]) + t[1]] + ([t[2]] if t[1] else [])))
    return st.one_of(*choices)


def _check(command: str, answered: list[int]) -> Callable[[], None]:
    operands = st.lists(st.sampled_from(OPERANDS[:5]), max_size=4).map(lambda ws: [[w] for w in ws])
    line = st.tuples(st.lists(_tokens(command), max_size=4), operands).flatmap(lambda t: st.permutations(t[0] + t[1]))

    @settings(max_examples=EXAMPLES if command in FAST else EXAMPLES // 12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(line, st.booleans())
    def check(groups: list[list[str]], server: bool) -> None:
        words = [command] + [w for g in groups for w in g]
        with pytest.MonkeyPatch.context() as mp:
            if server:
                mp.setenv("RUMP_SERVER", SERVER)
            else:
                mp.delenv("RUMP_SERVER", raising=False)
            fast = fast_reading(words)
            if fast is None:
                return
            answered.append(1)
            assert argparse_reading(words) == fast, words

    return check


@pytest.mark.parametrize("command", [name for _, name in COMMANDS])
def test_the_fast_path_answers_only_as_argparse_would(command: str) -> None:
    answered: list[int] = []
    _check(command, answered)()
    if command in FAST:  # the generated lines are not all junk: the fast path answered a share of them
        assert len(answered) >= 10, f"the fast path answered {len(answered)} of {command}'s command lines"


ORDINARY = [
    ["find", "IMG", "/"], ["find", "IMG", "/d", "-name", "*.c", "-type", "f"], ["find", "-tffs", "IMG"],
    ["ls", "-lR", "IMG", "/"], ["ls", "IMG", "-a", "/docs"], ["ls", "-lRai", "IMG"], ["ls", "-o", "ro", "IMG", "/"],
    ["cat", "IMG", "/f", "/g"], ["stat", "IMG", "/f"], ["du", "-s", "IMG", "/"], ["df", "-i", "IMG"],
    ["cp", "-p", "IMG", ":/f", "out"], ["cp", "-Rpq", "IMG", ":/", "out"], ["cp", "--quiet", "IMG", "in", ":/"],
    ["mkdir", "-p", "-m", "700", "IMG", "/x/y"], ["mkdir", "-pm700", "IMG", "/x"], ["rm", "-rf", "IMG", "/x"],
    ["rmdir", "IMG", "/x"], ["mv", "IMG", "/a", "/b"], ["ln", "-sf", "IMG", "a", "b"], ["chmod", "IMG", "644", "/f"],
    ["chown", "-h", "IMG", "0:0", "/f"], ["touch", "-c", "IMG", "/f"], ["write", "-a", "IMG", "/f"],
    ["ls", "-d", "spec", "/"], ["ls", "-", "/"], ["getfattr", "-h", "-e", "hex", "IMG", "/f"],
    ["demo"], ["dumpfs", "-s", "IMG"], ["dumpfs", "-d", "spec"], ["parts", "IMG"], ["info", "IMG", "--json"],
    ["sysctl", "-a"], ["sysctl", "-n", "kern.x", "hw.y"], ["mount", "IMG", "/mnt"],
    ["mount", "-f", "-o", "ro", "IMG", "/m"],
]


@pytest.mark.parametrize("words", ORDINARY, ids=" ".join)
def test_ordinary_command_lines_take_the_fast_path(monkeypatch: pytest.MonkeyPatch, words: list[str]) -> None:
    monkeypatch.delenv("RUMP_SERVER", raising=False)
    fast = fast_reading(words)
    assert fast is not None, words
    assert fast == argparse_reading(words)


DECLINED = [
    ["find", "IMG", "-type", "z"], ["ls", "-Z", "IMG"], ["ls"], ["cat", "/f"], ["ls", "--he", "IMG"],
    ["ls", "-h", "IMG"], ["find", "IMG", "-ty", "f"], ["find", "IMG", "-name"], ["ls", "--", "IMG"],
    ["ln", "IMG", "a", "b", "c"], ["chmod", "IMG", "644"], ["ls", "-l=x", "IMG"], ["cp", "--quiet=1", "IMG", "a", "b"],
    ["ls", "IMG", "-5"], ["cp", "--qu", "IMG", "a", "b"], ["chown", "--help"], ["ls", "--version"],
    ["fsck", "-n", "IMG"],  # a command declared with groups: argparse's alone
    ["dumpfs", "IMG", "-s", "x"], ["parts"], ["sysctl", "a", "-n", "b"], ["demo", "x"],
]


@pytest.mark.parametrize("words", DECLINED, ids=" ".join)
def test_usage_errors_and_help_are_argparse_s(monkeypatch: pytest.MonkeyPatch, words: list[str]) -> None:
    """The fast path declines, and ``p2k`` prints what argparse says, with its exit status."""
    monkeypatch.delenv("RUMP_SERVER", raising=False)
    assert fast_reading(words) is None, words
    env = {k: v for k, v in os.environ.items() if k != "RUMP_SERVER"}
    r = subprocess.run([sys.executable, "-c", "import sys; from p2k.cli.main import main; sys.exit(main())", *words],
                       capture_output=True, text=True, timeout=60, env=env)
    out = io.StringIO()
    want: tuple[str | int | None, str, str]
    try:
        with contextlib.redirect_stdout(out):
            read_command_line(*build_parser(SUBCOMMANDS, words[0]), words)
        want = (None, out.getvalue(), "")
    except UsageError as e:
        want = (1, "", f"{e.prog}: {e}\n")
    except SystemExit as e:
        want = (e.code, out.getvalue(), "")
    if want[0] is None:  # argparse read it: the command ran (and failed on the missing image)
        assert r.returncode != 0 and r.stderr.startswith(f"p2k {words[0]}: "), r
    else:
        assert (r.returncode, r.stdout, r.stderr) == want


def _image_command(extra: Callable[[Any], None]) -> Callable[[Any], None]:
    """A register() declaring ``x`` as the image commands do, plus ``extra``'s declarations."""
    from p2k.cli.imagearg import add_image_args

    def register(sub: Any) -> None:
        p = sub.add_parser("x", help="a command")
        add_image_args(p, server_ok=True)
        extra(p)
        p.add_argument("paths", nargs="*", default=["/"])
        p.set_defaults(func=print)

    return register


UNKNOWN_DECLARATIONS: dict[str, Callable[[Any], None]] = {
    "type": lambda p: p.add_argument("-n", type=int),
    "append": lambda p: p.add_argument("-e", action="append"),
    "store_const": lambda p: p.add_argument("-y", dest="mode", action="store_const", const="y"),
    "count": lambda p: p.add_argument("-v", action="count"),
    "nargs on an option": lambda p: p.add_argument("-p", nargs=2),
    "required option": lambda p: p.add_argument("-r", required=True),
    "group": lambda p: p.add_mutually_exclusive_group().add_argument("-g", action="store_true"),
    "operand with choices": lambda p: p.add_argument("shell", choices=["bash", "zsh"]),
    "operand nargs=2": lambda p: p.add_argument("pair", nargs=2),
}


@pytest.mark.parametrize("what", UNKNOWN_DECLARATIONS)
def test_declarations_it_does_not_know_leave_the_command_to_argparse(monkeypatch: pytest.MonkeyPatch,
                                                                      what: str) -> None:
    """A command declaring anything outside the subset (a type, an append action, a group...) is
    read by argparse whatever its command line, even one the fast reader would otherwise answer."""
    import types

    plain = types.ModuleType("p2k_test_plain")
    plain.register = _image_command(lambda p: None)  # type: ignore[attr-defined]
    odd = types.ModuleType("p2k_test_odd")
    odd.register = _image_command(UNKNOWN_DECLARATIONS[what])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, plain.__name__, plain)
    monkeypatch.setitem(sys.modules, odd.__name__, odd)
    monkeypatch.delenv("RUMP_SERVER", raising=False)
    assert parse_quickly(plain.__name__, "x", ["IMG", "/a"]) is not None
    assert parse_quickly(odd.__name__, "x", ["IMG", "/a"]) is None


GETOPT_WORDS = ["-d", "-h", "-n", "-dn", "-hd", "-x", "-dx", "-a", "-ab", "-ax", "-b", "-c", "-:", "--", "-", "",
                "--help", "--x=y", "---", "a", "b", "x y", "-5"]


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(st.lists(st.sampled_from(GETOPT_WORDS), max_size=6), st.sampled_from(["dhn", "anw", "a:b", "a:bc:", "ab:", ""]))
def test_getopt_is_the_standard_library_s(words: list[str], spec: str) -> None:
    """The getopt programs' own getopt (p2k.cli.manual) answers as getopt.getopt does, or fails
    with its message: rump.halt and rump.sysctl read their options without importing gettext."""
    import getopt

    from p2k.cli.manual import getopt as own

    try:
        want: object = getopt.getopt(words, spec)
    except getopt.GetoptError as e:
        want = e.msg
    try:
        got: object = own(words, spec)
    except ValueError as e:
        got = str(e)
    assert got == want
