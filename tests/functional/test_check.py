# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_check: clean metadata passes quietly; a damage corpus built here (every in-use metadata
block of a few small images corrupted in turn, reference counts flipped, files truncated, the
superblock zeroed) gets the right verdict (clean / non-fatal / fatal) with a report naming the
damaged structure, and fails wherever the reference 0.9.0 thin_check fails; --auto-repair and
--clear-needs-check-flag; lvm2's own scenario; the command-line contract.
THINMETA_DAMAGE_ONLY=1 runs only the damage corpus (used by sanitize_check.sh)."""
import os
import shutil
import struct
import subprocess
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meta  # noqa: E402
from common import HERE, Failures, corpus, ours, ref, work_dir  # noqa: E402

F = Failures("test_check")
BS = meta.BS
W = os.path.join(work_dir(), "check")
os.makedirs(W, exist_ok=True)
DAMAGE_ONLY = os.environ.get("THINMETA_DAMAGE_ONLY") == "1"
SANITIZER_MARKS = (b"AddressSanitizer", b"runtime error:", b"LeakSanitizer", b"UndefinedBehavior")


def run(argv, timeout=60):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, b"", b"TIMEOUT"
    return p.returncode, p.stdout, p.stderr


def verdict(tool, path):
    """(verdict, stdout, stderr) where verdict is clean / non-fatal / fatal / crash / hang."""
    rc, out, err = run([tool, path])
    if rc is None:
        return "hang", out, err
    if rc not in (0, 1) or any(m in err for m in SANITIZER_MARKS):
        return "crash", out, err
    if rc == 0:
        return "clean", out, err
    rc2, _, err2 = run([tool, "--ignore-non-fatal-errors", path])
    if rc2 is None:
        return "hang", out, err
    if rc2 not in (0, 1) or any(m in err2 for m in SANITIZER_MARKS):
        return "crash", out, err2
    return ("non-fatal" if rc2 == 0 else "fatal"), out, err


# ---- an independent view of which structure owns each metadata block -------------------------

def all_nodes(img, root, seen_depth=0):
    """[(block, node)] of every node under root (pre-order)."""
    if seen_depth > 12:
        return []
    n = meta.node(img.block(root))
    out = [(root, n)]
    if n["flags"] == 1:
        for v in n["values"]:
            out += all_nodes(img, struct.unpack("<Q", v)[0], seen_depth + 1)
    return out


def owners(img):
    """block -> (owner, kind): owner is 'superblock', 'details', 'top', ('device', id),
    'metadata space map', 'data space map'; kind is 'sb', 'node', 'bitmap', 'index'."""
    sb = img.sb()
    own = {0: ("superblock", "sb")}
    for b, _ in all_nodes(img, sb["details_root"]):
        own[b] = ("details", "node")
    for b, n in all_nodes(img, sb["mapping_root"]):
        own[b] = ("top", "node")
    for dev, root in img.device_roots().items():
        for b, _ in all_nodes(img, root):
            own.setdefault(b, (("device", dev), "node"))
    m = sb["metadata_sm"]
    own[m[2]] = ("metadata space map", "index")
    idx = img.block(m[2])
    for i in range((m[0] + 16319) // 16320):
        own[struct.unpack_from("<Q", idx, 16 + 16 * i)[0]] = ("metadata space map", "bitmap")
    for b, _ in all_nodes(img, m[3]):
        own[b] = ("metadata space map", "node")
    d = sb["data_sm"]
    for b, n in all_nodes(img, d[2]):
        own[b] = ("data space map", "node")
        if n["flags"] == 2:
            for v in n["values"]:
                own[struct.unpack_from("<Q", v, 0)[0]] = ("data space map", "bitmap")
    for b, _ in all_nodes(img, d[3]):
        own[b] = ("data space map", "node")
    return own


def bitmap_counts(img, which):
    """{block: 2-bit count} for the first bitmap of a space map, and that bitmap's block."""
    sb = img.sb()
    if which == "metadata":
        bm = struct.unpack_from("<Q", img.block(sb["metadata_sm"][2]), 16)[0]
        nr = sb["metadata_sm"][0]
    else:
        leaf = meta.node(img.block(img.first_leaf(sb["data_sm"][2])))
        bm = struct.unpack_from("<Q", leaf["values"][0], 0)[0]
        nr = sb["data_sm"][0]
    blk = img.block(bm)
    counts = {}
    for e in range(min(nr, 16320)):
        w = struct.unpack_from("<Q", blk, 16 + 8 * (e // 32))[0]
        p = 2 * (e % 32)
        counts[e] = ((w >> p) & 1) << 1 | ((w >> (p + 1)) & 1)
    return bm, counts


def set_bitmap_entry(blk, e, v):
    off = 16 + 8 * (e // 32)
    w = struct.unpack_from("<Q", blk, off)[0]
    p = 2 * (e % 32)
    w &= ~(3 << p)
    w |= ((v >> 1) & 1) << p | (v & 1) << (p + 1)
    struct.pack_into("<Q", blk, off, w)


def token(owner):
    if owner == "superblock":
        return "superblock"
    if owner == "details":
        return "missing devices"
    if owner == "top":
        return "missing all mappings for devices"
    if isinstance(owner, tuple):
        return f"thin device {owner[1]}"
    return owner  # "... space map"


# ---- the damage corpus ---------------------------------------------------------------------

def node_mutations(n):
    """(name, mutate) pairs that keep the checksum valid (it is recomputed) but break a node."""
    muts = [("wrong self number", lambda b: struct.pack_into("<Q", b, 8, struct.unpack_from("<Q", b, 8)[0] + 1)),
            ("nr_entries > max", lambda b: struct.pack_into("<I", b, 16, n["max"] + 1))]
    if n["nr"] >= 2:
        def swap(b):
            k0, k1 = struct.unpack_from("<QQ", b, 32)
            struct.pack_into("<QQ", b, 32, k1, k0)
        muts.append(("keys out of order", swap))
    if n["flags"] == 1 and n["nr"] >= 1:
        vo = 32 + 8 * n["max"]
        muts.append(("child beyond the device", lambda b: struct.pack_into("<Q", b, vo, 1 << 40)))
        muts.append(("cycle", lambda b: struct.pack_into("<Q", b, vo, struct.unpack_from("<Q", b, 8)[0])))
    return muts


class Patcher:
    """Builds damaged versions of an image as patches: (block, new bytes) or a truncation."""

    def __init__(self, img):
        self.img = img

    def with_block_changed(self, b, mutate, fix_csum=True, kind="node"):
        blk = bytearray(self.img.block(b))
        mutate(blk)
        if fix_csum:
            meta.fix_checksum(blk, kind)
        return ("block", b, bytes(blk))


def damage_cases(name, path):
    """Yields (category, expected verdict, expected report token or None, patch)."""
    data = open(path, "rb").read()
    img = Patcher(meta.Image(data))
    own = owners(img.img)
    for b in sorted(own):
        owner, kind = own[b]
        tok = token(owner)
        yield ("bad checksum", "fatal", tok, img.with_block_changed(
            b, lambda blk: blk.__setitem__(200, blk[200] ^ 0x55), fix_csum=False))
        if kind == "node":
            n = meta.node(img.img.block(b))
            for what, mut in node_mutations(n):
                yield (what, "fatal", tok, img.with_block_changed(b, mut, kind="node"))
        elif kind in ("bitmap", "index"):
            yield ("wrong self number", "fatal", tok, img.with_block_changed(
                b, lambda blk: struct.pack_into("<Q", blk, 8, b + 1), kind=kind))
        else:
            yield ("wrong self number", "fatal", tok, img.with_block_changed(
                b, lambda blk: struct.pack_into("<Q", blk, 8, 1), kind="superblock"))
    # Reference counts up (a leak: non-fatal) and down (fatal), metadata and data.
    for which in ("metadata", "data"):
        bm, counts = bitmap_counts(img.img, which)
        used = [e for e, c in counts.items() if c in (1, 2)][:3]
        free = [e for e, c in counts.items() if c == 0][:1]
        tok = f"{which} reference counts differ"
        for e in used + free:
            if counts[e] < 2:
                yield (f"{which} count up", "non-fatal", tok, img.with_block_changed(
                    bm, lambda blk: set_bitmap_entry(blk, e, counts[e] + 1), kind="bitmap"))
        for e in used:
            yield (f"{which} count down", "fatal", tok, img.with_block_changed(
                bm, lambda blk: set_bitmap_entry(blk, e, counts[e] - 1), kind="bitmap"))
    last = max(own)
    yield ("truncated", "fatal", None, ("truncate", (last // 2 + 1) * BS, None))
    yield ("truncated", "fatal", None, ("truncate", last * BS, None))
    yield ("zeroed superblock", "fatal", "superblock", ("block", 0, bytes(BS)))


def judge(p):
    ours_v = verdict(ours("thin_check"), p)
    return ours_v, ("-" if DAMAGE_ONLY else verdict(ref("thin_check"), p)[0])


def damage_corpus():
    imgs = [(n, b) for n, x, b in corpus() if n in ("tiny", "snapshots", "empty_devices", "needs_check")]
    table = Counter()
    total = 0
    for name, path in imgs:
        p = os.path.join(W, "damaged.bin")
        shutil.copyfile(path, p)
        original = open(path, "rb").read()
        for i, (cat, want, tok, (op, arg, blk)) in enumerate(damage_cases(name, path)):
            total += 1
            if op == "truncate":
                os.truncate(p, arg)
            else:
                with open(p, "r+b") as f:
                    f.seek(arg * BS)
                    f.write(blk)
            got, rgot = judge(p)
            if op == "truncate":
                shutil.copyfile(path, p)
            else:
                with open(p, "r+b") as f:
                    f.seek(arg * BS)
                    f.write(original[arg * BS:(arg + 1) * BS])
            got, _, err = got
            what = f"{name} case {i} ({cat})"
            F.check(got == want, f"{what}: our verdict {got}, expected {want}: {err[:300]!r}")
            if tok:
                F.check(tok.encode() in err, f"{what}: report lacks {tok!r}: {err[:300]!r}")
            if rgot not in ("clean", "-"):
                F.check(got != "clean", f"{what}: the reference fails ({rgot}) but we pass")
            table[(cat, got, rgot)] += 1
    print(f"damage corpus: {total} cases from {len(imgs)} images")
    print(f"{'damage':26} {'ours':10} {'reference 0.9.0':16} cases")
    for (cat, o, r), n in sorted(table.items()):
        print(f"{cat:26} {o:10} {r:16} {n}")


damage_corpus()
if DAMAGE_ONLY:
    F.finish()


# ---- clean metadata ------------------------------------------------------------------------

def kernel_images():
    d = os.path.join(HERE, "..", "kernel", "cache", "out")
    out = []
    if os.path.isdir(d):
        for s in sorted(os.listdir(d)):
            p = os.path.join(d, s, "meta.img")
            if os.path.isfile(p):
                out.append((f"kernel/{s}", p))
    return out


clean = [(n, b) for n, x, b in corpus()] + kernel_images()
for name, path in clean:
    rc, out, err = run([ours("thin_check"), "-q", path])
    F.check(rc == 0 and out == b"" and err == b"", f"{name}: -q rc={rc} out={out!r} err={err[:200]!r}")
    rc, out, err = run([ours("thin_check"), path])
    sm = meta.Image(open(path, "rb").read(BS)).sb()
    tid = struct.unpack_from("<Q", open(path, "rb").read(BS), 48)[0]
    want = f"TRANSACTION_ID={tid}\nMETADATA_FREE_BLOCKS={sm['metadata_sm'][0] - sm['metadata_sm'][1]}\n"
    F.check(rc == 0 and out.decode() == want, f"{name}: stdout {out!r}, expected {want!r}")
    F.check(err.startswith(b"examining superblock\n") and b"checking space map counts\n" in err,
            f"{name}: progress lines {err!r}")
    for opt in ("--skip-mappings", "--super-block-only"):
        rc, _, _ = run([ours("thin_check"), "-q", opt, path])
        F.check(rc == 0, f"{name} {opt}: rc={rc}")

# ---- repairs -------------------------------------------------------------------------------

def copy_of(path, name):
    p = os.path.join(W, name)
    shutil.copyfile(path, p)
    return p


def flags(path):
    return struct.unpack_from("<I", open(path, "rb").read(BS), 4)[0]


imgs = {n: b for n, x, b in corpus()}
for which in ("metadata", "data"):
    for base in ("snapshots", "needs_check", "empty_devices"):
        img = meta.Image(open(imgs[base], "rb").read())
        bm, counts = bitmap_counts(img, which)
        for e in [e for e, c in counts.items() if c == 1][:1] + [e for e, c in counts.items() if c == 0][:1]:
            p = os.path.join(W, "leak.bin")
            open(p, "wb").write(img.with_block_changed(
                bm, lambda blk: set_bitmap_entry(blk, e, counts[e] + 1), kind="bitmap"))
            rc, _, err = run([ours("thin_check"), "--auto-repair", p])
            F.check(rc == 0 and f"fixed {which} leaks".encode() in err,
                    f"{base} {which} leak {e}: --auto-repair rc={rc} {err[-300:]!r}")
            rc, out, err = run([ours("thin_check"), "-q", p])
            F.check(rc == 0 and out == err == b"", f"{base} {which} leak {e}: second check rc={rc} {err!r}")
            F.check(run([ref("thin_check"), "-q", p])[0] == 0, f"{base} {which} leak {e}: reference fails after repair")
            F.check(flags(p) & 1 == 0, f"{base}: --auto-repair left needs_check set")

# A leak on a block whose count lives in the reference-count tree (the shared empty leaf, 200).
img = meta.Image(open(imgs["empty_devices"], "rb").read())
rc_root = img.sb()["metadata_sm"][3]
leaf_b = img.first_leaf(rc_root)
leaf = meta.node(img.block(leaf_b))
if leaf["nr"]:
    vo = 32 + 8 * leaf["max"]
    p = os.path.join(W, "leak3.bin")
    open(p, "wb").write(img.with_block_changed(
        leaf_b, lambda blk: struct.pack_into("<I", blk, vo, struct.unpack_from("<I", blk, vo)[0] + 1)))
    v, _, err = verdict(ours("thin_check"), p)
    F.check(v == "non-fatal", f"overflow leak: verdict {v} {err!r}")
    rc, _, err = run([ours("thin_check"), "--auto-repair", p])
    F.check(rc == 0 and run([ours("thin_check"), "-q", p])[0] == 0 and run([ref("thin_check"), "-q", p])[0] == 0,
            f"overflow leak: repair rc={rc} {err!r}")
else:
    F.check(False, "empty_devices has no reference-count tree entry")

# --clear-needs-check-flag: cleared when nothing fatal, with the lvm.conf option sets.
nc = imgs["needs_check"]
for extra in ([], ["--skip-mappings"], ["--super-block-only"], ["--ignore-non-fatal-errors"]):
    p = copy_of(nc, "flag.bin")
    rc, out, err = run([ours("thin_check"), "-q", "--clear-needs-check-flag"] + extra + [p])
    F.check(rc == 0 and out == err == b"" and flags(p) & 1 == 0, f"clear flag {extra}: rc={rc} flags={flags(p)} {err!r}")
p = copy_of(nc, "flag.bin")
rc, _, err = run([ours("thin_check"), "--clear-needs-check-flag", p])
F.check(b"cleared needs_check flag" in err and rc == 0, f"clear flag message: {err!r}")
rc, _, _ = run([ours("thin_check"), "-q", copy_of(nc, "flag.bin")])
F.check(rc == 0, "needs_check alone is not an error")
# Fatal damage: the flag stays.
img = meta.Image(open(nc, "rb").read())
dev_root = list(img.device_roots().values())[0]
p = os.path.join(W, "flag.bin")
open(p, "wb").write(img.with_block_changed(dev_root, lambda b: b.__setitem__(300, b[300] ^ 1), fix_csum=False))
rc, _, _ = run([ours("thin_check"), "-q", "--clear-needs-check-flag", p])
F.check(rc == 1 and flags(p) & 1 == 1, f"flag cleared despite fatal damage: rc={rc}")
# A leak with the flag: leak repaired, flag cleared.
bm, counts = bitmap_counts(img, "metadata")
e = [e for e, c in counts.items() if c == 0][0]
open(p, "wb").write(img.with_block_changed(bm, lambda blk: set_bitmap_entry(blk, e, 1), kind="bitmap"))
rc, _, _ = run([ours("thin_check"), "-q", "--clear-needs-check-flag", p])
F.check(rc == 0 and flags(p) & 1 == 0 and run([ours("thin_check"), "-q", p])[0] == 0,
        f"leak + flag: rc={rc} flags={flags(p)}")
# Refused combinations.
for bad in (["-m"], ["--override-mapping-root", "5"], ["--override-details-root", "5"]):
    p = copy_of(nc, "flag.bin")
    rc, out, err = run([ours("thin_check"), "--clear-needs-check-flag"] + bad + [p])
    F.check(rc == 1 and flags(p) & 1 == 1 and err, f"--clear-needs-check-flag {bad}: rc={rc}")
for bad in (["--skip-mappings"], ["--super-block-only"], ["--ignore-non-fatal-errors"], ["-m"]):
    rc, out, err = run([ours("thin_check"), "-q", "--auto-repair"] + bad + [copy_of(nc, "flag.bin")])
    F.check(rc == 1 and out == err == b"", f"--auto-repair {bad}: rc={rc} {err!r}")

# ---- lvm2's scenario: one byte at offset 40960 --------------------------------------------
src = None
for n in ("snapshots", "deep", "many_devices", "big_blocks"):
    o = owners(meta.Image(open(imgs[n], "rb").read())).get(10)
    if o and o[0] in ("details", "top") or (o and isinstance(o[0], tuple)):
        src = imgs[n]
        break
F.check(src is not None, "no corpus image has a tree node at block 10")
p = copy_of(src, "lvm2.bin")
with open(p, "r+b") as f:
    f.seek(40960)
    c = f.read(1)
    f.seek(40960)
    f.write(bytes([c[0] ^ 0xFF]))
F.check(run([ours("thin_check"), p])[0] == 1, "lvm2: thin_check passes a corrupted copy")
F.check(run([ours("thin_dump"), p])[0] == 1, "lvm2: thin_dump passes a corrupted copy")
F.check(run([ours("thin_check"), copy_of(src, "lvm2-clean.bin")])[0] == 0, "lvm2: clean copy fails")

# ---- command-line contract ------------------------------------------------------------------
tiny = imgs["tiny"]
rc, out, err = run([ours("thin_check"), "-V"])
F.check(rc == 0 and out.decode().split(".")[0].isdigit() and len(out.decode().strip().split(".")) == 3,
        f"-V: {out!r}")
rc, out, _ = run([ours("thin_check"), "-h"])
F.check(rc == 0 and out.startswith(b"Usage: thin_check"), "-h")
rc, out, err = run([ours("thin_check"), "-q", "", tiny])
F.check(rc == 0 and out == err == b"", f"empty positional: rc={rc} {err!r}")
for args, quiet_err in ((["--bogus", tiny], False), ([], False), (["/nonexistent"], False),
                        ([W], False)):
    rc, out, err = run([ours("thin_check")] + args)
    F.check(rc == 1 and err, f"{args}: rc={rc}, expected 1 with a message")
    rc, out, err = run([ours("thin_check"), "-q"] + args)
    F.check(rc == 1 and (err == b"") != quiet_err, f"-q {args}: rc={rc} err={err!r}")
small = os.path.join(W, "small.bin")
open(small, "wb").write(b"\0" * 100)
rc, out, err = run([ours("thin_check"), "-q", small])
F.check(rc == 1 and b"too small" in err, f"too small with -q: rc={rc} {err!r}")
xmlp = [x for n, x, b in corpus() if n == "tiny"][0]
rc, out, err = run([ours("thin_check"), "-q", xmlp])
F.check(rc == 1 and b"looks like XML" in err, f"XML with -q: rc={rc} {err!r}")
rc, out, err = run([ours("thin_check"), "-m", tiny])
F.check(rc == 1 and b"No metadata snapshot found." in err, f"-m without a snapshot: {err!r}")
rc, out, err = run([ours("thin_check"), "--override-mapping-root", "x", tiny])
F.check(rc == 1, f"bad override value: rc={rc}")

F.finish()
