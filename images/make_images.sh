#!/bin/sh
# Rebuild the reference FFS images in this directory with the real NetBSD makefs
# (Debian's package is the MirBSD port). Every image is small, gzipped, and described in
# MANIFEST.md. Timestamps are fixed and clamped (-T) so that rebuilding changes only fs_id.
#
#   sh images/make_images.sh            # from the repository root or from images/
#
# Needs: makefs, gzip, dd, mkfifo, ln. Run as root to get a device node into the mixed tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
T=1500000000

stamp() {  # fixed mtimes for a whole tree, without following symlinks
	find "$1" -depth -exec touch -h -d "@$T" {} +
}

# ---- demo: what the project's README mounts -------------------------------------------------
demo=$work/demo
mkdir -p "$demo/docs" "$demo/src"
cat > "$demo/README" <<'TXT'
This is p2k's demo file system: a little-endian UFS2 image made by NetBSD's makefs.
p2k mounts it with no kernel module and no root: everything runs in one Python process.
TXT
printf 'Hello from FFS.\n' > "$demo/hello.txt"
seq 1 2000 > "$demo/numbers.txt"
cat > "$demo/docs/ffs.txt" <<'TXT'
The Berkeley Fast File System keeps files in cylinder groups, each with its own inodes,
bitmaps and data blocks, so that a file's inode and its blocks sit close together.
TXT
printf 'print("hello")\n' > "$demo/src/hello.py"
ln -s docs/ffs.txt "$demo/about-ffs"
stamp "$demo"

# ---- mixed: every node type, both symlink kinds, a hard link, a sparse file, indirect blocks ---
mixed=$work/mixed
mkdir -p "$mixed/dir/sub"
printf 'small\n' > "$mixed/small"
dd if=/dev/zero bs=1024 count=200 2>/dev/null | tr '\0' 'x' > "$mixed/indirect"   # > 12 blocks of 4 KiB
dd if=/dev/zero of="$mixed/sparse" bs=1 count=0 seek=300000 2>/dev/null
printf 'tail' >> "$mixed/sparse"
ln "$mixed/small" "$mixed/dir/hardlink"
ln -s small "$mixed/fastlink"
ln -s "$(printf '%0130d' 0)" "$mixed/slowlink"     # 130 bytes: a data block on UFS1 and UFS2
mkfifo "$mixed/fifo"
if [ "$(id -u)" = 0 ]; then mknod "$mixed/null" c 1 3; fi
i=0
while [ $i -lt 300 ]; do : > "$mixed/dir/f$i"; i=$((i + 1)); done
printf 'deep\n' > "$mixed/dir/sub/file"
stamp "$mixed"

mk() {  # mk NAME VERSION ENDIAN BSIZE FSIZE SIZE TREE
	img=$work/$1.img
	makefs -t ffs -T "$T" -B "$3" -o "version=$2,bsize=$4,fsize=$5" -s "$6" "$img" "$7" >/dev/null
	gzip -9n < "$img" > "$here/$1.img.gz"
}

mk demo             2 le  8192 1024 2m "$demo"
mk ufs1-le-4096     1 le  4096  512 4m "$mixed"
mk ufs1-be-8192     1 be  8192 1024 4m "$mixed"
mk ufs2-be-16384    2 be 16384 2048 8m "$mixed"
mk ufs2-le-65536    2 le 65536 8192 8m "$mixed"

# UFS2EA: NetBSD 10's FFSv2ea magic (0x19012038) on an otherwise plain little-endian UFS2 image;
# a reader that tests fs_magic == FS_UFS2_MAGIC in cgstart() gets it wrong (reference §5).
cp "$work/ufs2-le-65536.img" "$work/ufs2ea-le.img"
printf '\070\040\001\031' | dd of="$work/ufs2ea-le.img" bs=1 seek=$((8192 + 1372)) conv=notrunc 2>/dev/null
gzip -9n < "$work/ufs2ea-le.img" > "$here/ufs2ea-le.img.gz"

ls -l "$here"/*.img.gz
