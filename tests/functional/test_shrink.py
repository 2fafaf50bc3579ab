# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_shrink on image files: every data block at or beyond --nr-blocks moves into a free block
below it (its content checked on the data image, every mapping of a shared block following it),
the new metadata says nr_data_blocks = N and passes 0.9.0 thin_check; XML and --binary forms,
--no-copy, and the refusals (blocks that do not fit, bad sizes) before anything is written."""
import os
import re
import shutil

import common
import corpus

F = common.Failures("test_shrink")
W = os.path.join(common.work_dir(), "shrink")
os.makedirs(W, exist_ok=True)
SHRINK = common.ours("thin_shrink")
BS = 128 * 512  # data block size 128 sectors
NR = 96


def p(name):
    return os.path.join(W, name)


def pattern(b):
    s = f"data block {b:06d};".encode()
    return (s * (BS // len(s) + 1))[:BS]


def mappings(xml_text):
    """{dev_id: {virtual block: (data block, time)}} and nr_data_blocks of thin_dump XML."""
    devs, cur = {}, None
    nr_data = int(re.search(r'nr_data_blocks="(\d+)"', xml_text).group(1))
    for line in xml_text.splitlines():
        m = re.search(r'<device dev_id="(\d+)"', line)
        if m:
            cur = devs.setdefault(int(m.group(1)), {})
            continue
        m = re.search(r'single_mapping origin_block="(\d+)" data_block="(\d+)" time="(\d+)"', line)
        if m:
            o, d, t = map(int, m.groups())
            cur[o] = (d, t)
            continue
        m = re.search(r'range_mapping origin_begin="(\d+)" data_begin="(\d+)" length="(\d+)" '
                      r'time="(\d+)"', line)
        if m:
            o, d, n, t = map(int, m.groups())
            for i in range(n):
                cur[o + i] = (d + i, t)
    return devs, nr_data


def make_data(name):
    path = p(name)
    with open(path, "wb") as f:
        for b in range(NR):
            f.write(pattern(b))
    return path


def read_block(path, b):
    with open(path, "rb") as f:
        f.seek(b * BS)
        return f.read(BS)


def restore(xml_path, meta_path):
    with open(meta_path, "wb") as f:
        f.truncate(4 << 20)
    common.run([common.ref("thin_restore"), "-i", xml_path, "-o", meta_path], check=True)


def verify(label, before_xml, after_xml, data, n, copied=True):
    before, _ = mappings(before_xml)
    after, nr_data = mappings(after_xml)
    F.check(nr_data == n, f"{label}: nr_data_blocks {nr_data}, want {n}")
    F.check(sorted(before) == sorted(after), f"{label}: devices differ")
    moved = {}
    bad = 0
    for dev, maps in before.items():
        am = after.get(dev, {})
        F.check(sorted(maps) == sorted(am), f"{label}: device {dev}: virtual blocks differ")
        for v, (d, t) in maps.items():
            nd, nt = am.get(v, (None, None))
            if nd is None or nd >= n or nt != t or (d < n and nd != d):
                bad += 1
                continue
            if moved.setdefault(d, nd) != nd:  # a shared block must move once
                bad += 1
            if copied and read_block(data, nd) != pattern(d):
                bad += 1
    F.check(bad == 0, f"{label}: {bad} mappings wrong or data not where they point")
    targets = [nd for d, nd in moved.items() if d >= n]
    F.check(len(targets) == len(set(targets)), f"{label}: two blocks moved to one place")


# Origin (dev 1) spread over the whole device, a snapshot (dev 2) sharing most of it and
# owning a few blocks at the top, dev 3 empty. Used: 0-9, 30-39, 60-79, 90-95: 46 of 96.
origin = ([(i, i, 0) for i in range(10)] + [(10 + i, 30 + i, 0) for i in range(10)] +
          [(100 + i, 60 + i, 1) for i in range(20)] + [(500 + i, 90 + i, 1) for i in range(3)])
snap = [(v, d, t) for v, d, t in origin if d % 3] + [(1000 + i, 93 + i, 2) for i in range(3)]
devs = [(1, 0, 0, 2, origin), (2, 1, 2, 2, snap), (3, 2, 3, 3, [])]
src_xml = p("pool.xml")
with open(src_xml, "w") as f:
    f.write(corpus.xml_pool(3, 3, 128, NR, devs))
text = open(src_xml).read()

# XML in, XML out, data copied.
data = make_data("pool.data")
out_xml = p("out.xml")
rc, so, err = common.run([SHRINK, "-i", src_xml, "-o", out_xml, "--data", data, "--nr-blocks", "48"])
F.check(rc == 0 and so == b"" and err == b"", f"xml shrink: exit {rc} {err!r}")
if rc == 0:
    verify("xml", text, open(out_xml).read(), data, 48)
    meta_path = p("out.meta")
    restore(out_xml, meta_path)
    rc, _, err = common.run([common.ref("thin_check"), meta_path])
    F.check(rc == 0, f"xml: thin_check of the result: {rc} {err!r}")
    for b in range(48):  # blocks that were used below N are untouched
        if any(d == b for _, _, m in [(0, 0, origin + snap)] for _, d, _ in m):
            F.check(read_block(data, b) == pattern(b), f"xml: block {b} below N changed")

# Binary in and out.
meta_in, meta_out = p("in.meta"), p("bin_out.meta")
restore(src_xml, meta_in)
with open(meta_out, "wb") as f:
    f.truncate(4 << 20)
data = make_data("bin.data")
rc, _, err = common.run([SHRINK, "--binary", "-i", meta_in, "-o", meta_out, "--data", data,
                         "--nr-blocks", "46"])
F.check(rc == 0, f"binary shrink: exit {rc} {err!r}")
rc, _, err = common.run([common.ref("thin_check"), meta_out])
F.check(rc == 0, f"binary: thin_check of the result: {rc} {err!r}")
rc, after, _ = common.run([common.ref("thin_dump"), meta_out])
verify("binary", text, after.decode(), data, 46)

# --no-copy: the metadata is remapped, the data left alone.
data = make_data("nocopy.data")
rc, _, err = common.run([SHRINK, "-i", src_xml, "-o", p("nocopy.xml"), "--no-copy",
                         "--nr-blocks", "50"])
F.check(rc == 0, f"--no-copy: exit {rc} {err!r}")
verify("no-copy", text, open(p("nocopy.xml")).read(), data, 50, copied=False)
F.check(all(read_block(data, b) == pattern(b) for b in range(NR)), "--no-copy: data changed")

# Refusals: nothing written, data untouched.
data = make_data("refuse.data")
for args, want in ((["--nr-blocks", "45"], "Insufficient space"),
                   (["--nr-blocks", "0"], "at least one"),
                   (["--nr-blocks", "97"], "nothing to shrink"),
                   (["--nr-blocks", "x"], "Couldn't parse")):
    target = p("refused.xml")
    if os.path.exists(target):
        os.remove(target)
    rc, _, err = common.run([SHRINK, "-i", src_xml, "-o", target, "--data", data] + args)
    F.check(rc == 1 and want.encode() in err and not os.path.exists(target),
            f"refusal {args}: exit {rc} {err!r}")
F.check(all(read_block(data, b) == pattern(b) for b in range(NR)), "refusals: data changed")
meta_keep = p("keep.meta")
shutil.copyfile(meta_in, meta_keep)
rc, _, err = common.run([SHRINK, "--binary", "-i", meta_in, "-o", meta_keep, "--data", data,
                         "--nr-blocks", "45"])
F.check(rc == 1 and open(meta_keep, "rb").read() == open(meta_in, "rb").read(),
        f"binary refusal: output touched ({rc} {err!r})")
import meta  # noqa: E402
held = p("held.meta")
with open(held, "wb") as f:
    f.write(meta.with_held_snapshot(open(meta_in, "rb").read(), 1000))
rc, _, err = common.run([SHRINK, "--binary", "-i", held, "-o", meta_keep, "--data", data,
                         "--nr-blocks", "48"])
F.check(rc == 1 and b"metadata snapshot" in err and
        open(meta_keep, "rb").read() == open(meta_in, "rb").read(),
        f"held metadata snapshot: {rc} {err!r}")
os.truncate(data, (NR - 1) * BS)
rc, _, err = common.run([SHRINK, "-i", src_xml, "-o", p("short.xml"), "--data", data,
                         "--nr-blocks", "48"])
F.check(rc == 1 and b"data device size" in err, f"short data device: {rc} {err!r}")
rc, _, err = common.run([SHRINK, "-i", src_xml, "-o", p("x.xml"), "--nr-blocks", "48"])
F.check(rc == 1 and b"--help" in err and b"Usage" not in err, f"no --data and no --no-copy: {rc} {err!r}")
rc, so, _ = common.run([SHRINK, "-h"])
F.check(rc == 0 and b"--nr-blocks" in so, "thin_shrink -h")
F.finish()
