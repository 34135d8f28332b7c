"""``p2k crashtest``: run a seeded workload, cut the power at every k-th write, repair, verify.

For each cut point: a fresh copy of the image; the workload runs in a kernel whose device holds
unflushed writes back like a disk's volatile cache and, at the cut, lets an arbitrary seeded subset
of them through; then fsck -y (``p2k.fs.ffs.fsck.fsck_device``) repairs, a second fsck -n must find nothing, and the
survivor must hold every file whose fsync returned with exactly its fsync'ed bytes, no file may show
another file's bytes, and the file system must mount read-write and take new writes.
"""

from __future__ import annotations

import os
import random
import shutil
import stat as st
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from p2k.crash.model import Model
from p2k.crash.stamp import foreign_units
from p2k.crash.workloads import WORKLOADS
from p2k.etfs import ETFS_BLK, FaultPlan
from p2k.fs.ffs.fs import find_superblock
from p2k.fs.ffs.fsck import FsckResult, Options, fsck_device
from p2k.fs.ffs.newfs import NewfsOptions, newfs_image
from p2k.hyper import open_backend
from p2k.hyper.params import parse_memsize
from p2k.kernel import Kernel
from p2k.kfile import open_kernel_file

KEY = "/dev/crash0"
MNT = "/mnt"


@dataclass
class CutResult:
    workload: str
    seed: int
    cut: int
    ok: bool
    problems: list[str] = field(default_factory=list)
    fsck_rc: int = 0


def make_image(path: Path, version: int, size: str = "16m", log: bool = False) -> None:
    """A fresh file system of FFS ``version`` in ``path`` (what ``p2k newfs -O version -s size`` makes);
    for ``log``, with 1 MiB after the file system, where a ``-o log`` mount puts its journal."""
    newfs_image(str(path), NewfsOptions(size=parse_memsize(size, "size"), version=version))
    if log:
        with open(path, "r+b") as f:
            f.truncate(f.seek(0, os.SEEK_END) + (1 << 20))


def journal_named(image: Path) -> bool:
    """Whether the superblock on disk names a WAPBL journal (a ``-o log`` mount that had to make
    one inside the file system records it only once the journal's blocks are home)."""
    backend = open_backend(str(image), readonly=True)
    try:
        sb = find_superblock(backend.pread, backend.size())
    finally:
        backend.close()
    return bool(sb.fs_journal_version)


def fsck_image(image: Path, mode: str) -> FsckResult:
    """``fsck -f`` with answers ``mode`` ('y' or 'n') on ``image``, as values."""
    k = Kernel(env={})
    try:
        dev = k.etfs_register(KEY, str(image), ETFS_BLK, readonly=mode == "n")
        return fsck_device(dev, Options(mode=mode, force=True), str(image))
    finally:
        k.halt(sync=False)


def _run_workload(image: Path, name: str, seed: int, plan: FaultPlan,
                  log: bool = False) -> tuple[Model, int, bool]:
    """Run the workload; returns (model, writes the device saw, whether it finished)."""
    model = Model()
    k = Kernel()
    dev = k.etfs_register(KEY, str(image), ETFS_BLK)
    inj = dev.set_faults(plan)
    finished = False
    try:
        k.sys.mkdir(MNT, 0o755)
        k.sys.mount("ffs", MNT, 0, {"fspec": KEY, **({"log": ""} if log else {})})
        WORKLOADS[name](k.sys, random.Random(seed), model, MNT)
        k.halt()
        finished = True
    except OSError:
        if inj is None or not inj.state.dead:
            raise
    finally:
        writes = inj.state.writes if inj is not None else 0
        if not finished:
            k.etfs.close_all()  # the machine is gone: no sync, no unmount
    return model, writes, finished


def count_writes(template: Path, workdir: Path, name: str, seed: int, log: bool = False) -> int:
    image = workdir / "count.img"
    shutil.copyfile(template, image)
    _, writes, _ = _run_workload(image, name, seed, FaultPlan(hold_writes=True, seed=seed), log)
    return writes


def run_cut(template: Path, workdir: Path, name: str, seed: int, cut: int, log: bool = False) -> CutResult:
    """One power cut. With ``log`` (a ``-o log`` workload) the journal must do fsck's work: the
    survivor, replayed (in memory by ``fsck -n``, then to disk by the read-write mount of the
    verification), must be clean with no repair at all."""
    image = workdir / f"{name}-{cut}.img"
    shutil.copyfile(template, image)
    res = CutResult(name, seed, cut, ok=False)
    model, _, _ = _run_workload(image, name, seed, FaultPlan(power_cut=cut, seed=seed * 100_003 + cut), log)
    if log and not journal_named(image):
        log = False  # cut while the mount was still creating its journal: an ordinary unclean file system
    if log:
        # replay alone: in memory by fsck -n, then to disk by the verification's read-write mount
        check = fsck_image(image, "n")
        res.fsck_rc = check.code
        if check.code != 0:
            res.problems.append(f"replayed image not clean (fsck -n exit {check.code}): "
                                f"{_last_lines(check.lines)}")
        res.problems += verify(image, model)
        again = fsck_image(image, "n")
        if again.code != 0:
            res.problems.append(f"not clean after the replaying mount (exit {again.code}): "
                                f"{_last_lines(again.lines)}")
        res.ok = not res.problems
        if res.ok:
            image.unlink()
        return res
    fixed = fsck_image(image, "y")
    res.fsck_rc = fixed.code
    if fixed.code not in (0, 4):
        res.problems.append(f"fsck -y exited {fixed.code}: {fixed.lines[-1:] or ''}")
    check = fsck_image(image, "n")
    if check.code != 0:
        res.problems.append(f"second fsck -n not clean (exit {check.code}): {_last_lines(check.lines)}")
    res.problems += verify(image, model)
    res.ok = not res.problems
    if res.ok:
        image.unlink()
    return res


def _last_lines(lines: list[str], n: int = 3) -> str:
    return " | ".join(line.strip() for line in lines[-n:])


def verify(image: Path, model: Model) -> list[str]:
    problems: list[str] = []
    k = Kernel()
    try:
        k.etfs_register(KEY, str(image), ETFS_BLK)
        k.sys.mkdir(MNT, 0o755)
        k.sys.mount("ffs", MNT, 0, {"fspec": KEY})
        for path, (_fid, content) in model.settled_durable().items():
            try:
                got = _read_all(k, MNT + path)
            except OSError as e:
                problems.append(f"fsync'ed {path} lost: {e.strerror}")
                continue
            if got != content:
                problems.append(f"fsync'ed {path}: {len(got)} bytes, expected {len(content)} as fsync'ed")
        problems += _verify_xattrs(k, model)
        for path, s in _walk(k, MNT):
            if st.S_ISREG(s.st_mode):
                _, bad = foreign_units(_read_all(k, path), None)
                if bad:
                    problems.append(f"{path} exposes bytes it never held at offset {bad[0]}")
        fd = k.sys.open(MNT + "/after-crash", os.O_WRONLY | os.O_CREAT, 0o644)
        k.sys.write(fd, b"new writes are taken\n")
        k.sys.fsync(fd)
        k.sys.close(fd)
        k.halt()
    except OSError as e:
        problems.append(f"mount/verify failed: {e}")
        k.halt(sync=False)
    return problems


def _verify_xattrs(k: Kernel, model: Model) -> list[str]:
    """The user attributes of every settled fsync'ed file are exactly what they were then."""
    out = []
    settled = model.settled_durable()
    for path, want in model.xattrs_durable.items():
        if path not in settled:
            continue
        try:
            got = {n: k.sys.extattr_get_file(MNT + path, 1, n) for n in k.sys.extattr_list_file(MNT + path, 1)}
        except OSError as e:
            out.append(f"attributes of fsync'ed {path} unreadable: {e.strerror}")
            continue
        if got != want:
            out.append(f"attributes of fsync'ed {path}: {sorted(got)}, expected {sorted(want)}")
    return out


def _read_all(k: Kernel, path: str) -> bytes:
    with open_kernel_file(k.sys, path, "rb") as f:
        return f.read()  # type: ignore[no-any-return]


def _walk(k: Kernel, top: str) -> Iterator[tuple[str, os.stat_result]]:
    stack = [top]
    while stack:
        d = stack.pop()
        for name in k.sys.listdir(d):
            p = f"{d}/{os.fsdecode(name)}"
            s = k.sys.lstat(p)
            yield p, s
            if st.S_ISDIR(s.st_mode):
                stack.append(p)
