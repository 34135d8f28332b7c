"""``rump.halt [-dhn]``: halt the rump kernel whose URL is in RUMP_SERVER, as rump.halt(1).

By default the server syncs its file systems, unmounts them and exits. ``-n`` skips the sync
(data not yet written is lost, as on a real machine); ``-h`` halts the kernel but leaves the server
process alive; ``-d`` has the server send its state (printed here, and in the server's log)
instead of NetBSD's core dump, and — like RB_DUMP — exit unsynced.
Errors read like rump.halt's: ``init failed: <reason>`` when the server cannot be reached,
``reboot: <reason>`` when it refuses.
"""

from __future__ import annotations

import os
import sys

PROG = "rump.halt"
OPTIONS = [("-d", "send the server's state instead of a core dump (printed here and in its log); no sync."),
           ("-h", "halt the kernel but leave the server process alive."),
           ("-n", "do not sync: data not yet written is lost.")]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--help" in args[:1]:
        from p2k.cli.manual import help_page

        print(help_page(PROG, "[-dhn]", "Halt the rump kernel served at RUMP_SERVER: sync and unmount its file "
                        "systems, then the server exits.", OPTIONS), end="")
        return 0
    from p2k.cli.manual import getopt_or_usage

    parsed = getopt_or_usage(PROG, args, "dhn", "[-dhn]")
    if parsed is None:
        return 1
    opts, rest = parsed
    if rest:
        print(f"usage: {PROG} [-dhn]", file=sys.stderr)
        return 1
    flags = {flag for flag, _ in opts}
    from p2k.client import connect

    try:
        client = connect(name=PROG)
    except OSError as e:
        print(f"{PROG}: init failed: {e.strerror or os.strerror(e.errno or 5)}", file=sys.stderr)
        return 1
    try:
        dump = client.halt(sync="-n" not in flags, keep_process="-h" in flags, dump="-d" in flags)
    except OSError as e:
        print(f"{PROG}: reboot: {e.strerror or os.strerror(e.errno or 5)}", file=sys.stderr)
        return 1
    if dump:
        print(dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
