"""``rump_server`` and ``rump_allserver``: a kernel served at a URL, as rump_server(1).

    rump_server [-sv] [-a secretfile] [-c ncpu] [-d drivespec] [-l library] [-m module] [-r total_ram]
                [--peer-creds] [--socket-mode MODE] [--socket-group GROUP] url

p2k's additions to rump_server(1), for the access control of docs/protocol.md ("Credentials"):
``-a FILE`` makes clients prove they hold the secret in FILE (challenge-response; clients read it
from the file named by ``RUMP_AUTHFILE``); ``--peer-creds`` makes a non-root unix:// client start
as its own host uid/gid in the kernel instead of root; ``--socket-mode``/``--socket-group`` share a
unix:// socket with a group on purpose (default 0600, the owner only). A tcp:// URL on an address
other than loopback without ``-a`` gets a one-line warning: anyone who can connect is root in the
kernel.

The order of work is rump_server's, because its error behaviour follows from it: options and
drivespecs are checked first (a bad one prints rump_server's message and the usage, exit 1, before
anything starts); ``-l`` libraries are imported before the kernel exists; then the server detaches
(unless ``-s``), boots the kernel, loads ``-m`` modules into it, registers the drives and binds the
URL. Only once the URL accepts connections does the parent exit 0 — so a script may use the server
on its next line — and a failure on the way makes the parent exit 1 after the child has printed why.
SIGTERM and SIGINT sync and unmount, then exit; so does ``rump.halt``.
"""

from __future__ import annotations

import getopt
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, NoReturn

from p2k.etfs import DriveSpec, DriveSpecError, parse_drivespec
from p2k.hyper.params import ParamError, parse_memsize

USAGE = ("[-sv] [-a secretfile] [-c ncpu] [-d drivespec] [-l library] [-m module] [-r total_ram]\n"
         "       [--peer-creds] [--socket-mode mode] [--socket-group group] url")
OPTIONS = [("-a secretfile", "clients must prove they hold the secret in this file (they read it from "
                             "RUMP_AUTHFILE)."),
           ("-c ncpu", "virtual CPUs of the kernel: a number or 'host'."),
           ("-d drivespec", "map a host file in as a device: key=/dev/NAME,hostpath=FILE,size=BYTES|host,"
                            "[offset=N,]type=blk|chr|reg, or disklabel=PART instead of offset and size."),
           ("-l library", "import a Python module before the kernel boots."),
           ("-m module", "load a file-system component (ffs, tmpfs) or a Python module into the kernel."),
           ("-r total_ram", "bytes (k/m/g suffix) the kernel's caches may hold."),
           ("-s", "stay in the foreground."),
           ("-v", "log what the server does."),
           ("--peer-creds", "a non-root unix:// client starts as its own host uid and gid, not root."),
           ("--socket-mode mode", "the unix:// socket's mode (default 0600)."),
           ("--socket-group group", "the unix:// socket's group."),
           ("url", "where to listen: unix://PATH or tcp://HOST:PORT.")]


@dataclass
class Options:
    url: str = ""
    foreground: bool = False
    verbose: bool = False
    ncpu: str | None = None
    memlimit: str | None = None
    drives: list[DriveSpec] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    secret: bytes | None = None
    peer_creds: bool = False
    socket_mode: int = 0o600
    socket_group: int | None = None


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def parse_args(prog: str, argv: list[str]) -> Options:
    """rump_server's getopt("c:d:l:m:r:sv"): options stop at the first operand, as BSD getopt does."""
    def usage(msg: str | None = None) -> NoReturn:
        if msg:
            print(f"{prog}: {msg}", file=sys.stderr)
        print(f"usage: {prog} {USAGE}", file=sys.stderr)
        raise _Exit(1)

    if "--help" in argv[:1]:
        from p2k.cli.manual import help_page

        print(help_page(prog, USAGE, "Serve a rump kernel at URL (unix://PATH, tcp://HOST:PORT) to remote clients "
                        "(rump.halt, rump.sysctl, p2k commands with RUMP_SERVER, p2k mount). It detaches once the "
                        "URL accepts connections.", OPTIONS), end="")
        raise _Exit(0)
    try:
        opts, rest = getopt.getopt(argv, "a:c:d:l:m:r:sv", ["peer-creds", "socket-mode=", "socket-group="])
    except getopt.GetoptError as e:
        usage(e.msg)
    o = Options()
    for flag, value in opts:
        if flag in ("-a", "--peer-creds", "--socket-mode", "--socket-group"):
            _access_option(o, flag, value, usage)
        elif flag == "-c":
            o.ncpu = value
        elif flag == "-d":
            try:
                o.drives.append(parse_drivespec(value))
            except DriveSpecError as e:
                usage(str(e))
        elif flag == "-l":
            o.libraries.append(value)
        elif flag == "-m":
            o.modules.append(value)
        elif flag == "-r":
            try:
                parse_memsize(value, "-r")
            except ParamError as e:
                usage(str(e))
            o.memlimit = value
        elif flag == "-s":
            o.foreground = True
        elif flag == "-v":
            o.verbose = True
    if len(rest) != 1:
        usage()
    o.url = rest[0]
    return o


def _access_option(o: Options, flag: str, value: str, usage: Any) -> None:
    if flag == "-a":
        from p2k.sp.auth import read_secret

        try:
            o.secret = read_secret(value)
        except OSError as e:
            usage(f"-a {value}: {e.strerror or os.strerror(e.errno or 5)}")
    elif flag == "--peer-creds":
        o.peer_creds = True
    elif flag == "--socket-mode":
        try:
            o.socket_mode = int(value, 8)
        except ValueError:
            usage(f"--socket-mode {value}: not an octal mode")
        if not 0 <= o.socket_mode <= 0o777:
            usage(f"--socket-mode {value}: not a permission mode")
    else:
        import grp

        try:
            o.socket_group = int(value) if value.isdigit() else grp.getgrnam(value).gr_gid
        except KeyError:
            usage(f"--socket-group {value}: no such group")


def _load_libraries(prog: str, libs: list[str]) -> None:
    """Import every ``-l`` library, retrying until a full pass loads nothing more (rump_server's way
    of resolving dependencies between component libraries without knowing them)."""
    from p2k.vfs.component import load

    pending = list(libs)
    last_error = ""
    while pending:
        progress = False
        for lib in list(pending):
            try:
                load(lib)
            except (OSError, ImportError) as e:
                last_error = f'failed to load -libraries, last error from "{lib}":\n  {e}'
                continue
            pending.remove(lib)
            progress = True
        if not progress:
            print(f"{prog}: {last_error}", file=sys.stderr)
            raise _Exit(1)


class _Daemon:
    """Fork before the kernel starts; the parent waits on a pipe for the child's verdict."""

    def __init__(self, detach: bool) -> None:
        self.fd: int | None = None
        if not detach:
            return
        r, w = os.pipe()
        if os.fork() > 0:
            os.close(w)
            verdict = os.read(r, 1)
            os._exit(0 if verdict == b"\0" else 1)
        os.close(r)
        os.setsid()
        self.fd = w

    def done(self, ok: bool) -> None:
        if self.fd is None:
            return
        os.write(self.fd, b"\0" if ok else b"\1")
        os.close(self.fd)
        self.fd = None
        if ok:
            # As daemon(3): nothing of the caller's terminal or pipes is kept, so that a script
            # capturing our output sees EOF as soon as the parent exits.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)


def serve(prog: str, argv: list[str], allserver: bool) -> int:
    o = parse_args(prog, argv)
    logging.basicConfig(level=logging.DEBUG if o.verbose else logging.WARNING,
                        format=f"{prog}: %(message)s", stream=sys.stderr)
    _load_libraries(prog, o.libraries)
    from p2k.vfs.component import load, load_builtin, loaded

    if allserver:
        load_builtin()
    daemon = _Daemon(detach=not o.foreground)

    def die(reason: str, err: BaseException | None = None) -> NoReturn:
        detail = ""
        if isinstance(err, OSError):
            detail = f": {os.strerror(err.errno)}" if err.errno else f": {err}"
        elif err is not None:
            detail = f": {err}"
        print(f"{prog}: {reason}{detail}", file=sys.stderr)
        daemon.done(False)
        raise _Exit(1)

    from p2k.kernel import Kernel
    from p2k.sp.server import Server, ServerConfig, is_loopback

    try:
        k = Kernel(ncpu=o.ncpu, memlimit=o.memlimit, verbose=o.verbose or None)
    except (ParamError, ValueError, OSError) as e:
        die("rump init failed", e)
    log = logging.getLogger("p2k.sp")
    log.info("kernel up: %d cpu(s), memory limit %s, components %s", k.params.ncpu,
             k.mem.limit or "none", ", ".join(loaded()))
    for mod in o.modules:
        try:
            load(mod)
        except (OSError, ImportError) as e:
            die("module load failed", e)
    for spec in o.drives:
        try:
            dev = spec.register(k.etfs)
        except OSError as e:
            die(e.strerror or "etfs register", e)
        log.info("%s: %s, %d bytes at offset %d", spec.key, spec.hostpath, dev.size, dev.offset)
    try:
        config = ServerConfig(secret=o.secret, peer_creds=o.peer_creds, socket_mode=o.socket_mode,
                              socket_group=o.socket_group)
        server = Server(k, o.url, config)
        server.bind()
    except OSError as e:
        die("rump server init failed", e)
    if not is_loopback(server.address) and o.secret is None:
        print(f"{prog}: warning: {o.url} is reachable from other hosts and has no -a secret: "
              "whoever connects is root in the kernel", file=sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.request_stop())
    log.info("serving %s", o.url)
    daemon.done(True)
    try:
        server.serve_forever()
    finally:
        server.close_listener()  # the socket goes whatever happens
    if server.keep_process and k.halted:
        # rump.halt -h: the kernel is gone, the process stays (to be looked at) until signalled.
        log.warning("rump kernel halted (with RB_HALT, not exiting)")
        server.drop_clients()
        server.stopping = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: server.request_stop())
        while not server.stopping:
            signal.pause()
        return 0
    server.halt_kernel(sync=True)
    server.drop_clients()
    return 0


def _run(prog: str, allserver: bool) -> int:
    try:
        return serve(prog, sys.argv[1:], allserver)
    except _Exit as e:
        return e.code
    except KeyboardInterrupt:
        return 130


def main_server() -> int:
    return _run("rump_server", allserver=False)


def main_allserver() -> int:
    return _run("rump_allserver", allserver=True)


if __name__ == "__main__":
    sys.exit(main_allserver() if os.path.basename(sys.argv[0]).startswith("rump_all") else main_server())
