# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_trim on a regular-file data device: every mapped data block keeps its content (also
the last mapped block, which 0.9.0 discarded), every free block is punched (reads zero);
damaged metadata is refused and the data left alone; a short data device is refused."""
import os

import common
import corpus

F = common.Failures("test_trim")
W = os.path.join(common.work_dir(), "trim")
os.makedirs(W, exist_ok=True)
BS = 128 * 512  # data block size 128 sectors
NR = 64


def pattern(b, tag):
    s = f"{tag}:{b:08d}:".encode()
    return (s * (BS // len(s) + 1))[:BS]


def setup(name, devices):
    xml = os.path.join(W, name + ".xml")
    with open(xml, "w") as f:
        f.write(corpus.xml_pool(1, 3, 128, NR, devices))
    meta_path = os.path.join(W, name + ".meta")
    with open(meta_path, "wb") as f:
        f.truncate(4 << 20)
    common.run([common.ref("thin_restore"), "-i", xml, "-o", meta_path], check=True)
    data = os.path.join(W, name + ".data")
    with open(data, "wb") as f:
        for b in range(NR):
            f.write(pattern(b, "x"))
    mapped = {d for _, _, _, _, maps in devices for (_, d, _) in maps}
    return meta_path, data, mapped


def verify(label, data, mapped):
    with open(data, "rb") as f:
        for b in range(NR):
            blk = f.read(BS)
            if b in mapped:
                F.check(blk == pattern(b, "x"), f"{label}: mapped data block {b} changed")
            else:
                F.check(blk == bytes(BS), f"{label}: free data block {b} not discarded")


# Mapped 0-7, 20, 30, 40 then free up to the end; a snapshot shares 0-3 (count 2).
devs = [(1, 0, 0, 1, [(i, i, 0) for i in range(8)] + [(100, 20, 0), (200, 30, 1), (300, 40, 1)]),
        (2, 1, 1, 1, [(i, i, 0) for i in range(4)])]
meta_path, data, mapped = setup("pool", devs)
rc, _, err = common.run([common.ours("thin_trim"), "--metadata-dev", meta_path,
                         "--data-dev", data])
F.check(rc == 0, f"thin_trim exit {rc}: {err!r}")
verify("pool", data, mapped)

# The last data block mapped; nothing free at the end.
devs = [(1, 0, 0, 0, [(0, NR - 1, 0), (1, 5, 0)])]
meta_path, data, mapped = setup("last", devs)
rc, _, err = common.run([common.ours("thin_trim"), "--pool-inactive", "-q", "--metadata-dev",
                         meta_path, "--data-dev", data])
F.check(rc == 0, f"thin_trim (last block mapped) exit {rc}: {err!r}")
verify("last", data, mapped)

# Damaged metadata: refused, data untouched.
meta_path, data, mapped = setup("damaged", [(1, 0, 0, 0, [(0, 3, 0)])])
rc, xml, _ = common.run([common.ref("thin_dump"), meta_path])
with open(meta_path, "r+b") as f:
    import meta
    img = meta.Image(open(meta_path, "rb").read())
    root = img.device_roots()[1]
    f.seek(root * 4096 + 100)
    f.write(b"\xff")
rc, _, err = common.run([common.ours("thin_trim"), "--metadata-dev", meta_path,
                         "--data-dev", data])
F.check(rc == 1 and b"metadata contains errors (run thin_check for details)." in err and
        b"perhaps you need to run thin_repair." in err, f"damaged metadata: {rc} {err!r}")
with open(data, "rb") as f:
    F.check(all(f.read(BS) == pattern(b, "x") for b in range(NR)), "damaged: data was touched")

# Data device shorter than nr_data_blocks x block size.
meta_path, data, mapped = setup("short", [(1, 0, 0, 0, [(0, 3, 0)])])
os.truncate(data, (NR - 1) * BS)
rc, _, err = common.run([common.ours("thin_trim"), "--metadata-dev", meta_path,
                         "--data-dev", data])
F.check(rc == 1 and b"unexpected data device size" in err, f"short data device: {rc} {err!r}")
rc, _, err = common.run([common.ours("thin_trim"), "--metadata-dev", meta_path])
F.check(rc == 1 and b"--help" in err and b"Usage" not in err, "missing --data-dev: one line and a pointer to --help, exit 1")
F.finish()
