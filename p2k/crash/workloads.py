"""Seeded workloads for crash tests. Each drives a syscall object the way programs drive a file
system — small files and renames, large appends, directory churn, a mix with fsync — and keeps the
``Model`` in step, so a checker knows afterwards what must have survived.

A workload stops at the first OSError: after a power cut every call fails, and that is the point.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from typing import Any

from p2k.crash.model import Model
from p2k.crash.stamp import UNIT, stamp

Workload = Callable[[Any, random.Random, Model, str], None]


def _write(sys: Any, model: Model, root: str, path: str, offset: int, length: int, seq: int) -> None:
    data = stamp(model.files[path].file_id, seq, length)
    model.begin(path)
    fd = sys.open(root + path, os.O_WRONLY)
    try:
        sys.pwrite(fd, data, offset)
    finally:
        sys.close(fd)
    model.write(path, offset, data)


def _create(sys: Any, model: Model, root: str, path: str) -> None:
    model.begin(path)
    fd = sys.open(root + path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    sys.close(fd)
    model.create(path)


def _fsync(sys: Any, model: Model, root: str, path: str) -> None:
    model.begin(path)
    fd = sys.open(root + path, os.O_RDONLY)
    try:
        sys.fsync(fd)
    finally:
        sys.close(fd)
    model.fsynced(path)


def small_files(sys: Any, rng: random.Random, model: Model, root: str) -> None:
    """Many small files in a few directories, renamed over each other; every fourth one fsync'ed."""
    for d in ("/a", "/b", "/c"):
        sys.mkdir(root + d, 0o755)
    live: list[str] = []
    for i in range(60):
        path = f"/{rng.choice('abc')}/f{i}"
        _create(sys, model, root, path)
        _write(sys, model, root, path, 0, UNIT * rng.randint(1, 300), 0)
        live.append(path)
        if i % 4 == 3:
            _fsync(sys, model, root, path)
        if live and rng.random() < 0.3:
            src = rng.choice(live)
            dst = f"/{rng.choice('abc')}/r{i}"
            model.begin(src, dst)
            sys.rename(root + src, root + dst)
            model.rename(src, dst)
            live[live.index(src)] = dst


def large_appends(sys: Any, rng: random.Random, model: Model, root: str) -> None:
    """A few files grown by appends through direct and indirect blocks, fsync'ed now and then."""
    names = [f"/log{i}" for i in range(3)]
    for n in names:
        _create(sys, model, root, n)
    seq = 0
    for step in range(40):
        n = rng.choice(names)
        size = len(model.files[n].content)
        length = UNIT * rng.randint(64, 4096)
        _write(sys, model, root, n, size, length, seq)
        seq += length // UNIT
        if step % 7 == 6:
            _fsync(sys, model, root, n)
            names.remove(n)  # never touched again, so its fsync'ed content must survive whole
            if not names:
                return
            nxt = f"/log{3 + step}"
            _create(sys, model, root, nxt)
            names.append(nxt)


def dir_churn(sys: Any, rng: random.Random, model: Model, root: str) -> None:
    """Directories made and removed, files created and unlinked inside them; survivors fsync'ed."""
    dirs: list[str] = []
    for i in range(40):
        op = rng.random()
        if op < 0.35 or not dirs:
            d = f"/d{i}"
            sys.mkdir(root + d, 0o755)
            dirs.append(d)
        elif op < 0.7:
            d = rng.choice(dirs)
            path = f"{d}/f{i}"
            _create(sys, model, root, path)
            _write(sys, model, root, path, 0, UNIT * rng.randint(1, 1024), i * 1000)
            if rng.random() < 0.4:
                _fsync(sys, model, root, path)
        else:
            d = dirs.pop(rng.randrange(len(dirs)))
            for name in sys.listdir(root + d):
                model.begin(f"{d}/{name}")
                sys.unlink(f"{root}{d}/{name}")
                model.unlink(f"{d}/{name}")
            sys.rmdir(root + d)


def mixed(sys: Any, rng: random.Random, model: Model, root: str) -> None:
    """Writes at random offsets (holes), truncates, hard and symbolic links, unlinks, with fsync."""
    sys.mkdir(root + "/m", 0o755)
    files: list[str] = []
    for i in range(50):
        op = rng.random()
        if op < 0.3 or not files:
            path = f"/m/f{i}"
            _create(sys, model, root, path)
            files.append(path)
        elif op < 0.6:
            path = rng.choice(files)
            _write(sys, model, root, path, UNIT * rng.randint(0, 20000), UNIT * rng.randint(1, 512), i * 977)
        elif op < 0.7:
            path = rng.choice(files)
            size = UNIT * rng.randint(0, 4000)
            model.begin(path)
            sys.truncate(root + path, size)
            model.truncate(path, size)
        elif op < 0.8:
            path = rng.choice(files)
            sys.symlink(path.rsplit("/", 1)[-1], f"{root}/m/s{i}")
            sys.link(root + path, f"{root}/m/h{i}")
            model.durable.pop(path, None)  # two names now; keep the check simple
        elif op < 0.9:
            path = files.pop(rng.randrange(len(files)))
            model.begin(path)
            sys.unlink(root + path)
            model.unlink(path)
        else:
            path = files.pop(rng.randrange(len(files)))
            _fsync(sys, model, root, path)


def xattrs(sys: Any, rng: random.Random, model: Model, root: str) -> None:
    """Files with data and user attributes: set, replaced, deleted, grown past one ext block and
    shrunk again (each a copy-on-write of the whole area), or refused when the area is full; a
    file is fsync'ed and then left alone, so its data and its attributes at that moment must
    survive. On UFS1 (no ext area) only the data part runs."""
    sys.mkdir(root + "/x", 0o755)
    supported = True
    for i in range(12):
        path = f"/x/f{i}"
        _create(sys, model, root, path)
        _write(sys, model, root, path, 0, UNIT * rng.randint(1, 64), i * 100)
        attrs: dict[bytes, bytes] = {}
        for step in range(rng.randint(3, 12)):
            if not supported:
                break
            name = b"a%d" % rng.randint(0, 6)
            op = rng.random()
            model.begin(path)
            try:
                if op < 0.7 or name not in attrs:
                    value = stamp(model.files[path].file_id, 50_000 + step, UNIT * rng.choice((0, 1, 8, 100, 300)))
                    sys.extattr_set_file(root + path, 1, name, value)
                    attrs[name] = value
                else:
                    sys.extattr_delete_file(root + path, 1, name)
                    del attrs[name]
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    continue  # the area is full: the call changed nothing (checked at the fsync)
                if e.errno != errno.EOPNOTSUPP:
                    raise
                supported = False
        _fsync(sys, model, root, path)
        if supported:
            model.xattrs_durable[path] = dict(attrs)


WORKLOADS: dict[str, Workload] = {
    "smallfiles": small_files,
    "appends": large_appends,
    "dirchurn": dir_churn,
    "mixed": mixed,
    "xattrs": xattrs,
}
