"""The direct FUSE transport: the bridge served from /dev/fuse by a plain read/dispatch/write loop.

Why not pyfuse3 and trio (``pyfuse3ops.py``, still selectable with ``-o transport=pyfuse3``):
profiles of the daemon under bench/bench_fuse.py put 60–75% of each request's CPU in pyfuse3's
Cython dispatch and reply and in trio's scheduler, epoll and locks, against 15–20% in the kernel
work itself; and the two imports alone make a daemon 2.6× a bare interpreter's size (trio pulls
in ssl, idna and attrs). A loop that reads one request, decodes it with the records of
``fusewire.py``, calls the bridge and writes the reply does the same with two system calls and
a few dictionary lookups, and imports nothing that is not already loaded. Measured with
bench/bench_fuse_floor.py: 15–16 us of daemon CPU per LOOKUP where the pyfuse3 transport took
35–38 (fuse2fs 18–21), and a daemon of 1.9× a bare interpreter's RSS instead of 3.1×.

The mount is made as libfuse makes it unprivileged (``fusermount.py``). The INIT reply asks for
what libfuse 3 asks by default (readdirplus always, atomic O_TRUNC, 1 MiB writes, asynchronous
reads, data invalidated when mtime or size change), so the host kernel treats both transports
alike.

A reader that finds no request waiting asks again for a few microseconds before it sleeps
(``busypoll.py``), and on a read-only mount without ACLs the host opens files without asking
(``Session.open``): both take requests' round trips off a program that works through files one by
one, which is where a Python daemon trails a C one.

Where a request runs is the bridge's rule (``Bridge.try_inline``): on this thread when the port's
lock is free and the call is short, else in one of ``ncpu`` worker threads, which write their own
replies (each reply is one ``writev``, atomic on /dev/fuse). Signals reach the loop's thread only
(workers block them): SIGUSR1 writes the statistics, the others unmount, as pyfuse3's loop did.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import signal
import struct
import threading
import time
from _queue import SimpleQueue
from collections.abc import Callable

from p2k.hyper.console import console
from p2k.puffs import fusewire as w
from p2k.puffs.bridge import BULK_INLINE_MAX, Bridge
from p2k.puffs.busypoll import BUSY_POLL_US, READERS, BusyPoll
from p2k.puffs.daemon import SIGNALS, start_unsignalled
from p2k.puffs.fusermount import fusermount, unmount
from p2k.puffs.port import AttrChange
from p2k.vfs.vattr import Dirent, Vattr

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from typing import Any

log = console("p2k.puffs")

E = w.E
BUFSIZE = (1 << 20) + 4096  # max_write (1 MiB) and the headers, as libfuse reads
MAX_WRITE, MAX_PAGES = 1 << 20, 256
INIT_FLAGS = w.ASYNC_READ | w.ATOMIC_O_TRUNC | w.BIG_WRITES | w.AUTO_INVAL_DATA | w.DO_READDIRPLUS | \
    w.ASYNC_DIO | w.MAX_PAGES
SPECIAL_NAMES = {w.FORGET: "forget", w.BATCH_FORGET: "batch_forget", w.INTERRUPT: "interrupt", w.INIT: "init",
                 w.DESTROY: "destroy", w.FLUSH: "flush", w.READDIR: "readdir", w.IOCTL: "ioctl",
                 w.POLL: "poll", w.FALLOCATE: "fallocate", w.LSEEK: "lseek", w.COPY_FILE_RANGE: "copy_file_range",
                 w.GETLK: "getlk", w.SETLK: "setlk", w.SETLKW: "setlkw"}
"""Names for the statistics of the requests ``Session.special`` answers (ENOSYS but the first five)."""


def _joined(*records: type[w.Record]) -> struct.Struct:
    """One ``struct`` for records that travel back to back (header + entry + attributes)."""
    return struct.Struct(E + "".join(r.STRUCTS[E].format[1:] for r in records))


IN_HDR = w.InHeader.STRUCTS[E]
OUT_HDR = w.OutHeader.STRUCTS[E]
ENTRY = _joined(w.EntryOut, w.Attr)
ATTR_REPLY = _joined(w.AttrOut, w.Attr)
OPEN_OUT = w.OpenOut.STRUCTS[E]
DIRENT = w.Dirent.STRUCTS[E]
U32PAIR = w.GetxattrOut.STRUCTS[E]  # getxattr size, write size: (u32, padding)
HDR = IN_HDR.size
DIRENTPLUS_MIN = ENTRY.size + DIRENT.size + 8


class Workers:
    """``n`` threads that run ``run(*job)`` for each submitted job, started as work first waits
    (concurrent.futures would do, at 0.2 MiB more). They block the signals the loop handles."""

    def __init__(self, n: int, run: Callable[..., None]) -> None:
        self.n, self.run = n, run
        self.jobs: SimpleQueue[tuple[Any, ...] | None] = SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, *job: Any) -> None:
        self.jobs.put(job)
        with self.lock:
            if len(self.threads) < self.n and self.jobs.qsize() > self.idle:
                t = threading.Thread(target=self._work, name=f"p2k-fuse-{len(self.threads)}", daemon=True)
                self.threads.append(t)
                start_unsignalled(t)

    def _work(self) -> None:
        while True:
            with self.lock:
                self.idle += 1
            job = self.jobs.get()
            with self.lock:
                self.idle -= 1
            if job is None:
                return
            try:
                self.run(*job)
            except Exception:  # a worker must outlive a bug, or requests would wait forever
                log.exception("bug in a FUSE worker")

    def shutdown(self) -> None:
        """Let every queued job finish, then end the threads."""
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()


class _Stop(Exception):
    """Raised by the signal handler to end the main thread's wait for the readers."""


def _name(body: memoryview) -> bytes:
    b = bytes(body)
    return b[:-1] if b.endswith(b"\0") else b


def _names(body: memoryview) -> tuple[bytes, bytes]:
    a, _, b = bytes(body).partition(b"\0")
    return a, b.rstrip(b"\0")


class Session:
    """One mount served from its /dev/fuse descriptor (see the module docstring)."""

    def __init__(self, bridge: Bridge, daemon: Any, *, read_only: bool = False, busy_poll_us: int = 0) -> None:
        self.b = bridge
        self.fd = -1  # until ``attach``: the session exists before the mount, to take its signals
        self.daemon = daemon
        self.busy_poll_ns = busy_poll_us * 1000
        self.busy_poll = BusyPoll(0, -1)
        # Read-only on both sides and no ACLs: OPEN is answered ENOSYS once the host says it
        # understands that (INIT), and the host then opens files without asking (``open``).
        self.may_skip_open = read_only and not bridge.opens_matter()  # then ``b.no_open`` at INIT
        t = bridge.attr_timeout
        self.tsec, self.tnsec = int(t), int((t - int(t)) * 1e9)
        self.stop = False
        self.joining = False  # the main thread is waiting for the readers (a stop signal ends that)
        self.pool = Workers(max(1, bridge.ncpu), self.run)
        self.readers: list[threading.Thread] = []
        self.handlers: dict[int, Callable[[memoryview, int, int, int, int, int], bytes | None]] = {
            w.LOOKUP: self.lookup, w.GETATTR: self.getattr, w.SETATTR: self.setattr,
            w.READLINK: self.readlink, w.SYMLINK: self.symlink, w.MKNOD: self.mknod, w.MKDIR: self.mkdir,
            w.UNLINK: self.unlink, w.RMDIR: self.rmdir, w.RENAME: self.rename, w.RENAME2: self.rename2,
            w.LINK: self.link, w.OPEN: self.open, w.CREATE: self.create, w.READ: self.read,
            w.WRITE: self.write, w.RELEASE: self.release, w.FSYNC: self.fsync, w.OPENDIR: self.opendir,
            w.READDIRPLUS: self.readdirplus, w.RELEASEDIR: self.releasedir, w.FSYNCDIR: self.fsyncdir,
            w.STATFS: self.statfs, w.ACCESS: self.access, w.GETXATTR: self.getxattr,
            w.SETXATTR: self.setxattr, w.LISTXATTR: self.listxattr, w.REMOVEXATTR: self.removexattr}

    def attach(self, fd: int) -> None:
        """Serve the mount whose /dev/fuse descriptor is ``fd``."""
        self.fd = fd
        self.busy_poll = BusyPoll(self.busy_poll_ns, fd)

    # ---- the loop --------------------------------------------------------------------------------
    def serve(self) -> None:
        """Read and answer requests until unmounted or stopped. The readers are threads of their
        own, ``READERS`` of them, and the main thread waits for them to end: the host kernel
        wakes whichever reader waits, and with two on a 2-CPU machine one on the CPU the caller
        runs on answers a synchronous stat without the wake-up crossing CPUs (69 µs an lstat
        with one reader, 54 with two; fuse2fs goes from 113 µs single-threaded to 55 µs).

        The main thread reads nothing because it is the one the process's signals go to (the
        readers block them), and CPython runs a signal's handler only once the main thread is
        back in Python code. Blocked in a read of /dev/fuse it may not get there: a signal that
        arrived while it was between two reads could have its pending flag cleared by a reader
        thread taking the interpreter over (measured: a SIGUSR1 unanswered until the unmount in
        about one mount in twenty-five). A wait for a thread to end is interrupted by a signal
        and runs its handler at once.

        ``joining`` is set before the first reader starts: a stop signal that came between the
        readers' start and the wait would have set ``stop`` with no one to end the wait, and the
        readers, asleep until a request, would never look at it (the daemon hung on SIGTERM in
        about one mount in twenty under load, the signal sent as soon as the mount appeared)."""
        try:
            self.joining = True  # inside the try: a handler may raise _Stop right after it is set
            if self.stop:  # a stop signal before serve() began
                return
            for i in range(READERS):
                t = threading.Thread(target=self._reader, name=f"p2k-fuse-reader-{i}", daemon=True)
                self.readers.append(t)
                start_unsignalled(t)
            for t in self.readers:
                t.join()
        except _Stop:
            pass
        finally:
            self.joining = False
            self.pool.shutdown()

    def join_readers(self, timeout: float) -> bool:
        """Wait for the readers to leave (they do when the mount is gone): only then may the
        descriptor be closed, or a reader could read whatever reuses its number."""
        for t in self.readers:
            t.join(timeout)
        return not any(t.is_alive() for t in self.readers)

    def _reader(self) -> None:
        try:
            self._loop()
        except Exception:  # a reader must not die silently: the other goes on serving
            log.exception("bug in a FUSE reader")

    def _loop(self) -> None:
        # An anonymous mapping, not a bytearray: its pages become resident only as requests that
        # long arrive (a bytearray is zeroed at once, a whole MiB of the daemon's RSS).
        buf = mmap.mmap(-1, BUFSIZE)
        mv = memoryview(buf)
        readv, fd, clock = os.readv, self.fd, time.monotonic_ns
        wait = select.poll()
        wait.register(fd, select.POLLIN)
        bp = self.busy_poll
        deadline = 0  # while this reader busy-polls: when it stops and sleeps in poll()
        answered = False  # the last request this reader read, it answered itself
        while not self.stop:
            try:
                n = readv(fd, [buf])
            except BlockingIOError:  # only with busy polling on: the descriptor is non-blocking
                if deadline:
                    if clock() < deadline:
                        continue
                    deadline = 0
                    bp.miss()
                elif answered:  # after a hand-over to a worker, polling would take its CPU
                    deadline = bp.begin(clock())
                    if deadline:
                        continue
                wait.poll()
                continue
            except OSError as e:
                if e.errno == errno.ENODEV:  # unmounted
                    break
                if e.errno in (errno.EINTR, errno.ENOENT, errno.EAGAIN):
                    continue  # ENOENT: the request was interrupted before we read it
                raise
            bp.count()
            if deadline:
                deadline = 0
                bp.hit()
            answered = self.dispatch(mv[:n])

    def on_signal(self, sig: int, _frame: Any) -> None:
        if self.daemon.on_signal(sig):
            self.stop = True
            if self.joining:
                raise _Stop

    def dispatch(self, req: memoryview) -> bool:
        """Answer ``req`` here, or hand it to a worker: False."""
        _, op, unique, node, uid, gid, pid, _, _ = IN_HDR.unpack_from(req)
        h = self.handlers.get(op)
        if h is None:
            self.special(op, unique, node, req)
            return True
        b = self.b
        b.count(h.__name__)
        bulk = (op == w.READ and w.ReadIn.STRUCTS[E].unpack_from(req, HDR)[2] > BULK_INLINE_MAX) or \
            (op == w.WRITE and len(req) - HDR > BULK_INLINE_MAX)
        if not bulk and b.try_inline():
            try:
                self.run(h, req[HDR:], unique, node, uid, gid, pid)
            finally:
                b.lock.release()
            return True
        self.pool.submit(h, memoryview(bytes(req[HDR:])), unique, node, uid, gid, pid)
        return False

    def run(self, h: Callable[..., bytes | None], body: memoryview, unique: int, node: int,
            uid: int, gid: int, pid: int) -> None:
        try:
            out = h(body, node, uid, gid, pid, unique)
        except Exception as e:  # noqa: BLE001 - every failure becomes an errno (bugs logged)
            self.reply_error(unique, self.b.errno_of(e, h.__name__))
            return
        if out is not None:
            self.reply(unique, out)

    def reply(self, unique: int, payload: bytes) -> None:
        self._send(unique, [OUT_HDR.pack(16 + len(payload), 0, unique), payload])

    def reply_error(self, unique: int, err: int) -> None:
        self._send(unique, [OUT_HDR.pack(16, -err, unique)])

    def _send(self, unique: int, parts: list[bytes]) -> None:
        """One reply. ENOENT: the request was interrupted and is gone; ENODEV: unmounted. Any other
        refusal is a malformed reply, a bug: logged, and the loop serves on (the caller then sees
        the host kernel's error for the request, not a dead mount)."""
        try:
            os.writev(self.fd, parts)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):
                log.error("the host refused the reply to request %d: %s", unique, e)

    def special(self, op: int, unique: int, node: int, req: memoryview) -> None:
        """Requests that never enter the kernel: INIT, FORGET, INTERRUPT, DESTROY, FLUSH, the rest."""
        self.b.count(SPECIAL_NAMES.get(op, f"opcode{op}"))
        if op == w.FORGET:
            self.b.forget([(node, w.ForgetIn.STRUCTS[E].unpack_from(req, HDR)[0])])
        elif op == w.BATCH_FORGET:
            count = w.BatchForgetIn.STRUCTS[E].unpack_from(req, HDR)[0]
            one = w.ForgetOne.STRUCTS[E]
            self.b.forget([one.unpack_from(req, HDR + 8 + i * one.size) for i in range(count)])
        elif op == w.INTERRUPT:
            pass  # every call finishes on its own, briefly
        elif op == w.INIT:
            major, minor, readahead, flags = w.InitIn.STRUCTS[E].unpack_from(req, HDR)
            if major != w.KERNEL_MAJOR:
                self.reply_error(unique, errno.EPROTO)
                return
            if flags & w.NO_OPEN_SUPPORT and self.may_skip_open:
                self.b.no_open = True
            out = w.InitOut.STRUCTS[E].pack(w.KERNEL_MAJOR, min(minor, w.KERNEL_MINOR), readahead,
                                            flags & INIT_FLAGS, 0, 0, MAX_WRITE, 1, MAX_PAGES, 0, 0, *[0] * 7)
            self.reply(unique, out if minor >= 23 else out[:24])  # a kernel before 7.23 takes the old size
        elif op == w.DESTROY:
            self.stop = True
            self.reply(unique, b"")
        else:  # FLUSH (nothing to do: data is in the buffer cache; the host stops asking), READDIR, ...
            self.reply_error(unique, errno.ENOSYS)

    # ---- encoding --------------------------------------------------------------------------------
    def _attr(self, va: Vattr) -> tuple[int, ...]:
        """``fuse_attr``'s fields for ``va``; its ino is the node id, as libfuse sends it."""
        a, an = divmod(va.atime_ns, 1_000_000_000)
        m, mn = divmod(va.mtime_ns, 1_000_000_000)
        c, cn = divmod(va.ctime_ns, 1_000_000_000)
        return (self.b.node(va), va.size, va.blocks, a, m, c, an, mn, cn, va.mode, va.nlink, va.uid, va.gid,
                va.rdev & 0xFFFFFFFF, va.blksize, 0)

    def entry(self, va: Vattr) -> bytes:
        attr = self._attr(va)
        t, tn = self.tsec, self.tnsec
        return ENTRY.pack(attr[0], va.gen, t, t, tn, tn, *attr)

    def attr(self, va: Vattr) -> bytes:
        """An ATTR reply: the attributes behind the attribute timeout."""
        return ATTR_REPLY.pack(self.tsec, self.tnsec, 0, *self._attr(va))

    # ---- names -----------------------------------------------------------------------------------
    def lookup(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        va = self.b.lookup(self.b.caller(uid, gid, pid), node, _name(body))
        if va is None:  # a negative entry, cached as long as a positive one (Bridge.lookup)
            return ENTRY.pack(0, 0, self.tsec, 0, self.tnsec, 0, *[0] * 16)
        return self.entry(va)

    def getattr(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        return self.attr(self.b.getattr(node))

    def setattr(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        (valid, _, fh, size, _, atime, mtime, _, atimens, mtimens, _, mode, _, auid, agid, _) = \
            w.SetattrIn.STRUCTS[E].unpack_from(body)
        now = time.time_ns() if valid & (w.FATTR_ATIME_NOW | w.FATTR_MTIME_NOW) else 0
        change = AttrChange(
            caller_uid=uid, fh=fh if valid & w.FATTR_FH else None,
            uid=auid if valid & w.FATTR_UID else None, gid=agid if valid & w.FATTR_GID else None,
            size=size if valid & w.FATTR_SIZE else None, mode=mode & 0o7777 if valid & w.FATTR_MODE else None,
            atime_ns=(now if valid & w.FATTR_ATIME_NOW else atime * 1_000_000_000 + atimens)
            if valid & w.FATTR_ATIME else None,
            mtime_ns=(now if valid & w.FATTR_MTIME_NOW else mtime * 1_000_000_000 + mtimens)
            if valid & w.FATTR_MTIME else None)
        return self.attr(self.b.setattr(self.b.caller(uid, gid, pid), node, change))

    def readlink(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        return self.b.readlink(self.b.caller(uid, gid, pid), node)

    def symlink(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        name, target = _names(body)
        return self.entry(self.b.symlink(self.b.caller(uid, gid, pid), node, name, target))

    def mknod(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        mode, rdev, _, _ = w.MknodIn.STRUCTS[E].unpack_from(body)
        name = _name(body[w.MknodIn.SIZE:])
        return self.entry(self.b.mknod(self.b.caller(uid, gid, pid), node, name, mode, rdev))

    def mkdir(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        mode, _ = w.MkdirIn.STRUCTS[E].unpack_from(body)
        name = _name(body[w.MkdirIn.SIZE:])
        return self.entry(self.b.mkdir(self.b.caller(uid, gid, pid), node, name, mode))

    def unlink(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        self.b.unlink(self.b.caller(uid, gid, pid), node, _name(body))
        return b""

    def rmdir(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        self.b.rmdir(self.b.caller(uid, gid, pid), node, _name(body))
        return b""

    def rename(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        (newdir,) = w.RenameIn.STRUCTS[E].unpack_from(body)
        old, new = _names(body[w.RenameIn.SIZE:])
        self.b.rename(self.b.caller(uid, gid, pid), node, old, newdir, new, 0)
        return b""

    def rename2(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        newdir, flags, _ = w.Rename2In.STRUCTS[E].unpack_from(body)
        old, new = _names(body[w.Rename2In.SIZE:])
        self.b.rename(self.b.caller(uid, gid, pid), node, old, newdir, new, flags)
        return b""

    def link(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        (old,) = w.LinkIn.STRUCTS[E].unpack_from(body)
        name = _name(body[w.LinkIn.SIZE:])
        return self.entry(self.b.link(self.b.caller(uid, gid, pid), old, node, name))

    # ---- files -----------------------------------------------------------------------------------
    def _open_out(self, fh: int) -> bytes:
        return OPEN_OUT.pack(fh, w.FOPEN_KEEP_CACHE if self.b.keep_cache else 0, 0)

    def open(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        """An open, or on a mount where opens do not matter (``LocalPort.opens_matter`` says when)
        ENOSYS, which tells the host to open files itself from now on: it sends no more OPEN and
        no RELEASE, and its reads come with handle 0 (``read``). A small file's read then costs
        three requests (LOOKUP, the ioctl Python's ``isatty`` makes, READ) instead of five."""
        if self.b.no_open:
            raise OSError(errno.ENOSYS, "the host opens files itself")
        flags, _ = w.OpenIn.STRUCTS[E].unpack_from(body)
        return self._open_out(self.b.open(self.b.caller(uid, gid, pid), node, flags))

    def create(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        flags, mode, _, _ = w.CreateIn.STRUCTS[E].unpack_from(body)
        name = _name(body[w.CreateIn.SIZE:])
        fh, va = self.b.create(self.b.caller(uid, gid, pid), node, name, mode, flags)
        return self.entry(va) + self._open_out(fh)

    def read(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        fh, off, size, *_ = w.ReadIn.STRUCTS[E].unpack_from(body)
        if self.b.no_open:
            return self.b.read_node(node, off, size)
        return self.b.read(fh, off, size)

    def write(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        fh, off, size, *_ = w.WriteIn.STRUCTS[E].unpack_from(body)
        data = body[w.WriteIn.SIZE:w.WriteIn.SIZE + size]
        return U32PAIR.pack(self.b.write(fh, off, bytes(data)), 0)

    def release(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        self.b.release(w.ReleaseIn.STRUCTS[E].unpack_from(body)[0])
        return b""

    def fsync(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        if self.b.no_open:
            return b""  # a read-only mount: nothing of this file is waiting to be written
        fh, flags, _ = w.FsyncIn.STRUCTS[E].unpack_from(body)
        self.b.fsync(fh, bool(flags & w.FSYNC_FDATASYNC))
        return b""

    # ---- directories -----------------------------------------------------------------------------
    def opendir(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        return OPEN_OUT.pack(self.b.opendir(self.b.caller(uid, gid, pid), node), 0, 0)

    def readdirplus(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        fh, off, size, *_ = w.ReadIn.STRUCTS[E].unpack_from(body)
        out = bytearray()

        def fill(d: Dirent, fino: int, va: Vattr | None, cookie: int) -> bool:
            namelen = len(d.name)
            reclen = ENTRY.size + DIRENT.size + namelen
            pad = -reclen % 8
            if len(out) + reclen + pad > size:
                return False
            if va is not None:
                out.extend(self.entry(va))
                dtype = (va.mode >> 12) & 0xF
            else:  # the type only, nothing cached: the host asks for the rest
                dtype = d.type
                out.extend(ENTRY.pack(fino, 0, 0, 0, 0, 0, fino, 0, 0, 0, 0, 0, 0, 0, 0, dtype << 12, *[0] * 6))
            out.extend(DIRENT.pack(fino, cookie, namelen, dtype))
            out.extend(d.name)
            out.extend(bytes(pad))
            return True

        self.b.readdir(fh, off, fill, batch=max(1, size // DIRENTPLUS_MIN))
        return bytes(out)

    def releasedir(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        self.b.releasedir(w.ReleaseIn.STRUCTS[E].unpack_from(body)[0])
        return b""

    def fsyncdir(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        self.b.fsyncdir(w.FsyncIn.STRUCTS[E].unpack_from(body)[0])
        return b""

    # ---- the file system -------------------------------------------------------------------------
    def statfs(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        sv = self.b.statfs()
        return w.Kstatfs.STRUCTS[E].pack(sv.f_blocks, sv.f_bfree, sv.f_bavail, sv.f_files, sv.f_ffree,
                                         sv.f_bsize, sv.f_namemax, sv.f_frsize, 0, *[0] * 6)

    def access(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        mask, _ = w.AccessIn.STRUCTS[E].unpack_from(body)
        self.b.access(self.b.caller(uid, gid, pid), node, mask)
        return b""

    @staticmethod
    def _sized(value: bytes, size: int) -> bytes:
        """getxattr/listxattr's reply: the size alone for a probe (size 0), ERANGE if too small."""
        if size == 0:
            return U32PAIR.pack(len(value), 0)
        if len(value) > size:
            raise OSError(errno.ERANGE, "buffer too small")
        return value

    def getxattr(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        size, _ = U32PAIR.unpack_from(body)
        value = self.b.getxattr(self.b.caller(uid, gid, pid), node, _name(body[8:]))
        return self._sized(value, size)

    def listxattr(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        size, _ = U32PAIR.unpack_from(body)
        names = self.b.listxattr(self.b.caller(uid, gid, pid), node)
        return self._sized(b"".join(n + b"\0" for n in names), size)

    def setxattr(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        size, flags = w.SetxattrIn.STRUCTS[E].unpack_from(body)
        rest = bytes(body[w.SetxattrIn.SIZE:])
        name, _, value = rest.partition(b"\0")
        self.b.setxattr(self.b.caller(uid, gid, pid), node, name, value[:size], flags)
        return b""

    def removexattr(self, body: memoryview, node: int, uid: int, gid: int, pid: int, unique: int) -> bytes:
        self.b.removexattr(self.b.caller(uid, gid, pid), node, _name(body))
        return b""


def serve(bridge: Bridge, mountpoint: str, options: set[str], daemon: Any) -> None:
    """Mount through fusermount3, serve until unmounted or ``daemon`` asks to stop, unmount.

    The signal handlers are in place before the mount appears: a stop signal sent as soon as the
    mount point is live (as a script that mounts, then kills, does) unmounts cleanly instead of
    killing the daemon with the image still mounted in its kernel."""
    session = Session(bridge, daemon, read_only="ro" in options,
                      busy_poll_us=BUSY_POLL_US if daemon.busy_poll_us is None else daemon.busy_poll_us)
    main = threading.current_thread() is threading.main_thread()  # only it may take signals
    old = {sig: signal.signal(sig, session.on_signal) for sig in SIGNALS} if main else {}
    try:
        fd, watch, helper = fusermount(mountpoint, options)
    except BaseException:
        for sig, h in old.items():
            signal.signal(sig, h)
        raise
    daemon.mounted = True
    session.attach(fd)
    stop_sync = threading.Event()

    def syncer() -> None:
        while not stop_sync.wait(daemon.sync_interval):
            daemon.sync_once()

    sync_thread = threading.Thread(target=syncer, name="p2k-sync", daemon=True)
    try:
        start_unsignalled(sync_thread)
        daemon.ready()
        session.serve()
    finally:
        stop_sync.set()
        for sig, h in old.items():
            signal.signal(sig, h)
        if daemon.signalled:
            unmount(mountpoint)
        if session.join_readers(timeout=10):
            os.close(fd)
        watch.close()
        if helper.wait(timeout=10) is None:  # the auto_unmount watchdog, which should end now
            os.kill(helper.pid, signal.SIGKILL)
            helper.wait()
        sync_thread.join()
