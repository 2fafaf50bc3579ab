# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_dump against the reference 0.9.0 thin_dump: byte-identical stdout and the same exit
status on the whole corpus, both formats, with and without --dev-id and --skip-mappings; and
clean one-line errors with exit 1 on bad input."""
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Failures, corpus, ours, ref, run, work_dir  # noqa: E402

F = Failures("test_dump")


def same(args, what):
    r1, o1, e1 = run([ours("thin_dump")] + args)
    r2, o2, e2 = run([ref("thin_dump")] + args)
    F.check(r1 == r2 and o1 == o2, f"{what}: ours rc={r1} ({len(o1)} bytes) vs reference rc={r2} "
            f"({len(o2)} bytes) {e1.decode(errors='replace').strip()}")
    return o1


def device_ids(xml_path):
    ids = []
    for line in open(xml_path):
        if "<device " in line:
            ids.append(int(line.split('dev_id="')[1].split('"')[0]))
    return ids


for name, xml, binp in corpus():
    for fmt in ("xml", "human_readable"):
        out = same(["-f", fmt, binp], f"{name} -f {fmt}")
        same(["-f", fmt, "--skip-mappings", binp], f"{name} -f {fmt} --skip-mappings")
    if out is not None:
        # The XML we generated is in thin_dump's normal form: a dump reproduces it.
        F.check(run([ours("thin_dump"), binp])[1] == open(xml, "rb").read(),
                f"{name}: dump differs from the generated XML")
    ids = device_ids(xml)
    if ids:
        pick = [ids[0], ids[len(ids) // 2], ids[-1]]
        same(["--dev-id", str(pick[-1]), binp], f"{name} --dev-id {pick[-1]}")
        same(["--dev-id", str(pick[-1]), "--dev-id", str(pick[0]), binp], f"{name} two --dev-id")
        same(["--dev-id", str(pick[1]), "--skip-mappings", "-f", "human_readable", binp],
             f"{name} --dev-id --skip-mappings human")
    same(["--dev-id", "99999999", binp], f"{name} --dev-id absent")
    # Every I/O engine reads the same bytes (aio: io_uring, libaio: libaio, both opening files
    # with O_DIRECT).
    for engine in ("aio", "libaio", "sync"):
        rc, o, e = run([ours("thin_dump"), binp], env={"THINMETA_IO_ENGINE": engine})
        F.check(rc == 0 and o == open(xml, "rb").read(), f"{name}: engine {engine}: {e!r}")
    same(["-o", os.path.join(work_dir(), "dump-o.xml"), binp], f"{name} -o")

# A kernel-written pool holding a metadata snapshot (examples/, made by tests/kernel): live,
# -m, -m<N> and --metadata-snap=<N> all equal the reference, and -m differs from live.
import subprocess  # noqa: E402
example = os.path.join(work_dir(), "example.meta")
subprocess.run(["zstd", "-q", "-d", "-f", os.path.join(os.path.dirname(__file__), "..", "..",
                "examples", "pool-with-snap.meta.zst"), "-o", example], check=True)
held = struct.unpack_from("<Q", open(example, "rb").read(64), 56)[0]
F.check(held != 0, "the example holds a metadata snapshot")
for fmt in ("xml", "human_readable"):
    live = same(["-f", fmt, example], f"example live {fmt}")
    snap = same(["-f", fmt, "-m", example], f"example -m {fmt}")
    F.check(live != snap, f"example: -m dump differs from the live dump ({fmt})")
    same(["-f", fmt, f"-m{held}", example], f"example -m{held} {fmt}")
    same(["-f", fmt, f"--metadata-snap={held}", example], f"example --metadata-snap={held}")
    same(["-f", fmt, "--dev-id", "4", "-m", example], f"example -m --dev-id 4 {fmt}")
same([f"-m{held + 1}", example], "example -m<wrong block>")
F.check(run([ours("thin_dump"), "-m", example])[1] ==
        open(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "pool-with-snap-m.xml"),
             "rb").read(), "example -m equals the committed reference dump")

# -o writes the same bytes as stdout, through a temporary file renamed at the end.
tiny = [b for n, x, b in corpus() if n == "tiny"][0]
opath = os.path.join(work_dir(), "dump-o.xml")
rc, _, _ = run([ours("thin_dump"), "-o", opath, tiny])
F.check(rc == 0 and open(opath, "rb").read() == run([ref("thin_dump"), tiny])[1], "-o output")
F.check(not [f for f in os.listdir(work_dir()) if f.startswith("dump-o.xml.")], "-o leaves no temp")

# Broken pipe ends quietly.
deep = [b for n, x, b in corpus() if n == "deep"][0]
import subprocess  # noqa: E402
p = subprocess.Popen([ours("thin_dump"), deep], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
p.stdout.read(100)
p.stdout.close()
err = p.stderr.read()
p.wait()
F.check(p.returncode in (0, 1) and err == b"", f"broken pipe: rc={p.returncode} stderr={err!r}")

# Bad input: one line on stderr, exit 1, never a crash.
w = os.path.join(work_dir(), "bad")
os.makedirs(w, exist_ok=True)


def bad(args, what, expect_in=None, ref_too=True):
    if ref_too:  # the reference fails the same way (exit status; its wording is older)
        rc_ref = run([ref("thin_dump")] + args)[0]
        F.check(rc_ref == 1, f"{what}: the reference exits {rc_ref}")
    rc, out, err = run([ours("thin_dump")] + args)
    text = err.decode(errors="replace")
    F.check(rc == 1, f"{what}: exit {rc}, expected 1 ({text.strip()})")
    F.check(out == b"", f"{what}: unexpected stdout (a half dump)")
    lines = [l for l in text.splitlines() if l]
    F.check(len(lines) >= 1 and (expect_in is None or expect_in in lines[0]),
            f"{what}: stderr {text!r} lacks {expect_in!r}")
    return rc


def write(name, data):
    p = os.path.join(w, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def corrupt(name, src, offset, data, fix_sb_csum=False):
    p = os.path.join(w, name)
    shutil.copyfile(src, p)
    with open(p, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return p


bad([], "missing argument", "the following required arguments were not provided: <INPUT>")
bad([os.path.join(w, "nonexistent")], "nonexistent path", "Couldn't find input file")
bad([w], "a directory", "Not a block device or regular file")
bad([write("empty", b"")], "empty file", "too small")
bad([write("onebyte", b"x")], "one-byte file", "too small")
bad([write("zeros", b"\0" * 65536)], "zeroed superblock", "bad checksum in superblock")
bad([tiny.replace(".bin", ".xml")], "XML given", "This looks like XML")
bad(["-m", tiny], "-m without a held snapshot", "no current metadata snap")
bad(["-m7", tiny], "-m<N> without a held snapshot", "no current metadata snap")
bad(["-f", "bogus", tiny], "unknown format", "unknown format")
bad(["--dev-id", "x", tiny], "bad --dev-id", "Couldn't parse")
bad(["--bogus", tiny], "unknown option", "unexpected argument '--bogus' found")
bad(["-o", os.path.join(w, "no", "such", "dir", "out.xml"), tiny], "-o into a missing directory",
    "Couldn't create output file", ref_too=False)  # 0.9.0 exits 0 here: a listed bug
trunc = write("truncated", open(deep, "rb").read()[: 64 * 4096])
bad([trunc], "file shorter than the superblock says", "shorter than the superblock says",
    ref_too=False)
bad([corrupt("badcsum", tiny, 100, b"\xff")], "bad superblock checksum", "bad checksum in superblock")


def sb_fixed(name, mutate):
    """Copy of tiny with the superblock changed by mutate(bytearray) and its checksum fixed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from meta import fix_checksum
    data = bytearray(open(tiny, "rb").read())
    blk = bytearray(data[:4096])
    mutate(blk)
    fix_checksum(blk, "superblock")
    data[:4096] = blk
    return write(name, bytes(data))


bad([sb_fixed("badmagic", lambda b: b.__setitem__(slice(32, 40), b"\1" * 8))], "wrong magic",
    "bad magic in superblock", ref_too=False)  # 0.9.0 does not check the magic
bad([sb_fixed("badversion", lambda b: b.__setitem__(slice(40, 44), struct.pack("<I", 9)))],
    "bad version", "unsupported metadata version", ref_too=False)
held = sb_fixed("heldbogus", lambda b: b.__setitem__(slice(56, 64), struct.pack("<Q", 5)))
bad(["-m", held], "-m with a bogus held block", "bad checksum in metadata snapshot superblock")
bad(["-m9", held], "-m<N> that does not match", "metadata snapshot does not match")

# Damaged btree nodes: every node kind of damage is an error naming the block.
from meta import Image  # noqa: E402
img = Image(open(deep, "rb").read())
dev_root = img.device_roots()[1]
leaf = img.first_leaf(dev_root)
internal = dev_root
cases = [
    ("bad checksum", leaf, lambda n: n.__setitem__(100, n[100] ^ 0xFF), False, "bad checksum"),
    ("wrong self block", leaf, lambda n: n.__setitem__(slice(8, 16), struct.pack("<Q", leaf + 1)),
     True, "bad block number"),
    ("keys out of order", leaf, lambda n: n.__setitem__(slice(32, 40), struct.pack("<Q", 2**60)),
     True, "keys"),
    ("nr_entries > max_entries", leaf, lambda n: n.__setitem__(slice(16, 20), struct.pack("<I", 253)),
     True, "nr_entries"),
    ("child beyond the device", internal,
     lambda n: n.__setitem__(slice(32 + 8 * 252, 40 + 8 * 252), struct.pack("<Q", 10**9)), True,
     "beyond the end"),
    ("cycle", internal,
     lambda n: n.__setitem__(slice(32 + 8 * 252, 40 + 8 * 252), struct.pack("<Q", internal)), True,
     "cycle"),
]
for what, blk, mutate, fix, expect in cases:
    data = img.with_block_changed(blk, mutate, fix_csum=fix)
    p = write("damaged-" + what.replace(" ", "_"), data)
    bad([p], "damaged: " + what, expect, ref_too=False)
    rc_ref = run([ref("thin_dump"), p])[0]
    if what != "cycle":  # 0.9.0 does not notice a node that points back at the root
        F.check(rc_ref != 0, f"damaged: {what}: the reference also fails (rc {rc_ref})")

F.finish()
