"""The ENVIRONMENT and EXIT STATUS sections of every command's ``--help``, from one table.

NetBSD's manual pages end with what a command reads from the environment and what its exit status
means; a script author needs both and should not have to read the source for them. The sections
are generated here rather than written into each command's epilog, so that two commands with the
same behaviour say it in the same words and a new command gets a correct default.
"""

from __future__ import annotations

import sys

from p2k.slotted import Frozen

ENVIRONMENT = {
    "RUMP_SERVER": "URL of a rump_server (unix://PATH, tcp://HOST:PORT). When set, the command works in "
                   "that server's namespace: it takes no IMAGE, and -t/-o do not apply.",
    "RUMP_AUTHFILE": "file holding the shared secret of a server started with -a (read when "
                     "RUMP_SERVER is used).",
    "RUMP_MEMLIMIT": "bytes (k/m/g suffix) the private kernel's buffer and vnode caches may hold.",
    "RUMP_NVNODES": "vnodes the private kernel keeps cached (default 1024).",
    "RUMP_NCPU": "virtual CPUs of the private kernel: a number or 'host' (default 2).",
    "RUMP_VERBOSE": "checked (a bad value is an error); p2k mount's daemon logs its steps when it is true.",
    "RUMP_THREADS": "checked (a bad value is an error); nothing in p2k's kernel depends on it.",
}
KERNEL_ENV = ("RUMP_MEMLIMIT", "RUMP_NVNODES", "RUMP_NCPU", "RUMP_VERBOSE", "RUMP_THREADS")
SERVER_ENV = ("RUMP_SERVER", "RUMP_AUTHFILE", *KERNEL_ENV)

OK_OR_ERROR = ((0, "success."),
               (1, "an error; one line on stderr per failure: 'p2k CMD: PATH: message (ENAME)'."))


class Manual(Frozen):
    """What one command's ENVIRONMENT and EXIT STATUS sections say. Not a dataclass (which would
    import ``inspect`` and ``ast``) nor a ``typing.NamedTuple`` (which compiles its annotations,
    and a process's first ``compile()`` costs 0.8 ms): ``--help`` builds this table each time."""

    __slots__ = ("env", "exits", "env_note", "env_text")
    env: tuple[str, ...]
    exits: tuple[tuple[int, str], ...]
    env_note: str
    env_text: tuple[tuple[str, str], ...]  # a variable that means something else for this command

    def __init__(self, env: tuple[str, ...], exits: tuple[tuple[int, str], ...] = OK_OR_ERROR, env_note: str = "",
                 env_text: tuple[tuple[str, str], ...] = ()) -> None:
        self._set(env=env, exits=exits, env_note=env_note, env_text=env_text)


_FSUTILS = Manual(SERVER_ENV)
_OWN_KERNEL = Manual((), env_note="No RUMP_* variable applies: the command's kernel takes its settings "
                                  "from the options alone, so the environment cannot change the result.")

_CLIENT_ENV_TEXT = (("RUMP_SERVER", "URL of the rump_server to act on (unix://PATH, tcp://HOST:PORT); required."),)

COMMANDS: dict[str, Manual] = {
    **{name: _FSUTILS for name in ("ls", "cat", "stat", "find", "du", "df", "cp", "mkdir", "rm", "rmdir",
                                   "mv", "ln", "chmod", "chown", "touch", "write", "getfattr", "setfattr")},
    "mount": Manual(KERNEL_ENV, ((0, "mounted; the daemon serving it has detached (or, with -f, it was "
                                     "unmounted cleanly)."),
                                 (1, "not mounted; the reason is one line on stderr.")),
                    env_note="P2K_MOUNT_LOG names a file for the daemon's log; P2K_STATS_FILE where "
                             "kill -USR1 writes its counters; P2K_FUSE_TRANSPORT the default of -o "
                             "transport= (devfuse)."),
    "umount": Manual(()),
    "newfs": _OWN_KERNEL,
    "makefs": _OWN_KERNEL,
    "dumpfs": _OWN_KERNEL,
    "demo": Manual(KERNEL_ENV),
    "fsck": Manual((), ((0, "the file system is clean, or was made clean."),
                        (1, "usage error."),
                        (2, "inconsistencies remain (answered no, or -p met one it may not fix)."),
                        (8, "the check failed: no usable superblock, or the image cannot be read.")),
                   env_note=_OWN_KERNEL.env_note),
    "parts": Manual((), env_note="No RUMP_* variable applies: the command reads the image's partition map "
                                 "and starts no kernel."),
    "crashtest": Manual((), ((0, "every cut point passed."),
                             (1, "a cut point failed (its reproduce line is on stderr), or none ran.")),
                        env_note=_OWN_KERNEL.env_note),
    "info": Manual((), ((0, "every file system found was read."),
                        (1, "the image cannot be read, or a partition or the image holds no FFS file system.")),
                   env_note=_OWN_KERNEL.env_note),
    "completion": Manual((), env_note="None: the script is generated from the parser alone."),
    "rump_server": Manual(KERNEL_ENV, ((0, "the server is up and accepts connections (the parent of a detached "
                                           "server), or it halted cleanly (rump.halt, SIGTERM, SIGINT)."),
                                       (1, "usage error, a bad drivespec, or the kernel, a module, a drive or "
                                           "the URL failed; one line on stderr says which.")),
                          env_note="-c and -r override RUMP_NCPU and RUMP_MEMLIMIT."),
    "rump.halt": Manual(("RUMP_SERVER", "RUMP_AUTHFILE"), env_text=_CLIENT_ENV_TEXT, exits=
                        ((0, "the server halted (or, with -h, its kernel did)."),
                         (1, "usage error, 'init failed: REASON' (server not reachable or busy), or "
                             "'reboot: REASON' (the server refused)."))),
    "rump.sysctl": Manual(("RUMP_SERVER", "RUMP_AUTHFILE"), env_text=_CLIENT_ENV_TEXT, exits=
                          ((0, "every name was read or written."),
                           (1, "usage error, the server cannot be reached, a name is unknown, a value is not "
                               "a number, or a write was refused; one line 'rump.sysctl: NAME: reason' each."))),
}
DEFAULT = Manual(KERNEL_ENV)


def _section(title: str, items: list[tuple[str, str]]) -> list[str]:
    import textwrap  # help pages only: it imports re (with enum, 2.5 ms), which the getopt programs spare

    lines = [title + ":"]
    for key, text in items:
        head = f"  {key:<14} "
        if len(key) > 14:  # a long key gets a line of its own, the text aligned below it
            lines.append(f"  {key}")
            head = " " * 17
        lines += textwrap.wrap(text, 96, initial_indent=head, subsequent_indent=" " * 17)
    return lines


def epilog(command: str | None, extra: str | None = None) -> str:
    """The sections for ``command`` (the whole program's when None), after the command's own epilog."""
    m = COMMANDS.get(command, DEFAULT) if command else Manual(SERVER_ENV)
    out = [extra.rstrip(), ""] if extra else []
    own = dict(m.env_text)
    env = [(name, own.get(name, ENVIRONMENT[name])) for name in m.env]
    if env:
        out += _section("environment", env)
    else:
        out += ["environment:"]
    if m.env_note:
        import textwrap

        out += textwrap.wrap(m.env_note, 110, initial_indent="  ", subsequent_indent="  ")
    out += [""] + _section("exit status", [(str(code), text) for code, text in m.exits])
    return "\n".join(out)


def help_page(prog: str, usage: str, summary: str, options: list[tuple[str, str]]) -> str:
    """``--help`` for the getopt commands (rump_server, rump.halt, rump.sysctl), laid out as the
    argparse ones are. They keep getopt because their short options are NetBSD's (``rump.halt -h``
    halts), so ``--help`` is the one long option they all accept, and it must say as much as the
    ``p2k`` commands' help: synopsis, options, environment, exit status."""
    import textwrap

    lines = [f"usage: {prog} {usage}", ""]
    lines += textwrap.wrap(summary, 100)
    lines += [""] + _section("options", options)
    return "\n".join(lines) + "\n\n" + epilog(prog) + "\n"


def getopt_or_usage(prog: str, argv: list[str], spec: str,
                    usage: str) -> tuple[list[tuple[str, str]], list[str]] | None:
    """BSD getopt for the NetBSD-compatible programs: (options, operands), or None after printing
    ``PROG: message`` and the usage line on stderr, as their C originals do."""
    try:
        return getopt(argv, spec)
    except ValueError as e:
        print(f"{prog}: {e}\nusage: {prog} {usage}", file=sys.stderr)
        return None


def getopt(argv: list[str], spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The standard library's ``getopt.getopt(argv, spec)`` without long options, with its messages
    (raised as ValueError): options up to the first operand or ``--``, clustered (``-dn``), a
    value joined or in the next word (``-ax``, ``-a x``). Its module imports gettext with re and
    enum (3 ms of rump.halt's start-up) for those two messages; tests/cli/test_quickparse.py
    holds the two to the same answers."""
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        word = argv[i]
        i += 1
        if word == "--":
            break
        if word.startswith("--"):
            raise ValueError(f"option --{word[2:].partition('=')[0]} not recognized")
        rest = word[1:]
        while rest:
            opt, rest = rest[0], rest[1:]
            at = spec.find(opt) if opt != ":" else -1
            if at < 0:
                raise ValueError(f"option -{opt} not recognized")
            value = ""
            if spec.startswith(":", at + 1):
                if not rest:
                    if i >= len(argv):
                        raise ValueError(f"option -{opt} requires argument")
                    rest, i = argv[i], i + 1
                value, rest = rest, ""
            opts.append(("-" + opt, value))
    return opts, argv[i:]
