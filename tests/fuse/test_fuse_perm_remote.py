"""The permission and set-uid suite of ``test_fuse_perm`` run against the remote mount
(``p2k mount --server``): with each FUSE request's credentials sent along with its call, the
server's kernel applies exactly the local mount's rules — including set-uid clearing on a
non-owner's write and new files owned by their maker from the moment they exist."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_fuse import Mount, start_mount, stop
from test_fuse_perm import test_permission_rules_as_nobody, test_setgid_directory_and_groups
from test_server_harness import ServerProc, start

pytestmark = [pytest.mark.fuse, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")]

__all__ = ["test_permission_rules_as_nobody", "test_setgid_directory_and_groups"]  # collected here too


@pytest.fixture(scope="module")
def fsmount() -> Iterator[Mount]:
    """A rump_server with a tmpfs at /mnt, exported through FUSE by ``p2k mount --server``."""
    base = Path(tempfile.mkdtemp(prefix="p2k-fuse-remote-"))
    os.chmod(base, 0o755)
    server: ServerProc | None = None
    m: Mount | None = None
    try:
        server = start(base, "unix://sock")
        with server.connect() as c:
            c.sys.mkdir("/mnt", 0o755)
            c.sys.mount("tmpfs", "/mnt")
        m = start_mount(base / "mnt", "-o", "allow_other", "--server", server.url, "/mnt")
        os.chmod(m.path, 0o755)
        yield m
    finally:
        if m is not None:
            stop(m)
        if server is not None:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def work(fsmount: Mount, request: pytest.FixtureRequest) -> Path:
    d = fsmount.path / request.node.name.replace("[", "_").replace("]", "")
    d.mkdir()
    return d
