# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_restore refuses what it must not write, in one line, before the output is touched
(issue 13): device times newer than the pool (item 6), a dump of a metadata snapshot without a
data size (item 8, with the fix in the message), a second pass that would have to read the input
again because $TMPDIR cannot take the record of the first (item 5), an attribute the tag does
not have (item 11: a typo such as lenght= is never dropped silently). And a pool of 0 data blocks, as the kernel
formats one (dm_sm_disk_create(tm, 0)), restores and checks clean (item 6)."""
import os

import common
import corpus

F = common.Failures("test_restore_refusals")
W = os.path.join(common.work_dir(), "restore_refusals")
os.makedirs(W, exist_ok=True)
OUT = os.path.join(W, "out.bin")
SENTINEL = b"old metadata, must survive".ljust(4096, b"\0")


def fresh_output():
    with open(OUT, "wb") as f:
        f.write(SENTINEL)
        f.truncate(8 << 20)


def untouched():
    with open(OUT, "rb") as f:
        return f.read(4096) == SENTINEL


def write(name, text):
    p = os.path.join(W, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def refused(name, text, needles, args=(), env=None):
    """thin_restore of `text` exits 1 with one line holding every needle; output untouched."""
    xml = write(name + ".xml", text)
    fresh_output()
    rc, out, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", OUT] + list(args),
                              env=env)
    F.check(rc == 1 and out == b"" and err.count(b"\n") == 1 and
            all(n.encode() in err for n in needles) and untouched(),
            f"{name}: refused in one line naming {needles}, output untouched: rc={rc} {err!r}")
    return err


# Item 6: device times beyond the pool's time (the pool time only grows; a device takes it when
# created or snapshotted).
refused("creation_time", corpus.xml_pool(2, 1, 128, 100, [(1, 0, 3, 2, [])]),
        ["device 1 creation_time 3 is newer than the superblock time 2", "line 2"])
refused("snap_time", corpus.xml_pool(2, 1, 128, 100, [(1, 0, 0, 0, []), (4, 0, 1, 9, [])]),
        ["device 4 snap_time 9 is newer than the superblock time 2", "line 4"])
# Equal times are what the kernel writes at create_snap: accepted.
xml = write("times_equal.xml", corpus.xml_pool(2, 1, 128, 100, [(1, 0, 2, 2, [(0, 0, 2)])]))
fresh_output()
rc, _, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", OUT])
F.check(rc == 0, f"device times equal to the pool's accepted: {rc} {err!r}")

# Item 6: nr_data_blocks="0" is what the kernel formats (the data device is sized at the first
# resume): the data space map then has an empty index btree and an empty reference-count tree,
# both counted in the metadata space map. Ours and 0.9.0's restores of it check clean.
zero = write("zero_data.xml", corpus.xml_pool(1, 1, 128, 0, [(1, 0, 0, 0, [])]))
for who in ("ours", "0.9.0"):
    fresh_output()
    tool = common.ours("thin_restore") if who == "ours" else common.ref("thin_restore")
    rc, _, err = common.run([tool, "-i", zero, "-o", OUT])
    F.check(rc == 0, f"{who} restores nr_data_blocks=0: {rc} {err!r}")
    rc, out, err = common.run([common.ours("thin_check"), OUT])
    F.check(rc == 0 and b"differ" not in err,
            f"thin_check of {who}'s restore with nr_data_blocks=0 is clean: {rc} {err!r}")
    rc, out, _ = common.run([common.ours("thin_dump"), OUT])
    F.check(rc == 0 and b'nr_data_blocks="0"' in out, f"thin_dump of it: {rc} {out!r}")

# The kernel's own: a pool formatted and never resumed (tests/fixtures/kernel/README.md).
fresh = os.path.join(W, "fresh-pool.meta")
common.run(["zstd", "-q", "-d", "-f", os.path.join(os.path.dirname(os.path.abspath(__file__)),
            "..", "fixtures", "kernel", "fresh-pool.meta.zst"), "-o", fresh], check=True)
for who, tool in (("ours", common.ours("thin_check")), ("0.9.0", common.ref("thin_check"))):
    rc, _, err = common.run([tool, fresh])
    F.check(rc == 0, f"{who} thin_check of the kernel's fresh pool (0 data blocks): {rc} {err!r}")
rc, out, _ = common.run([common.ours("thin_dump"), fresh])
F.check(rc == 0 and b'nr_data_blocks="0"' in out, f"thin_dump of the fresh pool: {rc} {out!r}")

# Item 8: a dump taken with -m has nr_data_blocks="0": say why and what to give.
snap_dump = corpus.xml_pool(1, 1, 128, 0, [(1, 0, 0, 0, [(0, 11, 0)])])
refused("snapshot_dump", snap_dump,
        ["mapping beyond end of data device (11 >= 0)", "thin_dump -m", "--nr-data-blocks",
         "dmsetup status"])
xml = write("snapshot_dump.xml", snap_dump)
fresh_output()
rc, _, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", OUT,
                         "--nr-data-blocks", "100"])
F.check(rc == 0, f"the same dump with --nr-data-blocks 100 restores: {rc} {err!r}")
rc, out, _ = common.run([common.ours("thin_dump"), OUT])
F.check(rc == 0 and b'nr_data_blocks="100"' in out and b'data_block="11"' in out,
        f"and dumps with the given size: {out!r}")
# Not a snapshot dump: a plain out-of-range mapping keeps the short message.
err = refused("beyond_end", corpus.xml_pool(1, 1, 128, 10, [(1, 0, 0, 0, [(0, 11, 0)])]),
              ["mapping beyond end of data device (11 >= 10)"])
F.check(b"thin_dump -m" not in err, f"beyond_end: no snapshot hint: {err!r}")

# Item 5: no temporary record, no second read of the input (which the output may have
# overwritten): thin_restore and thin_repair refuse before the output is opened.
tiny = write("tiny.xml", corpus.cases()["tiny"])
not_a_dir = write("not_a_dir", "")
for tmpdir in ("/nonexistent", not_a_dir):
    env = {"TMPDIR": tmpdir}
    refused("tmpdir_restore", corpus.cases()["tiny"],
            [f"Couldn't create a temporary file in '{tmpdir}'", "set TMPDIR"], env=env)
    good = os.path.join(W, "good.bin")
    with open(good, "wb") as f:
        f.truncate(8 << 20)
    common.run([common.ours("thin_restore"), "-i", tiny, "-o", good], check=True)
    fresh_output()
    rc, out, err = common.run([common.ours("thin_repair"), "-i", good, "-o", OUT], env=env)
    F.check(rc == 1 and err.count(b"\n") == 1 and b"set TMPDIR" in err and untouched(),
            f"thin_repair with TMPDIR={tmpdir}: refused, output untouched: {rc} {err!r}")
    # A pipe is read once, into memory: no record needed, no refusal.
    fresh_output()
    with open(tiny, "rb") as f:
        rc, _, err = common.run([common.ours("thin_restore"), "-i", "/dev/stdin", "-o", OUT],
                                stdin=b"" + f.read(), env=env)
    F.check(rc == 0, f"thin_restore from a pipe with TMPDIR={tmpdir}: {rc} {err!r}")
    # An input with <def>s is restored in memory: no record needed either.
    defs = write("defs.xml", """<superblock uuid="" time="0" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="100">
  <def name="a">
    <range_mapping origin_begin="0" data_begin="0" length="5" time="0"/>
  </def>
  <device dev_id="1" mapped_blocks="5" transaction="0" creation_time="0" snap_time="0">
    <ref name="a"/>
  </device>
</superblock>
""")
    fresh_output()
    rc, _, err = common.run([common.ours("thin_restore"), "-i", defs, "-o", OUT], env=env)
    F.check(rc == 0, f"thin_restore of <def>s with TMPDIR={tmpdir}: {rc} {err!r}")

# Item 11: unknown attributes on known elements name the attribute, the tag and the line.
base = corpus.xml_pool(1, 1, 128, 100, [(1, 0, 0, 0, [(0, 0, 0), (1, 1, 0), (2, 2, 0), (9, 5, 1)])])
for name, old, new, needle in [
        ("typo_length", 'length=', 'lenght=', "unknown attribute 'lenght' in tag 'range_mapping'"),
        ("extra_single", 'data_block="5"', 'data_block="5" dta="1"',
         "unknown attribute 'dta' in tag 'single_mapping'"),
        ("extra_device", 'snap_time="0">', 'snap_time="0" snap_tme="1">',
         "unknown attribute 'snap_tme' in tag 'device'"),
        ("extra_superblock", '<superblock ', '<superblock nr_data_block="7" ',
         "unknown attribute 'nr_data_block' in tag 'superblock'")]:
    text = base.replace(old, new, 1)
    assert text != base
    line = next(i + 1 for i, l in enumerate(text.splitlines()) if new in l)
    refused(name, text, [needle, f"line {line},"])
# Everything 0.9.0's and 1.3.3's thin_dump print still parses: every attribute they write.
full = ('<superblock uuid="" time="3" transaction="7" flags="1" version="2" data_block_size="128" '
        'nr_data_blocks="100" metadata_snap="5">\n'
        '  <def name="s">\n    <range_mapping origin_begin="0" data_begin="0" length="2" time="1"/>\n'
        '  </def>\n'
        '  <device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="3">\n'
        '    <ref name="s"/>\n    <single_mapping origin_block="7" data_block="9" time="3"/>\n'
        '  </device>\n</superblock>\n')
xml = write("all_attributes.xml", full)
fresh_output()
rc, _, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", OUT])
F.check(rc == 0 and b"metadata_snap" in err, f"every attribute thin_dump writes: {rc} {err!r}")
for name, xml, _ in common.corpus():
    fresh_output()
    rc, _, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", OUT])
    F.check(rc == 0, f"corpus {name} restores: {rc} {err!r}")
    # 0.9.0's own dump of it, with ours reading it through expat (a pipe) too.
    ref = os.path.join(common.work_dir(), "corpus", name + ".bin")
    rc, dump, _ = common.run([common.ref("thin_dump"), ref])
    fresh_output()
    rc2, _, err = common.run([common.ours("thin_restore"), "-i", "/dev/stdin", "-o", OUT],
                             stdin=dump.replace(b"<superblock ", b"<!-- x -->\n<superblock ", 1))
    F.check(rc == 0 and rc2 == 0, f"0.9.0's dump of {name} restores: {rc} {rc2} {err!r}")

F.finish()
