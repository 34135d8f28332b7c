"""``p2k fsck``: fsck_ffs(8) for FFS images (see p2k.fs.ffs.fsck).

Options follow fsck_ffs: -n (no writes: the device is opened read-only), -y, -p (preen), -f,
-b sblock (sector of an alternate superblock), -B be|le, -m mode (lost+found); plus --json. The
exit code is fsck's: 0 ok, 1 usage, 2 inconsistencies left unresolved, 8 check failed.
"""

from __future__ import annotations

import argparse
import sys

from p2k.cli.errors import UsageError
from p2k.cli.progress import Bars, add_quiet_arg, wanted

FSCK_STEPS = ["Phase 1", "Phase 1b", "Phase 2", "Phase 3", "Phase 4", "Phase 5"]
FSCK_UNITS = {"Phase 1": "inodes", "Phase 1b": "inodes", "Phase 2": "dirs", "Phase 5": "cg"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("fsck", help="check and repair an FFS image (fsck_ffs)",
                       description="Check an FFS image like NetBSD's fsck_ffs.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-n", dest="mode", action="store_const", const="n", help="answer no; never write")
    mode.add_argument("-y", dest="mode", action="store_const", const="y", help="answer yes")
    mode.add_argument("-p", dest="mode", action="store_const", const="p", help="preen")
    p.add_argument("-f", dest="force", action="store_true", help="check even if clean")
    p.add_argument("-b", dest="sblock", type=int, help="alternate superblock (sector number)")
    p.add_argument("-B", dest="byteorder", choices=["be", "le"], help="byte order")
    p.add_argument("-m", dest="lfmode", default="700", help="lost+found mode (octal, default 700)")
    p.add_argument("--json", dest="as_json", action="store_true", help="machine-readable report")
    add_quiet_arg(p)
    p.add_argument("-d", dest="drivespec", default=None, help="rump_server drivespec")
    p.add_argument("image", nargs="?", help="image (IMAGE or IMAGE:a)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: ``p2k`` imports every command module to build its parser.
    from p2k.cli.errors import describe
    from p2k.cli.imagearg import register_image
    from p2k.etfs import EtfsRegistry
    from p2k.fs.ffs.fsck import Options, fsck_device
    from p2k.fs.ffs.fsck.report import FSCK_EXIT_CHECK_FAILED

    try:
        lfmode = int(args.lfmode, 8)
    except ValueError:
        raise UsageError("-m flag requires a mode") from None
    if lfmode & ~0o7777:
        raise UsageError(f"bad mode to -m: {lfmode:o}")
    opts = Options(mode=args.mode or "", force=args.force, sblock=args.sblock,
                   endian={"be": ">", "le": "<", None: None}[args.byteorder], lfmode=lfmode,
                   as_json=args.as_json)
    if args.sblock is not None and not args.as_json:
        print(f"Alternate super block location: {args.sblock}")
    if args.lfmode != "700" and not args.as_json:
        print(f"** lost+found creation mode {lfmode:o}")
    readonly = opts.mode == "n"
    args.fstype = "ffs"
    etfs = EtfsRegistry()  # fsck reads and writes the device itself, as fsck_ffs does: no kernel
    try:
        try:
            key = register_image(etfs, args, readonly)
        except OSError as e:  # fsck_ffs: "Can't open ..." is a failed check (8), not a usage error
            print(f"p2k fsck: {describe(e)}", file=sys.stderr)
            return FSCK_EXIT_CHECK_FAILED
        dev = etfs.lookup(key)
        assert dev is not None
        with Bars(wanted(args), "fsck", steps=FSCK_STEPS, units=FSCK_UNITS) as bars:
            res = fsck_device(dev, opts, args.image or key, out=bars.out, progress=bars)
        if opts.as_json:
            sys.stdout.write(res.json() + "\n")
        return res.code
    finally:
        etfs.close_all()
