# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_metadata_pack / thin_metadata_unpack (PACK.md): the three 1.3.3 packs of
tests/fixtures/pack unpack to the exact images (SHA-256) whose 0.9.0 thin_dump is the stored
dump; our packs of those images carry the very record bytes 1.3.3 writes; our packs of the
functional corpus and of the bundled kernel image unpack to images that keep every block with a
valid checksum bit for bit and dump identically; damaged, truncated and foreign packs fail with
one line and exit 1, never leaving a valid-looking superblock; the overwrite guard."""
import hashlib
import os
import shutil
import struct
import subprocess

import common
import meta
import packfile

F = common.Failures("test_pack")
W = os.path.join(common.work_dir(), "pack")
os.makedirs(W, exist_ok=True)
FIX = os.path.join(common.HERE, "..", "fixtures", "pack")
TOP = os.path.join(common.HERE, "..", "..")
PACK, UNPACK = common.ours("thin_metadata_pack"), common.ours("thin_metadata_unpack")
SHA = {"basic": "637f1f8f5365cd385f3face438b5388548f01b7eeb7615b30cc3205728fdb967",
       "shared": "3854438d3ea04c0f53441713c203616a6e7614e91de5e998ba78420b316aa391",
       "multiframe": "b7211f342fd22ae8a3108971dfd006cbefac551d8e9e811a829f53bcfdf409f0"}
BLOCKS = {"basic": 1024, "shared": 1024, "multiframe": 4096}


def p(name):
    return os.path.join(W, name)


def fresh(name):
    """A path in the work directory with nothing there (outputs of an earlier run removed)."""
    path = p(name)
    if os.path.exists(path):
        os.remove(path)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def dump(path):
    return common.run([common.ref("thin_dump"), path])


def valid_kind(block):
    raw = meta.crc32c_raw(block[4:]) ^ struct.unpack_from("<I", block, 0)[0]
    return raw in (160774, 9031977, 146538381, 121107, 240779, 160478, 595846735)


def compare_images(label, orig, unpacked):
    """Every block with a valid checksum comes back bit for bit, every other block as zeros,
    and the file is exactly floor(size / 4096) blocks. (The unpacker refuses records that do
    not regenerate a block with a valid checksum: the unit tests and the damage cases below.)"""
    a, b = read(orig), read(unpacked)
    nr = len(a) // 4096
    F.check(len(b) == nr * 4096, f"{label}: unpacked size {len(b)}, want {nr * 4096}")
    if a[:nr * 4096] == b:
        return
    zero = bytes(4096)
    bad = 0
    for i in range(nr):
        x, y = a[i * 4096:(i + 1) * 4096], b[i * 4096:(i + 1) * 4096]
        if x != y and (y != zero or valid_kind(x)):
            bad += 1
    F.check(bad == 0, f"{label}: {bad} blocks differ from the source")


def no_valid_superblock(path):
    if not os.path.exists(path):
        return True
    with open(path, "rb") as f:
        blk = f.read(4096)
    return len(blk) < 4096 or not valid_kind(blk)


# 1. The 1.3.3 packs unpack to the exact images.
for name in SHA:
    out = fresh(name + ".unpacked")
    rc, _, err = common.run([UNPACK, "-i", os.path.join(FIX, name + ".pack"), "-o", out])
    F.check(rc == 0 and err == b"", f"{name}: unpack exit {rc} {err!r}")
    img = read(out)
    F.check(len(img) == BLOCKS[name] * 4096, f"{name}: size {len(img)}")
    F.check(hashlib.sha256(img).hexdigest() == SHA[name], f"{name}: SHA-256 differs")
    rc, xml, _ = dump(out)
    F.check(rc == 0 and xml == read(os.path.join(FIX, name + ".dump.xml")), f"{name}: dump differs")

# 2. Our packs of the restored fixture images: the same record bytes as 1.3.3, and back.
for name in SHA:
    src = p(name + ".meta")
    with open(src, "wb") as f:
        f.truncate(BLOCKS[name] * 4096)
    common.run([common.ref("thin_restore"), "-i", os.path.join(FIX, name + ".xml"), "-o", src],
               check=True)
    mine = fresh(name + ".mine.pack")
    rc, _, err = common.run([PACK, "-i", src, "-o", mine])
    F.check(rc == 0 and err == b"", f"{name}: pack exit {rc} {err!r}")
    theirs_r = packfile.records(read(os.path.join(FIX, name + ".pack")))
    mine_r = packfile.records(read(mine))
    F.check(sorted(mine_r) == sorted(theirs_r), f"{name}: packed blocks differ from 1.3.3's")
    diff = [b for b in theirs_r if mine_r.get(b) != theirs_r[b]]
    F.check(not diff, f"{name}: {len(diff)} records differ from 1.3.3's, e.g. block {diff[:3]}")
    F.check(all(len(raw) > 0 for _, _, raw in packfile.frames(read(mine))), f"{name}: empty frame")
    rt = fresh(name + ".rt")
    rc, _, err = common.run([UNPACK, "-i", mine, "-o", rt])
    F.check(rc == 0 and read(rt) == read(src), f"{name}: our round trip is not bit-exact {err!r}")

# 3. The functional corpus and the bundled kernel image.
images = [(n, b) for n, _, b in common.corpus()]
example = p("pool-with-snap.meta")
subprocess.run(["zstd", "-dqf", os.path.join(TOP, "examples", "pool-with-snap.meta.zst"), "-o",
                example], check=True)
images.append(("pool-with-snap", example))
for name, src in images:
    pk, out = p(name + ".pack"), p(name + ".out")
    rc, _, err = common.run([PACK, "-i", src, "-o", pk])
    F.check(rc == 0, f"{name}: pack exit {rc} {err!r}")
    rc, _, err = common.run([UNPACK, "-i", pk, "-o", out, "-f"])
    F.check(rc == 0 and err == b"", f"{name}: unpack exit {rc} {err!r}")
    compare_images(name, src, out)
    a, b = dump(src), dump(out)
    F.check(a == b, f"{name}: dump of the unpacked image differs ({a[0]} / {b[0]})")
    F.check(len(read(pk)) < len(read(src)) // 4 or len(read(src)) < 1 << 20,
            f"{name}: pack is {len(read(pk))} bytes for {len(read(src))}")

# 4. Damage: a flipped byte in each frame, truncations, wrong header fields.
src = p("multiframe.meta")
good = p("multiframe.mine.pack")
data = read(good)
frs = packfile.frames(data)
F.check(len(frs) == 3, f"multiframe: {len(frs)} frames, want 3 (1024 records each)")


def expect_failure(label, pack_bytes, want=None, header_ok=None):
    bad, out = p("bad.pack"), p("bad.out")
    with open(bad, "wb") as f:
        f.write(pack_bytes)
    shutil.copyfile(src, out)  # a valid image at the output: the unpack must not leave it valid
    rc, so, err = common.run([UNPACK, "-i", bad, "-o", out, "-f"])
    lines = err.decode(errors="replace").splitlines()
    F.check(rc == 1 and len(lines) == 1 and so == b"", f"{label}: exit {rc}, stderr {err!r}")
    if want:
        F.check(want in err.decode(errors="replace"), f"{label}: {want!r} not in {err!r}")
    if header_ok is None:
        header_ok = len(pack_bytes) >= 32 and pack_bytes[:32] == data[:32]
    if header_ok:
        F.check(no_valid_superblock(out), f"{label}: the output holds a valid superblock")
    else:  # header errors leave the output alone
        F.check(read(out) == read(src), f"{label}: output touched by a header error")


for i, (off, n, _) in enumerate(frs):
    for where in (off + 8 + 2, off + 8 + n // 2, off + 8 + n - 2):  # start, middle, Adler-32
        b = bytearray(data)
        b[where] ^= 0x5A
        expect_failure(f"frame {i} flipped at {where}", bytes(b), f"frame {i} at offset {off}")
    b = bytearray(data)
    b[off] ^= 0x01  # the length field
    expect_failure(f"frame {i} length changed", bytes(b))
# (A cut that leaves 1-7 bytes of a frame's length field reads as the stray bytes 1.3.3
# accepts; a cut exactly between frames cannot be told from a shorter pack.)
for cut in (0, 5, 20, 40, frs[0][0] + 8 + frs[0][1] // 2, frs[1][0] + 8, frs[1][0] + 11,
            frs[2][0] + 100, len(data) - 1):
    expect_failure(f"truncated at {cut}", data[:cut])
b = bytearray(data); b[0] ^= 1
expect_failure("wrong magic", bytes(b), "Not a pack file")
b = bytearray(data); b[8] = 2
expect_failure("wrong version", bytes(b), "unsupported pack file version (3).")
b = bytearray(data); b[17] = 0x20
expect_failure("wrong block size", bytes(b), "block size is not 4096")
b = bytearray(data); b[24:32] = bytes(8)
expect_failure("no blocks", bytes(b))
b = bytearray(data); b[24:32] = struct.pack("<Q", 100)  # records beyond the device
expect_failure("blocks beyond nr_blocks", bytes(b), "beyond", header_ok=True)
# A frame twice: every block of it appears twice.
expect_failure("duplicate frame", data + data[frs[0][0]:frs[0][0] + 8 + frs[0][1]], "twice")
# A record that does not regenerate a block with a known checksum.
raw = bytearray(frs[2][2])
raw[8 + 2 + 10] ^= 1  # inside the literal header of the first record
z = __import__("zlib").compress(bytes(raw))
expect_failure("record without a valid checksum",
               data[:frs[2][0]] + struct.pack("<Q", len(z)) + z, "checksum")

# Things 1.3.3 accepts that its packer never writes (PACK.md §9): an empty frame, a frame of
# an empty stream, stray bytes at the end: accepted (stray bytes with a warning).
zl = __import__("zlib")
odd = data[:32] + struct.pack("<Q", 0) + data[32:] + struct.pack("<Q", len(zl.compress(b""))) + \
    zl.compress(b"") + b"\x01\x02\x03"
with open(p("odd.pack"), "wb") as f:
    f.write(odd)
rc, _, err = common.run([UNPACK, "-i", p("odd.pack"), "-o", fresh("odd.out")])
F.check(rc == 0 and b"3 stray bytes" in err, f"odd pack: exit {rc} {err!r}")
F.check(read(p("odd.out")) == read(src), "odd pack: image differs")

# Records in descending order, all 2650 in one stored (level 0) frame, then the same at level 9
# in frames of 7 records: the image is the same.
recs = packfile.records(data)
desc = b"".join(struct.pack("<Q", b) + recs[b] for b in sorted(recs, reverse=True))
one = zl.compress(desc, 0)
asc = sorted(recs)
small = []
for i in range(0, len(asc), 7):
    z = zl.compress(b"".join(struct.pack("<Q", b) + recs[b] for b in asc[i:i + 7]), 9)
    small.append(struct.pack("<Q", len(z)) + z)
for label, body in (("one stored frame, descending", struct.pack("<Q", len(one)) + one),
                    ("frames of 7 records", b"".join(small))):
    with open(p("other.pack"), "wb") as f:
        f.write(data[:32] + body)
    rc, _, err = common.run([UNPACK, "-i", p("other.pack"), "-o", fresh("other.out")])
    F.check(rc == 0 and err == b"" and read(p("other.out")) == read(src),
            f"{label}: exit {rc} {err!r}")

# 5. Command line: the overwrite guard, missing and foreign inputs.
out = p("guard.out")
shutil.copyfile(src, out)
rc, _, err = common.run([UNPACK, "-i", good, "-o", out], stdin=b"n\n")
F.check(rc == 1 and b"Output file not overwritten" in err and read(out) == read(src),
        f"guard, answer n: {rc} {err!r}")
os.truncate(out, 0)
with open(out, "wb") as f:
    f.write(b"\xff" * 8192)
rc, _, err = common.run([UNPACK, "-i", good, "-o", out], stdin=b"")
F.check(rc == 0 and read(out) == read(src), f"no metadata at the output: no question {rc} {err!r}")
rc, _, err = common.run([UNPACK, "-i", good, "-o", out], stdin=b"YES\n")
F.check(rc == 0 and b"are you sure? [y/n]: " in err, f"guard, answer YES: {rc} {err!r}")
rc, _, err = common.run([PACK, "-i", src, "-o", out], stdin=b"\n")
F.check(rc == 1 and b"Output file not overwritten" in err, f"pack guard: {rc} {err!r}")
rc, _, err = common.run([PACK, "-i", src, "-o", src, "-f"])
F.check(rc == 1 and b"same file" in err and read(src) == read(out), f"pack onto its input: {rc} {err!r}")
rc, _, err = common.run([PACK, "-i", p("missing"), "-o", p("x.pack")])
F.check(rc == 1 and b"Couldn't find input file" in err, f"pack missing input: {rc} {err!r}")
rc, _, err = common.run([PACK, "-i", os.path.join(FIX, "basic.xml"), "-o", p("x.pack")])
F.check(rc == 1 and b"This looks like XML" in err, f"pack XML: {rc} {err!r}")
rc, _, err = common.run([PACK, "-i", W, "-o", p("x.pack")])
F.check(rc == 1 and b"Not a block device or regular file" in err, f"pack directory: {rc} {err!r}")
with open(p("tiny"), "wb") as f:
    f.write(bytes(100))
rc, _, err = common.run([PACK, "-i", p("tiny"), "-o", p("x.pack")])
F.check(rc == 1 and b"too small" in err and not os.path.exists(p("x.pack")), f"pack tiny: {rc} {err!r}")
rc, _, err = common.run([UNPACK, "-i", p("missing"), "-o", p("x.out")])
F.check(rc == 1 and b"Couldn't find input file" in err, f"unpack missing input: {rc} {err!r}")
rc, _, err = common.run([UNPACK, "-i", good, "-o", W])
F.check(rc == 1 and b"Is a directory" in err, f"unpack to a directory: {rc} {err!r}")
for tool in (PACK, UNPACK):
    rc, _, err = common.run([tool, "-i", good])
    F.check(rc == 1 and b"--output <FILE>" in err and b"Usage" not in err, f"{tool}: missing -o: {rc}")
    rc, so, _ = common.run([tool, "-h"])
    F.check(rc == 0 and b"--input" in so, f"{tool} -h")
    rc, _, _ = common.run([tool, "--bogus"])
    F.check(rc == 1, f"{tool}: unknown option exit {rc}")
F.finish()
