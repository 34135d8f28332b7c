"""``p2k getfattr`` / ``p2k setfattr``: extended attributes of files in an image (or, with
RUMP_SERVER, on a server), in the style and output format of Linux's attr tools, with Linux
names (``user.NAME``, ``system.NAME``, ``system.posix_acl_access``; see p2k/puffs/xattrnames.py).

``getfattr [-n NAME] [-m PATTERN] [-e text|hex|base64] [--only-values] [-h] IMAGE PATH...`` prints
every attribute matching PATTERN (a regular expression, ``^user\\.`` by default, ``-`` for all)
as getfattr -d does — p2k's ``-d`` names a drivespec in every command, so dumping is the default.
``setfattr -n NAME [-v VALUE] | -x NAME [-h] IMAGE PATH...``; a VALUE of ``0x…`` is hex, ``0s…``
base64, ``"…"`` text, as setfattr reads it.
"""

from __future__ import annotations

import binascii
import sys

from p2k.cli.errors import UsageError
from p2k.cli.imagearg import add_image_args

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy): p2k stat imports this module
if TYPE_CHECKING:  # argparse and re too: stat's xattr_summary needs neither (p2k.cli.quickparse)
    import argparse
    from typing import Any

    from p2k.fsview import FsView


def register(sub: Any) -> None:
    # -h is "the link itself", so help is --help only (as chown)
    p = sub.add_parser("getfattr", help="print extended attributes of files in an image", add_help=False)
    p.add_argument("--help", action="help", help="show this help message and exit")
    add_image_args(p, server_ok=True)
    p.add_argument("-n", dest="name", help="only this attribute")
    p.add_argument("-m", dest="match", default=r"^user\.", help="names matching this regex (- for all)")
    p.add_argument("-e", dest="encoding", choices=["text", "hex", "base64"], help="value encoding")
    p.add_argument("--only-values", action="store_true", help="print the raw values only")
    p.add_argument("-h", dest="nofollow", action="store_true", help="do not follow symbolic links")
    p.add_argument("paths", metavar="PATH", nargs="+", help="files in the image whose attributes to print")
    p.set_defaults(func=cmd_getfattr)

    p = sub.add_parser("setfattr", help="set or remove extended attributes of files in an image", add_help=False)
    p.add_argument("--help", action="help", help="show this help message and exit")
    add_image_args(p, server_ok=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("-n", dest="name", help="attribute to set")
    g.add_argument("-x", dest="remove", help="attribute to remove")
    p.add_argument("-v", dest="value", default="", help="value (text, 0x hex, 0s base64)")
    p.add_argument("-h", dest="nofollow", action="store_true", help="do not follow symbolic links")
    p.add_argument("paths", metavar="PATH", nargs="+", help="files in the image to change")
    p.set_defaults(func=cmd_setfattr)


def encode_value(v: bytes, encoding: str | None) -> str:
    """getfattr's rendering: quoted text when printable (or asked for), else base64 (0s)."""
    import base64  # here, as below: base64 imports re (with enum: 2.5 ms), and stat imports this module

    if encoding == "hex":
        return "0x" + v.hex()
    if encoding == "base64":
        return "0s" + base64.b64encode(v).decode()
    text = v[:-1] if v.endswith(b"\0") else v
    if encoding == "text" or all(32 <= c < 127 and c not in b'"\\' for c in text):
        return '"' + text.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "0s" + base64.b64encode(v).decode()


def decode_value(text: str) -> bytes:
    import base64

    try:
        if text[:2].lower() == "0x":
            return binascii.unhexlify(text[2:])
        if text[:2].lower() == "0s":
            return base64.b64decode(text[2:], validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"bad value `{text}'") from None
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.encode("utf-8", "surrogateescape")


def _target(v: FsView, p: str, nofollow: bool) -> str:
    from p2k.puffs.xattrnames import LinkPath

    return LinkPath(v.path(p)) if nofollow else v.path(p)


def _report(cmd: str, p: str, e: OSError) -> None:
    print(f"p2k {cmd}: {p}: {e.strerror or e}", file=sys.stderr)


def cmd_getfattr(args: argparse.Namespace) -> int:
    # imported here, not at the top: ``p2k`` imports every command module to build its parser
    import re  # here: ls -l and stat import this module for xattr_summary (re with enum: 2.5 ms)

    from p2k.cli.fsview import open_view
    from p2k.puffs.xattrnames import getxattr, listxattr

    try:
        pattern = re.compile("" if args.match == "-" else args.match)
    except re.error as e:
        raise UsageError(f"bad pattern `{args.match}': {e}") from None
    rc = 0
    out = sys.stdout.buffer
    with open_view(args) as v:
        for p in args.paths:
            try:
                t = _target(v, p, args.nofollow)
                names = [args.name.encode()] if args.name else sorted(
                    n for n in listxattr(v.sys, t, v.sys.proc.cred.is_root if hasattr(v.sys, "proc") else True)
                    if pattern.search(n.decode("utf-8", "surrogateescape")))
                values = [(n, getxattr(v.sys, t, n)) for n in names]
            except OSError as e:
                _report("getfattr", p, e)
                rc = 1
                continue
            if args.only_values:
                for _, val in values:
                    out.write(val)
                continue
            if values:
                out.write(f"# file: {p.lstrip('/')}\n".encode())
                for n, val in values:
                    out.write(n + b"=" + encode_value(val, args.encoding).encode() + b"\n")
                out.write(b"\n")
    out.flush()
    return rc


def cmd_setfattr(args: argparse.Namespace) -> int:
    from p2k.cli.fsview import open_view
    from p2k.puffs.xattrnames import removexattr, setxattr

    value = decode_value(args.value)
    rc = 0
    with open_view(args, write=True) as v:
        for p in args.paths:
            try:
                t = _target(v, p, args.nofollow)
                if args.remove:
                    removexattr(v.sys, t, args.remove.encode())
                else:
                    setxattr(v.sys, t, args.name.encode(), value)
            except OSError as e:
                _report("setfattr", p, e)
                rc = 1
    return rc


def xattr_summary(v: FsView, p: str) -> str | None:
    """``p2k stat``'s line for the attributes: how many, and the ext-area size they take on UFS2
    (di_extsize: the records' total, as FreeBSD and p2k write them). None when there are none."""
    from p2k.fs.ffs.extattr import record_size
    from p2k.vfs.extattr import EXTATTR_NAMESPACE_SYSTEM, EXTATTR_NAMESPACE_USER

    path = v.path(p)
    counts, size = [], 0
    for ns in (EXTATTR_NAMESPACE_USER, EXTATTR_NAMESPACE_SYSTEM):
        try:
            names = v.sys.extattr_list_link(path, ns)
            size += sum(record_size(n, len(v.sys.extattr_get_link(path, ns, n))) for n in names)
        except OSError:
            names = []
        counts.append(len(names))
    if not any(counts):
        return None
    return f" Xattr: user {counts[0]}  system {counts[1]}  ExtSize: {size}"
