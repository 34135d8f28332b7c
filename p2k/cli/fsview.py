"""How the fs-utils style commands open their view (an image in a private kernel, or the server in
RUMP_SERVER) and how ``ls -l`` prints an entry; the view itself is ``p2k.fsview``."""

from __future__ import annotations

import os
import stat as st
import time

from p2k.cli.imagearg import MountedImage, open_image
from p2k.fsview import FsView, NamingSys

TYPE_CHECKING = False  # typing's, without importing it (p2k.lazy)
if TYPE_CHECKING:  # and argparse: a command read by p2k.cli.quickparse never imports it
    import argparse


def open_view(args: argparse.Namespace, *, write: bool = False) -> FsView:
    """The image named by ``args`` (or the server in RUMP_SERVER) as an FsView."""
    server = os.environ.get("RUMP_SERVER")
    if server and not getattr(args, "image", None) and not getattr(args, "drivespec", None):
        from p2k.client import connect  # issue 7

        try:
            c = connect(server)
        except OSError as e:
            if e.filename is not None or e.errno is None:
                raise
            raise OSError(e.errno, f"RUMP_SERVER: {os.strerror(e.errno)}", server) from None
        return FsView(NamingSys(c.sys, ""), "", c.close)
    m: MountedImage = open_image(args, write=write)
    # A process chrooted to the image's root, as fs-utils' tools see an image: its own absolute
    # symlinks (/etc/localtime -> /usr/share/zoneinfo/...) resolve inside it, and '..' cannot leave.
    sys = m.kernel.newproc()

    def close() -> None:
        m.kernel.release_proc(sys)
        m.close()

    try:
        sys.chdir(m.mountpoint)
        sys.chroot(m.mountpoint)
    except BaseException:
        close()
        raise
    return FsView(NamingSys(sys, ""), "", close)


_MODES: dict[int, str] = {}


def mode_string(mode: int) -> str:
    """``st.filemode``, once per distinct mode (a tree has a handful)."""
    text = _MODES.get(mode)
    if text is None:
        text = _MODES[mode] = st.filemode(mode)
    return text


_NOW = time.time()
_SIX_MONTHS = 182 * 86400  # ls(1): DAYSPERNYEAR / 2 days, either side of now
_WHEN: dict[int, str] = {}


def _when(mtime: int) -> str:
    """ls's date column, once per distinct second: a tree's files share few mtimes, and
    localtime + strftime per entry was ls -lR's largest formatting cost."""
    when = _WHEN.get(mtime)
    if when is None:
        recent = mtime + _SIX_MONTHS > _NOW and mtime - _SIX_MONTHS < _NOW
        when = _WHEN[mtime] = time.strftime("%b %e %H:%M" if recent else "%b %e  %Y", time.localtime(mtime))
    return when


def _width(values: list[int]) -> int:
    return len(str(max(values))) if values else 1


def long_lines(rows: list[tuple[str, os.stat_result, str | None]], inode: bool = False) -> list[str]:
    """``ls -l`` lines for one listing, NetBSD ls's layout: every column as wide as its widest
    value in this listing (so columns line up without padding for numbers no file has), user
    and group numeric (the image's owners mean nothing to the host's password file), a device's
    "major, minor" in the size column. ``rows`` are (name, lstat, symlink target or None)."""
    stats = [r[1] for r in rows]
    w_link = _width([s.st_nlink for s in stats])
    w_uid = _width([s.st_uid for s in stats])
    w_gid = _width([s.st_gid for s in stats])
    w_size = _width([s.st_size for s in stats])
    w_ino = _width([s.st_ino for s in stats])
    devs = [s.st_rdev for s in stats if s.st_mode & 0o170000 in (st.S_IFCHR, st.S_IFBLK)]
    w_major = w_minor = 0
    if devs:
        w_major, w_minor = _width([os.major(d) for d in devs]), _width([os.minor(d) for d in devs])
        if w_major + w_minor + 2 > w_size:
            w_size = w_major + w_minor + 2
        else:
            w_major = w_size - w_minor - 2
    # one %-format per listing with the widths written in: a C-level format per entry, where an
    # f-string with nested widths built a format spec per field
    line_fmt = f"%s  %{w_link}d %-{w_uid}d  %-{w_gid}d  %{w_size}s %s %s"
    out: list[str] = []
    append = out.append
    for name, s, target in rows:
        mode = s.st_mode
        sec: int = s[8]  # type: ignore[assignment]  # st_mtime as an int: index 8 of a stat result
        if devs and mode & 0o170000 in (st.S_IFCHR, st.S_IFBLK):
            size: int | str = f"{os.major(s.st_rdev):>{w_major}}, {os.minor(s.st_rdev):>{w_minor}}"
        else:
            size = s.st_size
        line = line_fmt % (_MODES.get(mode) or mode_string(mode), s.st_nlink, s.st_uid, s.st_gid, size,
                           _WHEN.get(sec) or _when(sec), name)
        if target is not None:
            line = f"{line} -> {target}"
        append(f"{s.st_ino:>{w_ino}} {line}" if inode else line)
    return out


def inode_lines(rows: list[tuple[str, os.stat_result]]) -> list[str]:
    """``ls -i``: the inode column as wide as its widest number in this listing."""
    w = _width([s.st_ino for _, s in rows])
    return [f"{s.st_ino:>{w}} {name}" for name, s in rows]


def block_units() -> int:
    """512-byte blocks per unit of ls's "total" line: BLOCKSIZE from the environment as
    getbsize(3) reads it ("1024", "1k", "K"; below 512 or unreadable: 512, above 1g: 1g), by
    default 512 as POSIX wants it."""
    raw = os.environ.get("BLOCKSIZE", "")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(raw[-1:].lower())
    digits = raw[:-1] if scale else raw
    if not raw or (digits and not digits.isdigit()):
        return 1
    n = (int(digits or "0") or 1) * (scale or 1)  # "K" is 1 KiB, as getbsize reads it
    return min(max(n, 512), 1 << 30) // 512
