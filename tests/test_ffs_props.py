"""Random syscall sequences on FFS and on the host kernel must agree, result for result, errno for
errno (the machine of test_props.py, run against a read-write FFS instead of tmpfs), and the image
they leave behind must recount exactly."""

from __future__ import annotations

import os
import tempfile

from ffs_check import assert_consistent
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine
from test_props import SyscallComparison, _rmtree

import p2k
from p2k.cli.newfs import newfs_image
from p2k.fs.ffs.newfs import NewfsOptions

FULL = os.environ.get("P2K_FULL") == "1"
_VARIANTS = [dict(version=1, endian="<"), dict(version=2, endian=">", bsize=4096, fsize=512)]


class FfsSyscallComparison(SyscallComparison):
    runs = 0

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        variant = _VARIANTS[FfsSyscallComparison.runs % len(_VARIANTS)]
        FfsSyscallComparison.runs += 1
        fd, self.img = tempfile.mkstemp(prefix="p2k-ffs-props-", suffix=".img", dir="/dev/shm")
        os.close(fd)
        newfs_image(self.img, NewfsOptions(size=8 << 20, **variant), lost_found=False)  # type: ignore[arg-type]
        self.k = p2k.Kernel(env={}, memlimit="4m")
        self.k.etfs_register("/dev/dk", self.img, p2k.ETFS_BLK)
        self.k.sys.mkdir("/mnt")
        self.k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        self.sys = self.k.sys
        self.host = tempfile.mkdtemp(prefix="p2k-props-", dir="/dev/shm")
        os.chmod(self.host, 0o755)
        self.old_umask = os.umask(0o022)
        self.sys.umask(0o022)
        self.fds: list[tuple[int, int, int]] = []

    def teardown(self) -> None:
        for _, hfd, _ in self.fds:
            os.close(hfd)
        os.umask(self.old_umask)
        _rmtree(self.host)
        self.k.halt()
        try:
            assert_consistent(self.img)
        finally:
            os.unlink(self.img)


FfsSyscallComparison.TestCase.settings = settings(
    settings.get_profile("p2k-props"), max_examples=600 if FULL else 60, stateful_step_count=50)
test_ffs_syscalls_agree_with_host = FfsSyscallComparison.TestCase
