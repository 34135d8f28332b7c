"""Fixtures shared by the test modules: kernels that are halted afterwards, and a tmpfs mount.

Tests live in one folder per layer (tests/vfs, tests/ffs, ...); what several of them share lives in
tests/support, which is put on the import path here so test modules never import each other.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

import p2k  # noqa: E402

# fixtures shared across folders: live servers (server, servers) and FUSE mounts (fsmount, work)
pytest_plugins = ["server_harness", "fuse_harness"]

# CI is deterministic: every property and fuzz test replays the same examples, so a red run means a
# change broke something, not that the dice found an old bug. P2K_FULL=1 explores at random.
settings.register_profile("p2k-ci", derandomize=True, database=None)
settings.register_profile("p2k-explore", derandomize=False)
settings.load_profile("p2k-explore" if os.environ.get("P2K_FULL") == "1" else "p2k-ci")


@pytest.fixture
def kernel() -> Iterator[p2k.Kernel]:
    """A fresh kernel with default parameters, independent of the RUMP_* environment."""
    k = p2k.Kernel(env={})
    try:
        yield k
    finally:
        k.halt(sync=False)


@pytest.fixture
def tmpfs(kernel: p2k.Kernel) -> p2k.Kernel:
    """``kernel`` with a tmpfs mounted on ``/mnt``."""
    kernel.sys.mkdir("/mnt", 0o755)
    kernel.sys.mount("tmpfs", "/mnt")
    return kernel
