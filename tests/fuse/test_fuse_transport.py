"""The two FUSE transports (devfuse.py, the default; pyfuse3ops.py) give the host the same answers.

One script of file operations runs on a tmpfs mount served by each transport and records what the
host sees (stat fields, data, names, link targets, attributes, the errno of each failure); the two
records must be equal, and each must hold what the operations wrote. The rest of tests/fuse runs on
the default transport only, so this is what keeps the other one honest.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fuse_harness import HAVE_MAKEFS, P2K, make_ffs, start_mount, stop

pytestmark = pytest.mark.fuse

LONG = "n" * 200  # long names fill a READDIRPLUS reply after a few entries


def _err(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except OSError as e:
        return errno.errorcode.get(e.errno or 0, str(e.errno))
    return "ok"


def _st(p: Path) -> tuple[int, ...]:
    s = os.lstat(p)
    return (s.st_mode, s.st_nlink, s.st_uid, s.st_gid, s.st_size, s.st_mtime_ns, s.st_atime_ns)


def script(root: Path) -> dict[str, Any]:
    """What the host sees of a run of every kind of request."""
    out: dict[str, Any] = {}
    d = root / "dir"
    d.mkdir(mode=0o750)
    data = os.urandom(300_000)  # more than one READ and WRITE request
    (d / "f").write_bytes(data)
    out["data"] = (d / "f").read_bytes() == data
    with open(d / "f", "r+b") as f:  # ftruncate, then pwrite past the end: a hole
        f.truncate(1000)
        os.pwrite(f.fileno(), b"tail", 5000)
        os.fsync(f.fileno())
    out["holey"] = (d / "f").read_bytes() == data[:1000] + bytes(4000) + b"tail"
    os.chmod(d / "f", 0o4751)
    os.utime(d / "f", ns=(-1_000_000_001, 1_234_567_890_123_456_789))  # atime before 1970
    out["f"] = _st(d / "f")
    os.symlink("f", d / "sym")
    out["readlink"] = os.readlink(d / "sym")
    os.link(d / "f", d / "hard")
    out["nlink"] = os.lstat(d / "f").st_nlink
    os.mknod(d / "fifo", 0o600 | 0o010000)
    out["fifo"] = oct(os.lstat(d / "fifo").st_mode)
    for i in range(60):
        (d / f"{LONG}{i:03d}").write_bytes(b"")
    out["listing"] = sorted(os.listdir(d))
    out["walk"] = sorted((p.name, p.lstat().st_size) for p in d.iterdir())
    os.rename(d / f"{LONG}000", d / "renamed")
    (d / "sub").mkdir()
    out["rename_file_over_dir"] = _err(os.rename, d / "hard", d / "sub")
    out["missing"] = _err(os.lstat, d / "nothing")
    out["missing_again"] = _err(os.lstat, d / "nothing")  # now a cached negative entry
    (d / "nothing").write_bytes(b"now")  # the negative entry must not hide it
    out["created"] = (d / "nothing").read_bytes()
    out["rmdir_nonempty"] = _err(os.rmdir, d)
    os.unlink(d / "renamed")
    out["unlinked"] = _err(os.lstat, d / "renamed")
    os.setxattr(d / "f", "user.a", b"1" * 300)
    out["xattr"] = os.getxattr(d / "f", "user.a")
    out["xattr_create"] = _err(os.setxattr, d / "f", "user.a", b"x", os.XATTR_CREATE)
    out["xattr_replace"] = _err(os.setxattr, d / "f", "user.b", b"x", os.XATTR_REPLACE)
    out["xattr_list"] = sorted(os.listxattr(d / "f"))
    out["xattr_missing"] = _err(os.getxattr, d / "f", "user.zz")
    out["xattr_security"] = _err(os.getxattr, d / "f", "security.x")
    os.removexattr(d / "f", "user.a")
    out["xattr_removed"] = _err(os.getxattr, d / "f", "user.a")
    sv = os.statvfs(root)
    out["statvfs"] = (sv.f_bsize, sv.f_namemax)
    return out


def test_transports_agree(tmp_path: Path) -> None:
    seen = {}
    for kind in ("devfuse", "pyfuse3"):
        m = start_mount(tmp_path / kind, "-t", "tmpfs", "-o", f"transport={kind}", "none")
        try:
            seen[kind] = script(m.path)
            st = m.stats()
            assert st["fuse_requests"] > 100 and st["fuse_op_getxattr"] >= 3
        finally:
            stop(m)
        s = seen[kind]
        assert s["data"] and s["holey"], kind
        assert s["f"][0] == 0o104751 and s["f"][5:] == (1_234_567_890_123_456_789, -1_000_000_001), kind
        assert s["readlink"] == "f" and s["nlink"] == 2 and s["created"] == b"now", kind
        assert len(s["listing"]) == 64 and s["missing"] == s["missing_again"] == "ENOENT", kind
        assert s["xattr"] == b"1" * 300 and s["xattr_list"] == ["user.a"], kind
        assert (s["xattr_create"], s["xattr_replace"], s["xattr_missing"]) == ("EEXIST", "ENODATA", "ENODATA")
        assert s["xattr_security"] == errno.errorcode[errno.EOPNOTSUPP] and s["rmdir_nonempty"] == "ENOTEMPTY", kind
        assert s["rename_file_over_dir"] == "EISDIR", kind
    assert seen["devfuse"] == seen["pyfuse3"]


@pytest.mark.skipif(not HAVE_MAKEFS, reason="makefs not installed")
def test_unknown_transport_is_one_line_error_and_leaves_the_image_alone(tmp_path: Path) -> None:
    img = make_ffs(tmp_path / "fs.img", size="8m")
    before = img.read_bytes()
    (tmp_path / "mnt").mkdir()
    r = subprocess.run([P2K, "mount", "-o", "rw,transport=nope", str(img), str(tmp_path / "mnt")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "transport" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not os.path.ismount(tmp_path / "mnt")
    assert img.read_bytes() == before  # refused before the image was mounted (and marked dirty)


def test_default_daemon_loads_neither_pyfuse3_nor_trio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct transport's point is a daemon without them (issue 16's RSS aim)."""
    monkeypatch.delenv("P2K_FUSE_TRANSPORT", raising=False)
    m = start_mount(tmp_path / "mnt", "-t", "tmpfs", "none")
    try:
        (m.path / "x").write_bytes(b"x")
        maps = Path(f"/proc/{m.proc.pid}/maps").read_text()
    finally:
        stop(m)
    assert "pyfuse3" not in maps and "/trio/" not in maps and "libcrypto" not in maps


def test_auto_unmount_outlives_a_killed_daemon(tmp_path: Path) -> None:
    """fusermount3 stays on as the watchdog (it holds the socket the descriptor came through):
    a daemon killed outright still leaves no dead mount behind."""
    m = start_mount(tmp_path / "mnt", "-t", "tmpfs", "-o", "auto_unmount", "none")
    try:
        (m.path / "x").write_bytes(b"x")
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while os.path.ismount(m.path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.ismount(m.path)
    finally:
        stop(m)


def test_signals_reach_the_main_thread_which_reads_nothing(tmp_path: Path) -> None:
    """CPython runs a signal's handler only when the main thread is back in Python code. Every
    other thread of the daemon blocks the signals it answers (so the host hands them to the main
    thread), and the main thread waits for the readers rather than reading /dev/fuse itself: in
    a read it could sleep on with the signal taken but its handler never run (a SIGUSR1 went
    unanswered until the unmount in about one mount in twenty-five)."""
    m = start_mount(tmp_path / "mnt", "-t", "tmpfs", "-o", "transport=devfuse", "none")
    try:
        for i in range(20):  # requests, so that workers start too
            (m.path / f"f{i}").write_bytes(b"x" * i)
        handled = 0
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            handled |= 1 << (sig - 1)
        tasks = sorted(Path(f"/proc/{m.proc.pid}/task").iterdir(), key=lambda t: int(t.name))
        assert len(tasks) >= 3  # the main thread, two readers or one, the periodic sync...
        masks = {t.name: int(_status(t)["SigBlk"], 16) for t in tasks}
        main = str(m.proc.pid)
        assert masks[main] & handled == 0
        assert all(mask & handled == handled for name, mask in masks.items() if name != main), masks
        # where the main thread sleeps once the requests are answered ("0" while it runs)
        wchan, deadline = "0", time.monotonic() + 5
        while wchan in ("", "0") and time.monotonic() < deadline:
            time.sleep(0.05)
            wchan = (Path(f"/proc/{m.proc.pid}/task/{main}") / "wchan").read_text()
        assert wchan not in ("", "0") and "fuse" not in wchan, wchan
        for _ in range(10):  # each answered at once, whatever the readers were doing
            st = m.stats()
            assert st["fuse_requests"] > 20
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=30) == 0
        assert not os.path.ismount(m.path)
    finally:
        stop(m)


def _status(task: Path) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines() if ":\t" in line)


def _fuse_fd_flags(pid: int) -> int:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        if os.readlink(fd) == "/dev/fuse":
            info = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
            return int(info.split("flags:")[1].split()[0], 8)
    raise AssertionError("the daemon holds no /dev/fuse descriptor")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("busy_poll", ["", "busy_poll=0", "busy_poll=2000"])
def test_busy_polling_readers_sleep_when_idle(tmp_path: Path, busy_poll: str) -> None:
    """A reader that finds no request asks again for a while before it sleeps (busypoll.BUSY_POLL_US):
    it must sleep in the end, or an idle mount would hold a CPU. With ``busy_poll=0`` the
    descriptor stays blocking and the readers sleep in read at once."""
    opts = ",".join(filter(None, ["transport=devfuse", busy_poll]))
    m = start_mount(tmp_path / "mnt", "-t", "tmpfs", "-o", opts, "none")
    try:
        # The policy may set it blocking later on (busypoll.BusyPoll); as the mount starts it is not.
        polls = busy_poll != "busy_poll=0" and len(os.sched_getaffinity(0)) > 1 or busy_poll == "busy_poll=2000"
        assert bool(_fuse_fd_flags(m.proc.pid) & os.O_NONBLOCK) == polls
        for i in range(300):
            (m.path / f"f{i}").write_bytes(b"x" * i)
            assert os.stat(m.path / f"f{i}").st_size == i
        time.sleep(0.2)
        before = _cpu_s(m.proc.pid)
        time.sleep(1.0)
        assert _cpu_s(m.proc.pid) - before < 0.1  # a reader polling on would take about 1 s
        assert sorted(os.listdir(m.path)) == sorted(f"f{i}" for i in range(300))
    finally:
        stop(m)


@pytest.mark.parametrize("opt", ["busy_poll=soon", "busy_poll=-1", "attr_timeout=x"])
def test_bad_number_option_is_one_line_error(tmp_path: Path, opt: str) -> None:
    (tmp_path / "mnt").mkdir()
    r = subprocess.run([P2K, "mount", "-f", "-t", "tmpfs", "-o", opt, "none", str(tmp_path / "mnt")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and not os.path.ismount(tmp_path / "mnt")
    assert r.stderr.count("\n") == 1 and f"-o {opt}:" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_stop_signal_as_soon_as_mounted_unmounts_cleanly(tmp_path: Path) -> None:
    """A script that mounts and then kills at once: the SIGTERM lands while the daemon is still
    starting its readers. It once set a flag nobody looked at again and the daemon hung (7 mounts
    in 120 with the CPU loaded); the handlers are now in place before the mount appears and the
    main thread's wait is marked before the readers start. A busy process loads the CPU, as then."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for i in range(20):
            m = start_mount(tmp_path / f"m{i}", "-t", "tmpfs", "none")
            try:
                m.proc.send_signal(signal.SIGTERM)
                assert m.proc.wait(timeout=20) == 0
                assert not os.path.ismount(m.path)
            finally:
                stop(m)
    finally:
        burner.kill()
        burner.wait()
