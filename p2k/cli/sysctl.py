"""``rump.sysctl [-an] [-w] [name[=value] ...]``: a kernel's sysctl tree, as NetBSD's sysctl(8).

``rump.sysctl`` talks to the server in ``RUMP_SERVER`` (NetBSD's rump.sysctl is sysctl(8) linked
against rumpclient); ``p2k sysctl`` asks a fresh kernel in this process, whose values are the
defaults from the ``RUMP_*`` variables. The nodes are ``p2k.vfs.sysctl``'s: ``kern.maxvnodes``
(writable), ``kern.mem.*``, ``vfs.vnode.*`` (counts and reclaims), ``vfs.bufcache.*``, ``hw.*``.

Output as sysctl(8): ``name = value``; ``-n`` the value alone; a write prints ``name: old -> new``.
A name selects its whole subtree (``vfs`` lists every vfs node); no name, or ``-a``, lists all.
Exit status 0, or 1 when a name is unknown, a value is not a number or a write is refused
(writing needs root in the kernel); errors are one line ``PROG: NAME: reason``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy)
if TYPE_CHECKING:
    from typing import Any

USAGE = "[-an] [-w] [name[=value] ...]"
OPTIONS = [("-a", "list every node (the default without a name)."),
           ("-n", "print values only, without names."),
           ("-w", "write: every operand is name=value (a plain name=value writes too)."),
           ("name[=value]", "a node or subtree to print, or a node to set (needs root in the kernel).")]


def run(prog: str, argv: list[str], target: Any) -> int:
    """sysctl(8) against ``target``, anything with ``sysctl`` and ``sysctl_list`` (a ``k.sys``,
    local or remote); ``target`` may be a callable returning it, called only once options are good."""
    if "--help" in argv[:1]:
        from p2k.cli.manual import help_page

        print(help_page(prog, USAGE, "Read or set the sysctl nodes of the kernel served at RUMP_SERVER; a name "
                        "selects its subtree, no name lists all.", OPTIONS), end="")
        return 0
    from p2k.cli.manual import getopt_or_usage

    parsed = getopt_or_usage(prog, argv, "anw", USAGE)
    if parsed is None:
        return 1
    opts, names = parsed
    flags = {f for f, _ in opts}
    if "-w" in flags and not names:
        print(f"usage: {prog} {USAGE}", file=sys.stderr)
        return 1
    if callable(target):
        try:
            target = target()
        except OSError as e:
            print(f"{prog}: init failed: {e.strerror or os.strerror(e.errno or 5)}", file=sys.stderr)
            return 1
    bare = "-n" in flags
    status = 0
    for name in names or [""]:
        try:
            if "=" in name:
                node, _, text = name.partition("=")
                try:
                    value = int(text, 0)
                except ValueError:
                    raise OSError(22, f"value {text!r} is not a number") from None
                old = target.sysctl(node)
                new = target.sysctl(node, value)
                print(new if bare else f"{node}: {old} -> {new}")
            else:
                for node, value in target.sysctl_list(name):
                    print(value if bare else f"{node} = {value}")
        except OSError as e:
            label = name.partition("=")[0] or "(all)"
            reason = e.strerror or os.strerror(e.errno or 5)
            reason = reason.removeprefix(f"{label}: ")
            print(f"{prog}: {label}: {reason}", file=sys.stderr)
            status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    """``rump.sysctl``: against the server in RUMP_SERVER (its client imported once the options are
    good: a usage error or --help needs none of it)."""
    def target() -> Any:
        from p2k.client import connect

        return connect(name="rump.sysctl").sys

    return run("rump.sysctl", sys.argv[1:] if argv is None else argv, target)


def register(sub: Any) -> None:
    p = sub.add_parser("sysctl", help="read or set a fresh local kernel's sysctl nodes (rump.sysctl for a server)",
                       description=__doc__)
    p.add_argument("-a", action="store_true", help="list every node")
    p.add_argument("-n", action="store_true", help="print values only")
    p.add_argument("-w", action="store_true", help="the names are name=value assignments")
    p.add_argument("names", nargs="*", metavar="name[=value]", help="a node or subtree, or an assignment")
    p.set_defaults(func=_cmd)


def _cmd(args: Any) -> int:
    import p2k

    argv = [f"-{f}" for f in "anw" if getattr(args, f)] + ["--", *args.names]
    with p2k.Kernel() as k:
        return run("p2k sysctl", argv, k.sys)


if __name__ == "__main__":
    sys.exit(main())
