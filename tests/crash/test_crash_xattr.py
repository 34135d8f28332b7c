"""The crash test's attribute check (``p2k crashtest --workload xattrs`` runs in
tests/crash/test_crash.py with every workload) cannot pass vacuously: an fsync'ed attribute that
is missing or different is reported, one of a file the cut call was writing is not checked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ffs_work import mount_rw, newfs

from p2k.crash.model import Model
from p2k.crash.runner import verify


def test_verifier_catches_lost_and_wrong_attributes(tmp_path: Path) -> None:
    img = newfs(tmp_path / "v.img", "16m", "-O", "2")
    k = mount_rw(img)
    for name in ("a", "b", "c"):
        k.sys.close(k.sys.open(f"/mnt/{name}", os.O_CREAT | os.O_WRONLY, 0o644))
    k.sys.extattr_set_file("/mnt/a", 1, b"x", b"kept")
    k.sys.extattr_set_file("/mnt/b", 1, b"x", b"changed")
    k.halt()
    shutil.copyfile(img, tmp_path / "again.img")  # verify writes a file of its own
    model = Model()
    model.durable = {p: (i, b"") for i, p in enumerate(("/a", "/b", "/c"))}
    model.xattrs_durable = {"/a": {b"x": b"kept"}, "/b": {b"x": b"as fsynced"}, "/c": {b"y": b"lost"}}
    model.inflight = set()
    problems = " | ".join(verify(img, model))
    assert "attributes of fsync'ed /b" in problems and "attributes of fsync'ed /c" in problems
    assert "/a" not in problems
    model.inflight = {"/b", "/c"}
    assert not verify(tmp_path / "again.img", model)
