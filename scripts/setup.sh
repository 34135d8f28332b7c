#!/usr/bin/env bash
# Set up everything p2k needs on a bare Debian machine: the host packages (FUSE 3, NetBSD makefs,
# The Sleuth Kit, fuse2fs and e2fsprogs for the benchmarks; sfdisk, sgdisk, qemu-img, xz and losetup
# for the whole-disk tests; attr/acl for the xattr tests, zstd for the compressed fixtures), the
# virtual environment at .venv and
# the package itself with its test extras. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in fusermount3:fuse3 pkg-config:pkg-config makefs:makefs fls:sleuthkit fuse2fs:fuse2fs \
            mkfs.ext4:e2fsprogs setpriv:util-linux sfdisk:fdisk sgdisk:gdisk qemu-img:qemu-utils xz:xz-utils \
            losetup:mount getfattr:attr getfacl:acl zstd:zstd zsh:zsh; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ -f /usr/include/fuse3/fuse.h ] || need+=(libfuse3-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import p2k, pyfuse3, trio, pytest, hypothesis, dissect.ffs, mypy, ruff, \
        dissect.hypervisor, dissect.volume, indexed_gzip, xz, tqdm, shtab, fsspec, pandas" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.p2k-installed ] \
   || compgen -G '.venv/lib/python3*/site-packages/__editable___p2k_*_finder.py' >/dev/null; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  # editable_mode=compat: the editable install is a plain path in a .pth file. setuptools' default
  # (an import hook module loaded from a .pth) imports pathlib, re, urllib... in every interpreter
  # of the venv, 8-12 ms before the first line of any command runs (issue 16, start-up).
  # setuptools warns that compat mode is transitional; when it goes, a path .pth is what to keep.
  .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
  touch .venv/.p2k-installed
fi
