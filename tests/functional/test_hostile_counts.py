# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile on-disk counts cost neither memory nor time (issue 13, item 1): a small image whose
superblock claims a huge data space map (2^40, 2^45 blocks), a huge metadata space map on a big
sparse file, or a held snapshot with such claims, is reported as damage at once by every
tool, with a bounded address space (a claim sized allocation would fail under the limit) and
within a couple of seconds."""
import os
import struct
import time

import common
import meta

F = common.Failures("test_hostile_counts")
W = os.path.join(common.work_dir(), "hostile")
os.makedirs(W, exist_ok=True)
BS = meta.BS
LIMIT = 512 << 20  # address space of each run (the binary with its threads needs ~100 MiB)

XML = """<superblock uuid="" time="1" transaction="3" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="0" length="3" time="0"/>
  </device>
</superblock>
"""


def run_measured(argv):
    """(exit code, stderr, seconds, max RSS in KiB) of one run under the address-space limit,
    measured by /usr/bin/time (scripts/setup.sh installs it)."""
    rss_path = os.path.join(W, "rss")
    t = time.monotonic()
    # A sanitizer build cannot start under the limit; its maximum RSS is still bounded below.
    limit = "" if common.sanitized() else f"ulimit -v {LIMIT // 1024}; "
    rc, _, err = common.run(["/bin/sh", "-c", limit + 'exec "$@"', "sh",
                             "/usr/bin/time", "-q", "-f", "%M", "-o", rss_path] + argv)
    secs = time.monotonic() - t
    with open(rss_path) as f:
        rss = int(f.read().split()[-1])
    return rc, err, secs, rss


def image(size=16 << 20):
    xml = os.path.join(W, "small.xml")
    with open(xml, "w") as f:
        f.write(XML)
    path = os.path.join(W, "base.bin")
    with open(path, "wb") as f:
        f.truncate(size)
    common.run([common.ours("thin_restore"), "-i", xml, "-o", path], check=True)
    with open(path, "rb") as f:
        return f.read()


def with_sb(data, mutate, name, size=None):
    sb = bytearray(data[0:BS])
    mutate(sb)
    meta.fix_checksum(sb, "superblock")
    path = os.path.join(W, name)
    with open(path, "wb") as f:
        f.write(bytes(sb) + data[BS:])
        if size:
            f.truncate(size)
    return path


def expect_damage(label, argv, words):
    rc, err, secs, rss = run_measured(argv)
    F.check(rc == 1, f"{label}: exit 1 (got {rc}): {err[-300:]!r}")
    F.check(b"out of memory" not in err and b"TIMEOUT" not in err,
            f"{label}: no memory exhaustion: {err[-300:]!r}")
    F.check(all(w in err for w in words), f"{label}: stderr names {words}: {err[-400:]!r}")
    F.check(secs < 3.0, f"{label}: quick ({secs:.2f} s)")
    F.check(rss < 64 * 1024, f"{label}: bounded memory ({rss} KiB)")


base = image()
data_dev = os.path.join(W, "data.bin")
with open(data_dev, "wb") as f:
    f.truncate(1000 * 128 * 512)

for e in (40, 45):
    img = with_sb(base, lambda sb: struct.pack_into("<Q", sb, 64, 1 << e), f"data{e}.bin")
    why = [b"data space map", b"bitmaps cannot fit"]
    expect_damage(f"thin_check data 2^{e}", [common.ours("thin_check"), img], why)
    expect_damage(f"thin_check --auto-repair data 2^{e}",
                  [common.ours("thin_check"), "--auto-repair", img], why)
    expect_damage(f"thin_trim data 2^{e}", [common.ours("thin_trim"), "--metadata-dev", img,
                                           "--data-dev", data_dev], [b"run thin_check"])
    out = os.path.join(W, "repaired.bin")
    with open(out, "wb") as f:
        f.truncate(16 << 20)
    expect_damage(f"thin_repair data 2^{e}", [common.ours("thin_repair"), "-i", img, "-o", out],
                  [b"nr_data_blocks" if e == 45 else b"too small"])
    # Readers that do not need the space map still work and stay small.
    for tool in (["thin_dump"], ["thin_ls"], ["thin_rmap", "--region", "0..10"]):
        rc, err, secs, rss = run_measured([common.ours(tool[0])] + tool[1:] + [img])
        F.check(secs < 3.0 and rss < 64 * 1024,
                f"{tool[0]} data 2^{e}: quick and small ({secs:.2f} s, {rss} KiB, rc {rc})")

# A metadata space map claiming 2^32 blocks on a sparse 64 GiB file: nothing is sized from the
# claim or from the file beyond the 16 GiB the format can address.
img = with_sb(base, lambda sb: (struct.pack_into("<Q", sb, 192, 1 << 32),
                                struct.pack_into("<Q", sb, 64, 1 << 36)),
              "meta32.bin", size=64 << 30)
expect_damage("thin_check metadata 2^32 on 64 GiB", [common.ours("thin_check"), img],
              [b"metadata space map covers 4294967296 blocks, more than one index block"])

# A held snapshot superblock whose roots point far beyond the device.
img = meta.with_held_snapshot(base, 4000)
sb4000 = bytearray(img[4000 * BS:4001 * BS])
struct.pack_into("<Q", sb4000, 320, 1 << 50)
struct.pack_into("<Q", sb4000, 328, 1 << 50)
meta.fix_checksum(sb4000, "superblock")
img = meta.put_block(img, 4000, bytes(sb4000))
path = os.path.join(W, "held.bin")
with open(path, "wb") as f:
    f.write(img)
expect_damage("thin_check held snapshot roots 2^50", [common.ours("thin_check"), path],
              [b"metadata snapshot mapping tree root"])
expect_damage("thin_dump -m held snapshot roots 2^50", [common.ours("thin_dump"), "-m", path],
              [b""])

F.finish()
