# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_restore: round trip over the corpus (XML -> ours -> our dump == the XML; the reference
thin_check passes; the reference dump equals ours), the same dumps as the reference
thin_restore's output, data and metadata reference counts recomputed by an independent decoder,
any mapping order, the 1.x <def>/<ref> form, overrides, and every rejection with its message and
an untouched output."""
import os
import random
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Failures, corpus, ours, ref, run, work_dir  # noqa: E402
from meta import BS, Image, checksum, node  # noqa: E402

F = Failures("test_restore")
W = os.path.join(work_dir(), "restore")
os.makedirs(W, exist_ok=True)


def blank(name, size):
    p = os.path.join(W, name)
    with open(p, "wb") as f:
        f.truncate(0)
        f.truncate(size)
    return p


def restore(xml, out, *extra):
    return run([ours("thin_restore"), "-i", xml, "-o", out] + list(extra))


def counts_from_sm(img, sm_root, is_metadata):
    """{block: count} for every non-zero entry of a space map (FORMAT.md §7)."""
    nr_blocks, _, bitmap_root, ref_root = sm_root
    if is_metadata:
        ib = img.block(bitmap_root)
        F.check(checksum(ib, "index") == struct.unpack_from("<I", ib)[0], "index block checksum")
        entries = [struct.unpack_from("<QII", ib, 16 + 16 * i)
                   for i in range((nr_blocks + 16319) // 16320)]
    else:
        entries = []
        for _, leaf in img.leaves(bitmap_root):
            entries += [struct.unpack("<QII", v) for v in leaf["values"]]
    overflow = {}
    for _, leaf in img.leaves(ref_root):
        for k, v in zip(leaf["keys"], leaf["values"]):
            overflow[k] = struct.unpack("<I", v)[0]
    out = {}
    for i, (bm, nr_free, nfb) in enumerate(entries):
        blk = img.block(bm)
        F.check(checksum(blk, "bitmap") == struct.unpack_from("<I", blk)[0], f"bitmap {bm} csum")
        words = struct.unpack_from("<510Q", blk, 16)
        used = 0
        first_free = None
        size = min(16320, nr_blocks - i * 16320)
        for e in range(size):
            w = words[e // 32]
            p = 2 * (e % 32)
            c = ((w >> p) & 1) << 1 | ((w >> (p + 1)) & 1)
            if c:
                used += 1
                out[i * 16320 + e] = overflow.get(i * 16320 + e) if c == 3 else c
            elif first_free is None:
                first_free = e
        # kernel semantics: the tail past nr_blocks counts as free (a device grown later)
        F.check(nr_free == 16320 - used, f"bitmap {i}: nr_free {nr_free} != {16320 - used}")
        F.check(nfb == (first_free if first_free is not None else size),
                f"bitmap {i}: none_free_before {nfb}")
    F.check(set(k for k, c in out.items() if c >= 3) == set(overflow), "overflow tree = counts >= 3")
    return out


def check_counts(path, what):
    """Recomputes the data counts (per distinct leaf, FORMAT.md §8.2) and compares them, and
    nr_allocated, with what the image's data space map says."""
    img = Image(open(path, "rb").read())
    sb = img.sb()
    expected = {}
    seen = set()
    for dev, root in img.device_roots().items():
        for addr, leaf in img.leaves(root):
            if addr in seen:
                continue
            seen.add(addr)
            for v in leaf["values"]:
                d = struct.unpack("<Q", v)[0] >> 24
                expected[d] = expected.get(d, 0) + 1
    got = counts_from_sm(img, sb["data_sm"], False)
    F.check(got == expected, f"{what}: data counts differ from the mappings "
            f"({len(got)} vs {len(expected)} blocks)")
    F.check(sb["data_sm"][1] == len(expected), f"{what}: data nr_allocated")
    meta = counts_from_sm(img, sb["metadata_sm"], True)
    F.check(sb["metadata_sm"][1] == len(meta), f"{what}: metadata nr_allocated")


# 1. Round trip and differential over the corpus.
for name, xml, refbin in corpus():
    out = blank(name + ".bin", os.path.getsize(refbin))
    rc, _, err = restore(xml, out)
    F.check(rc == 0 and err == b"", f"{name}: restore rc={rc} {err!r}")
    mine = run([ours("thin_dump"), out])[1]
    F.check(mine == open(xml, "rb").read(), f"{name}: round trip differs")
    rc, o, e = run([ref("thin_check"), out])
    F.check(rc == 0, f"{name}: reference thin_check fails on our output: {e!r}")
    F.check(run([ref("thin_dump"), out])[1] == mine, f"{name}: reference dump of ours differs")
    F.check(run([ours("thin_dump"), refbin])[1] == mine,
            f"{name}: reference restore's output dumps differently")
    check_counts(out, name)
    sb = Image(open(out, "rb").read()).sb()
    F.check(sb["held_root"] == 0, f"{name}: held_root")
    raw = open(out, "rb").read(BS)
    F.check(struct.unpack_from("<I", raw, 40)[0] == 2 and raw[16:32] == b"\0" * 16,
            f"{name}: version 2, uuid zeros")

# 2. Any mapping order: every mapping as a single, shuffled, same result.
snap_xml = [x for n, x, b in corpus() if n == "snapshots"][0]
text = open(snap_xml).read()
lines = text.splitlines()
shuffled = []
rng = random.Random(4)
block = []
for line in lines:
    m = re.search(r'origin_begin="(\d+)" data_begin="(\d+)" length="(\d+)" time="(\d+)"', line)
    if m:
        o, d, n, t = map(int, m.groups())
        block += [f'    <single_mapping origin_block="{o + i}" data_block="{d + i}" time="{t}"/>'
                  for i in range(n)]
    elif "single_mapping" in line:
        block.append(line)
    else:
        if block:
            rng.shuffle(block)
            shuffled += block
            block = []
        shuffled.append(line)
sx = os.path.join(W, "shuffled.xml")
open(sx, "w").write("\n".join(shuffled) + "\n")
out = blank("shuffled.bin", 8 << 20)
rc, _, err = restore(sx, out)
F.check(rc == 0 and run([ours("thin_dump"), out])[1] == open(snap_xml, "rb").read(),
        f"shuffled mappings: rc={rc} {err!r}")

# 3. The 1.x shared-subtree form: defs linked into several devices, counted once per leaf.
def_maps = lambda base, n, d: "".join(
    f'    <single_mapping origin_block="{base + i}" data_block="{d + i * 2}" time="1"/>\n'
    for i in range(n))
shared_xml = ('<superblock uuid="" time="2" transaction="3" flags="0" version="2" '
              'data_block_size="128" nr_data_blocks="100000">\n'
              '  <def name="big">\n' + def_maps(1000, 1000, 0) + '  </def>\n'
              '  <def name="small">\n' + def_maps(5000, 10, 5000) + '  </def>\n')
plain = []
for dev in range(1, 6):
    body = ""
    if dev != 5:
        body += def_maps(0, dev * 3, 20000 + dev * 100)
    shared_xml += (f'  <device dev_id="{dev}" mapped_blocks="0" transaction="1" '
                   f'creation_time="0" snap_time="1">\n' + body + '    <ref name="big"/>\n' +
                   ('    <ref name="small"/>\n' if dev % 2 else '') +
                   (def_maps(9000, dev * 50, 30000 + dev * 1000) if dev < 4 else '') +
                   '  </device>\n')
    exp = body + def_maps(1000, 1000, 0) + (def_maps(5000, 10, 5000) if dev % 2 else '') + \
        (def_maps(9000, dev * 50, 30000 + dev * 1000) if dev < 4 else '')
    plain.append((dev, exp))
shared_xml += "</superblock>\n"
plain_xml = ('<superblock uuid="" time="2" transaction="3" flags="0" version="2" '
             'data_block_size="128" nr_data_blocks="100000">\n' +
             "".join(f'  <device dev_id="{d}" mapped_blocks="0" transaction="1" '
                     f'creation_time="0" snap_time="1">\n{e}  </device>\n' for d, e in plain) +
             "</superblock>\n")
px, sxml = os.path.join(W, "plain.xml"), os.path.join(W, "shared.xml")
open(px, "w").write(plain_xml)
open(sxml, "w").write(shared_xml)
p_out, s_out = blank("plain.bin", 4 << 20), blank("shared.bin", 4 << 20)
F.check(restore(px, p_out)[0] == 0 and restore(sxml, s_out)[0] == 0, "restore of def/ref")
F.check(run([ours("thin_dump"), s_out])[1] == run([ours("thin_dump"), p_out])[1],
        "def/ref dumps like the expanded XML")
rc, _, e = run([ref("thin_check"), s_out])
F.check(rc == 0, f"def/ref: reference thin_check: {e!r}")
check_counts(s_out, "def/ref")
img = Image(open(s_out, "rb").read())
leaves = [a for r in img.device_roots().values() for a, _ in img.leaves(r)]
F.check(len(leaves) > len(set(leaves)), "def/ref: leaves are shared")
F.check(os.path.getsize(s_out) and img.sb()["data_sm"][1] < sum(
    1 for _ in re.finditer("single_mapping", plain_xml)), "def/ref: shared data counted once")

# 4. Overrides, metadata_snap warning, the 4,161,600-block cap.
tiny_xml = [x for n, x, b in corpus() if n == "tiny"][0]
out = blank("override.bin", 1 << 20)
rc, _, err = restore(tiny_xml, out, "--transaction-id", "77", "--data-block-size", "256",
                     "--nr-data-blocks", "5000")
first = run([ours("thin_dump"), out])[1].split(b"\n")[0]
F.check(rc == 0 and b'transaction="77"' in first and b'data_block_size="256"' in first and
        b'nr_data_blocks="5000"' in first, f"overrides: {first!r} {err!r}")
snap = os.path.join(W, "metasnap.xml")
open(snap, "w").write(open(tiny_xml).read().replace('version="2"', 'version="2" metadata_snap="9"'))
rc, _, err = restore(snap, out)
F.check(rc == 0 and b"metadata_snap" in err and Image(open(out, "rb").read()).sb()["held_root"] == 0,
        f"metadata_snap ignored with a warning: {err!r}")
big = blank("big.bin", 17 << 30)
rc, _, err = restore(tiny_xml, big)
F.check(rc == 0 and b"truncating metadata device to 4161600 4k blocks" in err,
        f"17 GiB output: {err!r}")
with open(big, "rb") as f:
    sbb = f.read(BS)
F.check(struct.unpack_from("<Q", sbb, 344)[0] == 4161600 and
        struct.unpack_from("<Q", sbb, 192)[0] == 4161600, "capped at 4161600 blocks")
F.check(run([ref("thin_check"), big])[0] == 0, "reference thin_check on the capped output")
os.unlink(big)

# 5. Rejections: the message (with line and column for the XML) and an untouched output.
victim_src = [b for n, x, b in corpus() if n == "tiny"][0]
victim = os.path.join(W, "victim.bin")
original = open(victim_src, "rb").read()


def rejected(xml_text, expect, what, args=None, out=None, pos=True):
    x = os.path.join(W, "bad.xml")
    if xml_text is not None:
        open(x, "w").write(xml_text)
    target = out or victim
    if out is None:
        open(victim, "wb").write(original)
    argv = args if args is not None else ["-i", x, "-o", target]
    rc, o, e = run([ours("thin_restore")] + argv)
    err = e.decode(errors="replace")
    F.check(rc == 1, f"{what}: exit {rc} ({err.strip()})")
    F.check(expect in err, f"{what}: stderr {err!r} lacks {expect!r}")
    if pos:
        F.check(re.search(r"line \d+, column \d+", err) is not None, f"{what}: no position: {err!r}")
    if out is None:
        F.check(open(victim, "rb").read() == original, f"{what}: output was modified")


SB = ('<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" '
      'nr_data_blocks="100">\n')
DEV = '  <device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">\n'
END = '  </device>\n</superblock>\n'
m = lambda o, d, t=0: f'    <single_mapping origin_block="{o}" data_block="{d}" time="{t}"/>\n'
r = lambda o, d, n, t=0: f'    <range_mapping origin_begin="{o}" data_begin="{d}" length="{n}" time="{t}"/>\n'

rejected(SB + DEV + m(0, 1) + "  </device>\n", "no element found", "truncated XML")
rejected(SB + DEV + "<<oops\n" + END, "not well-formed", "malformed XML")
rejected(SB + DEV + '    <bogus/>\n' + END, "unknown tag type 'bogus'", "unknown element")
rejected(SB.replace(' nr_data_blocks="100"', '') + END, "could not find attribute: nr_data_blocks",
         "missing superblock attribute")
rejected(SB + DEV + '    <single_mapping origin_block="1" time="0"/>\n' + END,
         "could not find attribute: data_block", "missing mapping attribute")
rejected(SB + DEV + m("x1", 1) + END, "origin_block is not a number", "non-numeric attribute")
rejected(SB + DEV + m("-1", 1) + END, "is not a number", "negative number")
rejected(SB + DEV + m(99999999999999999999, 1) + END, "out of range", "number too large")
rejected(SB + DEV + m(5, 1) + m(5, 2) + END, "overlapping mapping of virtual block 5",
         "duplicate mapping")
rejected(SB + DEV + r(0, 1, 10) + m(5, 20) + END, "overlapping mapping of virtual block 5",
         "overlapping mapping")
rejected(SB + DEV + m(50, 1) + r(0, 10, 10) + m(5, 20) + END,
         "overlapping mapping of virtual block 5", "overlap found after sorting")
rejected(SB + DEV + "  </device>\n" + DEV + END, "Device already exists", "duplicate dev_id")
rejected(SB + DEV + m(0, 100) + END, "mapping beyond end of data device (100 >= 100)",
         "data block >= nr_data_blocks")
rejected(SB + DEV + r(0, 95, 10) + END, "mapping beyond end of data device", "range past the end")
for dbs in ("100", "192", "0", "4194304", "64"):
    rejected(SB.replace('data_block_size="128"', f'data_block_size="{dbs}"') + END,
             f"invalid data block size {dbs}", f"data_block_size {dbs}")
rejected(SB + DEV + m(0, 1, 1 << 24) + END, "time 16777216 in a mapping is too large",
         "time >= 2^24")
rejected(SB + DEV + '    <ref name="nope"/>\n' + END, "Couldn't find sub tree 'nope'", "unknown ref")
rejected(SB + '  <ref name="x"/>\n</superblock>\n', "not allowed", "ref outside a device")
rejected(SB + DEV + '  <device dev_id="2" mapped_blocks="0" transaction="0" creation_time="0" '
         'snap_time="0"/>\n' + END, "not allowed", "nested device")
rejected(DEV + "  </device>\n", "not allowed as the document element", "no superblock")
rejected(SB + "".join(DEV.replace('dev_id="1"', f'dev_id="{i}"') + "  </device>\n"
                      for i in range(30)) + "</superblock>\n",
         "Output file too small: the metadata needs", "metadata larger than output",
         out=blank("small.bin", 40960), pos=False)
# The 'deep' case needs hundreds of blocks: a 64 KiB output is refused before any write.
deep_xml = [x for n, x, b in corpus() if n == "deep"][0]
small = os.path.join(W, "small2.bin")
open(small, "wb").write(b"\xab" * 65536)
rejected(None, "Output file too small: the metadata needs", "deep into 64 KiB", pos=False,
         args=["-i", deep_xml, "-o", small], out=small)
F.check(open(small, "rb").read() == b"\xab" * 65536, "deep into 64 KiB: output untouched")

# Command line and file checks (REFERENCE-TOOLS.md §1.3 order).
missing = os.path.join(W, "does-not-exist.bin")
rejected(None, "the following required arguments were not provided: --input <FILE>", "no -i", args=["-o", victim], pos=False)
rejected(None, "the following required arguments were not provided: --output <FILE>", "no -o", args=["-i", tiny_xml], pos=False)
rejected(None, f"Couldn't find output file '{missing}'", "missing output",
         args=["-i", tiny_xml, "-o", missing], pos=False)
F.check(not os.path.exists(missing), "a missing output is not created")
rejected(None, "Output file too small.", "output < 40960 bytes",
         args=["-i", tiny_xml, "-o", blank("tiny-out.bin", 4096)], pos=False)
rejected(None, "Not a block device or regular file", "output is a directory",
         args=["-i", tiny_xml, "-o", W], pos=False)
rejected(None, "Couldn't find input file", "missing input",
         args=["-i", missing, "-o", victim], pos=False)
rejected(None, "Couldn't parse transaction id", "bad --transaction-id",
         args=["-i", tiny_xml, "-o", victim, "--transaction-id", "x"], pos=False)
rejected(None, "unexpected argument '--bogus' found", "unknown option",
         args=["-i", tiny_xml, "-o", victim, "--bogus"], pos=False)
rc, o, _ = run([ours("thin_restore"), "-h"])
F.check(rc == 0 and o.startswith(b"Usage: thin_restore"), "-h")

F.finish()
