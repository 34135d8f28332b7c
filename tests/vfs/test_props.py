"""Random syscall sequences on p2k's tmpfs and on the host kernel must agree.

A hypothesis state machine runs each step twice: through ``k.sys`` on a tmpfs mounted at /mnt, and
through ``os`` in a fresh directory of the host's /dev/shm (tmpfs, so link counts and sizes of
files mean the same), paths mapped name for name. It compares results (normalised stat fields,
contents, sorted listings) and, for failures, the errno. The second variant runs the same machine
as uid/gid 1000: a subprocess started with setpriv, in which the host side is an ordinary user
and the kernel side acts through ``k.newproc(cred=Cred(1000, 1000, ()))``.

Where Linux and NetBSD disagree p2k follows Linux if the FUSE bridge benefits (see vfs_syscalls.py),
so the comparison is exact; the few BSD-specific cases left out are marked where they are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings
from syscall_model import AS_USER, USER_ID, SyscallComparison  # noqa: E402

SyscallComparison.TestCase.settings = settings.get_profile("p2k-props")
test_syscalls_agree_with_host = SyscallComparison.TestCase


@pytest.mark.skipif(AS_USER, reason="already running as the user")
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_syscalls_agree_with_host_as_user() -> None:
    """The same machine run by uid/gid 1000 in a subprocess: permission checks on both sides."""
    env = dict(os.environ, P2K_PROPS_AS_USER="1", HOME="/tmp", PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run(
        ["setpriv", f"--reuid={USER_ID}", f"--regid={USER_ID}", "--clear-groups", sys.executable, "-m", "pytest",
         "-q", "-p", "no:cacheprovider", "-x", str(Path(__file__).resolve()), "-k", "agree_with_host and not as_user"],
        cwd="/tmp", env=env, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "1 passed" in r.stdout
