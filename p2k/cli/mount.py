"""``p2k mount`` and ``p2k umount``: an image's file system on a host directory, through FUSE.

``p2k mount [-t ffs|tmpfs] [-o OPTIONS] [-f] [-d drivespec] IMAGE[:a] MOUNTPOINT`` boots a kernel,
mounts the image in it and serves it with the puffs bridge. Like rump_server it detaches only once
the mount is ready: the parent waits on a pipe for "ready" or for the one-line reason it failed,
so a script that runs ``p2k mount`` can use the mount point at once. ``-f`` stays in the
foreground. With no arguments it mounts the bundled demo image at ``./mnt``.

``p2k mount --server URL PATH MOUNTPOINT`` exports the directory PATH of a running rump_server
instead (the bridge as a remote client, p2k/puffs/remote.py); it takes ``ro``, ``allow_other``,
``allow_root``, ``auto_unmount``, ``attr_timeout``, ``busy_poll``, ``transport`` and ``ncpu``
(calls in flight at once), and ``p2k umount`` ends it the same way, leaving the server running.

Options (``-o``, comma separated): ``ro``/``rw``; ``allow_other`` (let other users in — needed for
non-root users when root mounts); kernel parameters ``nvnodes=N``, ``memlimit=SIZE``, ``ncpu=N``;
``attr_timeout=SECONDS`` (how long the host caches attributes, default 1); ``busy_poll=USEC``
(how long a reader of /dev/fuse asks again before it sleeps, default 30 with two CPUs or more, 0
turns it off; p2k.puffs.busypoll.BUSY_POLL_US); ``transport=devfuse``
(the default, or $P2K_FUSE_TRANSPORT: p2k answers /dev/fuse itself) or ``transport=pyfuse3``;
anything else goes to the file-system driver. Without ``rw`` an FFS image whose driver refuses to write is mounted
read-only with a notice.
"""

from __future__ import annotations

import errno
import os
import sys

from p2k.cli.errors import describe
from p2k.cli.imagearg import MOUNTPOINT, add_image_args, open_image, parse_mount_options

TYPE_CHECKING = False  # typing's, without importing it into the daemon (p2k.lazy)

if TYPE_CHECKING:  # argparse too: p2k mount's command line is read by p2k.cli.quickparse, and the
    import argparse  # daemon forked from it keeps whatever the parse imported (argparse, re, gettext, locale)
    from pathlib import Path
    from typing import Any

    from p2k.puffs.port import KernelPort

FUSE_OPTIONS = {"allow_other", "allow_root", "auto_unmount"}
KERNEL_OPTIONS = {"nvnodes", "memlimit", "ncpu"}
BRIDGE_OPTIONS = {"attr_timeout", "transport", "busy_poll"}
DEMO_MOUNTPOINT = "./mnt"


def option_number(opts: dict[str, str], name: str, default: float) -> float:
    """``-o name=N``: a number of zero or more, or a one-line error naming the option."""
    v = opts.get(name)
    if not v:
        return default
    try:
        n = float(v)
    except ValueError:
        raise ValueError(f"-o {name}={v}: not a number") from None
    if not n >= 0:
        raise ValueError(f"-o {name}={v}: must be zero or more")
    return n


def option_us(opts: dict[str, str]) -> int | None:
    """``-o busy_poll=USEC`` (busypoll.BUSY_POLL_US says what it buys); None: the transport's default."""
    if not opts.get("busy_poll"):
        return None
    return int(option_number(opts, "busy_poll", 0))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mount", help="mount an image on a host directory through FUSE",
        epilog="options: ro, rw, allow_other, nvnodes=N, memlimit=SIZE, ncpu=N, attr_timeout=SECONDS,\n"
               "transport=devfuse|pyfuse3, busy_poll=USEC (0: off);\n"
               "others go to the driver. With no arguments: the demo image at ./mnt.\n"
               "Unmount with 'p2k umount MOUNTPOINT' (waits until the image is synced) or fusermount3 -u.\n"
               "kill -USR1 <daemon> writes the kernel's counters as JSON to $P2K_STATS_FILE\n"
               "(default: the run directory's mount-<hash>.stats); $P2K_MOUNT_LOG keeps the daemon's log.")
    add_image_args(p, image_optional=True)
    p.add_argument("-f", dest="foreground", action="store_true", help="stay in the foreground")
    p.add_argument("--server", metavar="URL", default=None,
                   help="export PATH of the rump_server at URL instead of an image: --server URL PATH MOUNTPOINT")
    p.add_argument("mountpoint", metavar="MOUNTPOINT", nargs="?", help="host directory to mount on")
    p.set_defaults(func=cmd_mount)
    u = sub.add_parser("umount", help="unmount a p2k mount and wait until its image is synced")
    u.add_argument("mountpoint", metavar="MOUNTPOINT", help="host directory a p2k mount is on")
    u.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the daemon (120)")
    u.set_defaults(func=cmd_umount)


# ---- checks shared by mount and umount -------------------------------------------------------------
def stale_hint(mountpoint: str) -> str:
    return f"{mountpoint}: stale p2k mount (its daemon died); clear it with: fusermount3 -u {mountpoint}"


def is_stale(mountpoint: str) -> bool:
    """A FUSE mount whose daemon is gone answers ENOTCONN (statvfs always asks the daemon; stat of
    the mount point may still be answered from the host's attribute cache)."""
    try:
        os.stat(mountpoint)
        if os.path.ismount(mountpoint):
            os.statvfs(mountpoint)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


def in_mount_table(mountpoint: str) -> bool:
    """Whether a FUSE file system is mounted on ``mountpoint`` by the host's mount table — the
    answer when the mount point itself cannot be stat'ed (a daemon gone, a root it cannot read)."""
    import re

    want = os.path.abspath(mountpoint)
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                f = line.split()
                if len(f) >= 3 and f[2].startswith("fuse"):
                    path = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), f[1])
                    if path == want:
                        return True
    except OSError:
        return False
    return False


def check_mountpoint(mountpoint: str) -> None:
    if is_stale(mountpoint):
        raise OSError(errno.ENOTCONN, stale_hint(mountpoint))
    try:
        st = os.stat(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise OSError(errno.ENOTCONN, stale_hint(mountpoint)) from None
        raise OSError(e.errno, e.strerror, mountpoint) from None
    if not os.path.isdir(mountpoint):
        raise OSError(errno.ENOTDIR, "Not a directory", mountpoint)
    if os.path.ismount(mountpoint):
        raise OSError(errno.EBUSY, "already a mount point", mountpoint)
    del st


# ---- mount ---------------------------------------------------------------------------------------
def cmd_mount(args: argparse.Namespace) -> int:
    if args.server is not None:
        if args.image is None or args.mountpoint is None:
            raise OSError(errno.EINVAL, "usage: p2k mount --server URL [-o opts] [-f] PATH MOUNTPOINT")
        if args.drivespec is not None:
            raise OSError(errno.EINVAL, "-d makes no sense with --server: the server has its own devices")
        check_mountpoint(args.mountpoint)
        if args.foreground:
            serve(args, ready=lambda note: None)
            return 0
        return detach(args)
    demo = args.image is None and args.drivespec is None and args.mountpoint is None and args.fstype != "tmpfs"
    if demo:
        args.image = str(demo_image())
        args.mountpoint = DEMO_MOUNTPOINT
        os.makedirs(args.mountpoint, exist_ok=True)
    elif args.mountpoint is None:
        if args.drivespec is not None or args.fstype == "tmpfs":
            args.mountpoint, args.image = args.image, None
        if args.mountpoint is None:
            raise OSError(errno.EINVAL, "usage: p2k mount [-t ffs|tmpfs] [-o opts] [-f] IMAGE MOUNTPOINT")
    check_mountpoint(args.mountpoint)
    if args.foreground:
        serve(args, ready=lambda note: print(note, file=sys.stderr) if note else None)
        return 0
    rc = detach(args)
    if rc == 0 and demo:
        print(f"Mounted {args.image} at {args.mountpoint}:")
        sys.stdout.flush()
        import subprocess

        subprocess.run(["ls", "-la", args.mountpoint], check=False)
        print(f"\nUnmount with: p2k umount {args.mountpoint}")
    return rc


def demo_image() -> Path:
    """images/demo.img, decompressed from images/demo.img.gz when missing or older."""
    import gzip
    import shutil
    from pathlib import Path

    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        gz, img = base / "images" / "demo.img.gz", base / "images" / "demo.img"
        if gz.exists():
            if not img.exists() or img.stat().st_mtime < gz.stat().st_mtime:
                tmp = img.with_suffix(".img.tmp")
                with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(tmp, img)
            return img
        if img.exists():
            return img
    raise OSError(errno.ENOENT, "demo image images/demo.img.gz not found; give IMAGE MOUNTPOINT")


def detach(args: argparse.Namespace) -> int:
    """Fork; the child serves, the parent reports "ready" or the child's one-line error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(r)
        os.setsid()
        code = 0
        try:
            def ready(note: str | None) -> None:
                os.write(w, f"ready {note or ''}\n".encode())
                os.close(w)
                quiet_stdio()

            serve(args, ready)
        except BaseException as e:  # noqa: BLE001 - everything must reach the parent as one line
            code = 1
            try:
                os.write(w, f"error {describe(e) if isinstance(e, OSError | ValueError) else repr(e)}\n".encode())
            except OSError:
                pass
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 4096):
        chunks.append(chunk)
    os.close(r)
    msg = b"".join(chunks).decode(errors="replace").strip()
    if msg.startswith("ready"):
        note = msg[len("ready"):].strip()
        if note:
            print(f"p2k mount: {note}", file=sys.stderr)
        return 0
    os.waitpid(pid, 0)
    print(f"p2k mount: {msg.removeprefix('error ') or 'daemon exited before the mount was ready'}", file=sys.stderr)
    return 1


def quiet_stdio() -> None:
    """After "ready" the daemon has no terminal; its log goes to $P2K_MOUNT_LOG if set."""
    logpath = os.environ.get("P2K_MOUNT_LOG")
    out = os.open(logpath or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)


REMOTE_OPTIONS = FUSE_OPTIONS | BRIDGE_OPTIONS | {"ro", "rw", "ncpu"}


def pick_transport(opts: dict[str, str]) -> str:
    """``-o transport=``, else $P2K_FUSE_TRANSPORT, else the direct one (p2k/puffs/daemon.py)."""
    from p2k.puffs.daemon import TRANSPORTS

    transport = str(opts.get("transport") or os.environ.get("P2K_FUSE_TRANSPORT") or "devfuse")
    if transport not in TRANSPORTS:
        raise OSError(errno.EINVAL, f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    return transport


def serve_remote(args: argparse.Namespace, ready: Any) -> None:
    """Connect to the server, export its PATH, serve until unmounted (runs in the daemon). The
    connection is made before the FUSE mount, so a wrong URL or PATH fails ``p2k mount`` itself."""
    from typing import cast

    from p2k.client import connect
    from p2k.puffs.daemon import MountDaemon
    from p2k.puffs.remote import RemotePort

    opts = parse_mount_options(args.options or "")
    unknown = sorted(set(opts) - REMOTE_OPTIONS)
    if unknown:
        raise OSError(errno.EINVAL, f"option {unknown[0]!r} does not apply to --server (the server mounts"
                                    f" its file systems itself)")
    transport = pick_transport(opts)
    attr_timeout, busy_poll_us = option_number(opts, "attr_timeout", 1.0), option_us(opts)
    fuse_opts = {"default_permissions", f"fsname=p2k:{args.server}:{args.image}", "subtype=p2k"}
    fuse_opts |= {o for o in opts if o in FUSE_OPTIONS}
    if "ro" in opts:
        fuse_opts.add("ro")
    client = connect(args.server, name="p2k mount")
    try:
        port = RemotePort(client, args.image, ncpu=int(opts.get("ncpu") or 4))
    except OSError as e:
        client.close()
        err = e.errno or errno.EIO
        raise OSError(err, f"{os.strerror(err)} (on the server {args.server})", args.image) from None
    except BaseException:
        client.close()
        raise
    daemon = MountDaemon(None, args.image, args.mountpoint, fuse_opts,
                         attr_timeout=attr_timeout, busy_poll_us=busy_poll_us,
                         transport=transport,
                         make_port=lambda: cast("KernelPort", port))  # RemotePort answers the same calls
    try:
        daemon.run(lambda: ready(None))
    except RuntimeError as e:
        raise OSError(errno.EIO, f"FUSE mount failed ({e})", args.mountpoint) from None
    finally:
        if daemon.bridge is None:
            port.close()


def serve(args: argparse.Namespace, ready: Any) -> None:
    """Boot the kernel, mount the image, serve until unmounted (runs in the daemon)."""
    from p2k.hyper.console import configure
    from p2k.kernel import Kernel
    from p2k.puffs.daemon import MountDaemon

    configure(level=20 if os.environ.get("RUMP_VERBOSE") else 30,  # logging's INFO, WARNING
              format="p2k mount[%(process)d]: %(message)s")
    if args.server is not None:
        serve_remote(args, ready)
        return
    opts = parse_mount_options(args.options or "")
    transport = pick_transport(opts)  # before the image is opened: a typo must not leave it mounted
    attr_timeout, busy_poll_us = option_number(opts, "attr_timeout", 1.0), option_us(opts)
    fuse_opts = {"default_permissions", "fsname=p2k:" + (args.image or args.fstype), "subtype=p2k"}
    fuse_opts |= {o for o in opts if o in FUSE_OPTIONS}
    kopts = {o: v for o, v in opts.items() if o in KERNEL_OPTIONS}
    fs_opts = {o: v for o, v in opts.items() if o not in FUSE_OPTIONS | KERNEL_OPTIONS | BRIDGE_OPTIONS}
    kernel = Kernel(ncpu=kopts.get("ncpu") or None, memlimit=kopts.get("memlimit") or None,
                    nvnodes=kopts.get("nvnodes") or None)
    note = None
    ns = type(args)(**vars(args))  # argparse's Namespace or p2k.cli.quickparse's
    ns.options = ",".join(o if not v else f"{o}={v}" for o, v in fs_opts.items())
    try:
        img = open_image(ns, write=True, kernel=kernel)
    except OSError as e:
        if e.errno != errno.EROFS or "rw" in opts or args.fstype != "ffs":
            raise
        kernel = Kernel(ncpu=kopts.get("ncpu") or None, memlimit=kopts.get("memlimit") or None,
                        nvnodes=kopts.get("nvnodes") or None)
        ns.options = ",".join(["ro", *filter(None, ns.options.split(","))])
        img = open_image(ns, write=True, kernel=kernel)
        note = f"mounted read-only: {e.strerror}"
    if img.readonly:
        fuse_opts.add("ro")
    daemon = MountDaemon(img.kernel, MOUNTPOINT, args.mountpoint, fuse_opts,
                         attr_timeout=attr_timeout, busy_poll_us=busy_poll_us,
                         transport=transport)
    try:
        daemon.run(lambda: ready(note))
    except RuntimeError as e:
        raise OSError(errno.EIO, f"FUSE mount failed ({e})", args.mountpoint) from None


# ---- umount --------------------------------------------------------------------------------------
def cmd_umount(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from p2k.puffs.daemon import RunDir

    mnt = args.mountpoint
    rundir = RunDir()
    pid = rundir.owner(mnt)
    stale = is_stale(mnt)
    if not stale and not os.path.ismount(mnt) and not in_mount_table(mnt):
        if not os.path.exists(mnt):
            raise OSError(errno.ENOENT, "No such file or directory", mnt)
        raise OSError(errno.EINVAL, "not a mount point", mnt)
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:
        raise OSError(errno.ENOENT, "fusermount3 not found")
    res = subprocess.run([tool, "-u", mnt], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        msg = (res.stderr.strip().splitlines() or ["unmount failed"])[-1]
        msg = msg.removeprefix(f"{os.path.basename(tool)}: ")
        if "busy" in msg.lower():
            raise OSError(errno.EBUSY, "Device or resource busy (files are open on it)", mnt)
        raise OSError(errno.EINVAL, msg)
    if stale and pid is None:
        print(f"p2k umount: {mnt}: the daemon had died; cleared the stale mount "
              f"(check the image with p2k fsck -y)", file=sys.stderr)
        return 0
    if not rundir.wait_released(mnt, args.timeout):
        raise OSError(errno.ETIMEDOUT, f"daemon {pid} is still syncing after {args.timeout:.0f} s", mnt)
    return 0
