"""Random syscall sequences on FFS and on the host kernel must agree, result for result, errno for
errno (the machine of test_props.py, run against a read-write FFS instead of tmpfs), and the image
they leave behind must recount exactly."""

from __future__ import annotations

import os
import stat
import tempfile

from ffs_check import assert_consistent
from hypothesis import settings
from syscall_model import SyscallComparison

import p2k
from p2k.fs.ffs.newfs import NewfsOptions, newfs_image

FULL = os.environ.get("P2K_FULL") == "1"
_VARIANTS = [dict(version=1, endian="<"), dict(version=2, endian=">", bsize=4096, fsize=512)]


class FfsSyscallComparison(SyscallComparison):
    """The parent's machine with FFS under /mnt: the parent sets up tmpfs and its host directory;
    the tmpfs is swapped for a fresh FFS and the directories the parent made on the host side
    (whatever they are) are made again on it."""

    runs = 0

    def __init__(self) -> None:
        super().__init__()
        variant = _VARIANTS[FfsSyscallComparison.runs % len(_VARIANTS)]
        FfsSyscallComparison.runs += 1
        fd, self.img = tempfile.mkstemp(prefix="p2k-ffs-props-", suffix=".img", dir="/dev/shm")
        os.close(fd)
        newfs_image(self.img, NewfsOptions(size=8 << 20, **variant), lost_found=False)  # type: ignore[arg-type]
        k = self.k
        k.sys.unmount("/mnt")
        k.etfs_register("/dev/dk", self.img, p2k.ETFS_BLK)
        k.sys.mount("ffs", "/mnt", 0, {"fspec": "/dev/dk"})
        top = getattr(self, "top", self.host)
        for dirpath, dirnames, _ in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            for d in sorted(dirnames):
                p = "/mnt/" + (d if rel == "." else f"{rel}/{d}")
                k.sys.mkdir(p, stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode))

    def teardown(self) -> None:
        for kfd, _, _ in self.fds:
            self.sys.close(kfd)
        self.k.unmount_mp(self.k.mounts[0])  # a clean unmount, so the image can be recounted
        super().teardown()
        try:
            assert_consistent(self.img)
        finally:
            os.unlink(self.img)


FfsSyscallComparison.TestCase.settings = settings(
    settings.get_profile("p2k-props"), max_examples=600 if FULL else 60, stateful_step_count=50)
test_ffs_syscalls_agree_with_host = FfsSyscallComparison.TestCase
