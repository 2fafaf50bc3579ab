# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel tier, scenario "repair": damage snapchain's kernel-written metadata on the host, repair
it with our tools, let the kernel load the result (scenarios/repair.sh), check what came back.
Cases: leaf (a zeroed leaf of device 1's mapping tree -> thin_repair; nosnap: the same with the
held metadata snapshot dropped first, so the leaf's mappings are lost), sb (zeroed superblock ->
thin_repair with --data-block-size/--nr-data-blocks/--transaction-id), leak (a free metadata
block counted 1 in its bitmap -> thin_check --auto-repair; only with our thin_check), and the
repair score's corpus (tests/functional/repair_corpus.py) on the same image: every damaged btree
node, the superblock and a space-map block, and superblock fields one by one, each repaired by
our thin_repair, packed 16 MiB apart on one more disk (dm-linear slices in the guest), loaded
and read back: every mapping not stored in the damaged block must come back with its content,
the others must read zero."""
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET

import meta as fmeta
import repair_corpus

K = None  # the ktest module, set by ktest.py
SOURCE = "snapchain"
DEVS = {"leaf": "/dev/vda", "sb": "/dev/vdb", "leak": "/dev/vdc", "nosnap": "/dev/vdd"}


def sh(args, ok=(0,)):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode not in ok:
        raise K.CheckError("%s: exit %d: %s" % (" ".join(args), p.returncode,
                                                (p.stderr or p.stdout).decode().strip()))
    return p


def source_model():
    model = K.Model()
    for line in open(os.path.join(K.outdir_of(SOURCE), "truth")):
        model.apply(line)
    return model


def ranges(vblocks):
    out, vs = [], sorted(vblocks)
    i = 0
    while i < len(vs):
        j = i
        while j + 1 < len(vs) and vs[j + 1] == vs[j] + 1:
            j += 1
        out.append("%d-%d" % (vs[i], vs[j]))
        i = j + 1
    return out


def put(img, b, blk):
    img[b * 4096:(b + 1) * 4096] = blk


def make_leak(img):
    """Count 1 for the last free block of metadata bitmap 0 (checksum recomputed)."""
    nr_blocks, = struct.unpack_from("<Q", img, 192)
    index, = struct.unpack_from("<Q", img, 208)
    bitmap, = struct.unpack_from("<Q", img, index * 4096 + 16)
    blk = bytearray(img[bitmap * 4096:(bitmap + 1) * 4096])
    for e in range(min(nr_blocks, 16320) - 1, 0, -1):
        off, p = 16 + 8 * (e // 32), 2 * (e % 32)
        w, = struct.unpack_from("<Q", blk, off)
        if (w >> p) & 3 == 0:
            struct.pack_into("<Q", blk, off, w | (1 << (p + 1)))  # bit p+1 is the low bit
            fmeta.fix_checksum(blk, "bitmap")
            put(img, bitmap, blk)
            return e
    raise K.CheckError("leak: no free metadata block")


# Superblock fields whose damage the kernel sees repaired (the others give the same output).
SCORE_SB = ("time", "trans_id", "held_root", "data_sm.nr_blocks", "metadata_sm.bitmap_root",
            "data_mapping_root", "device_details_root", "data_block_size")


def score_cases(out, clean, model, repair):
    """Repairs the corpus's cases into score-<id>-repaired.img and packs them into score.img;
    writes score-cases (id max label) and score-readback (id dev ranges)."""
    img = fmeta.Image(clean)
    tools = [os.path.join(K.REF_BIN, "thin_check")] + ([K.ours("thin_check")] if K.ours("thin_check") else [])

    def checks(path):
        return [subprocess.run([t, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
                for t in tools]

    def wanted(label):
        if label.startswith("sb "):
            field, variant = label[3:].rsplit(" ", 1)
            return variant in ("flip", "stale") and field in SCORE_SB
        b = int(label.split()[1])
        if b == 0:
            return True
        try:
            n = fmeta.node(img.block(b))
        except struct.error:
            return False
        return n["flags"] in (1, 2) and n["vsize"] in (8, 24)

    total = sum(len(md.maps) for md in model.devs.values())
    picked, sm_done = [], False
    dmg = os.path.join(out, "score-damaged.img")
    with open(os.path.join(out, "score.img"), "wb") as packed, \
            open(os.path.join(out, "score-readback"), "w") as rb:
        for label, d, lost in repair_corpus.cases(clean, out, checks):
            if not wanted(label):
                if sm_done or label.startswith("sb "):
                    continue
                sm_done = True  # one space-map block: the others repair alike
            cid = re.sub(r"[^A-Za-z0-9]+", "-", label)
            with open(dmg, "wb") as f:
                f.write(d)
            res = os.path.join(out, "score-%s-repaired.img" % cid)
            with open(res, "wb") as f:
                f.truncate(len(clean))
            sh([repair, "-i", dmg, "-o", res])
            packed.write(open(res, "rb").read())
            xml = sh([K.ours("thin_dump"), res]).stdout
            for dev_el in ET.fromstring(xml).findall("device"):
                dev = int(dev_el.get("dev_id"))
                vbs = model.devs[dev].maps.keys() if dev in model.devs else []
                rb.write("%s %d %s\n" % (cid, dev, " ".join(ranges(vbs)) or "0"))
            picked.append((cid, total - len(lost), label))
    with open(os.path.join(out, "score-cases"), "w") as f:
        for cid, mx, label in picked:
            f.write("%s %d %s\n" % (cid, mx, label))
    K.log("  repair score: %d cases packed for the kernel" % len(picked))
    return ["-d", os.path.join(out, "score.img"), "-e", "SCORE_DISK=/dev/vdf",
            "-e", "SCORE_SECTORS=%d" % (len(clean) // 512),
            "-f", os.path.join(out, "score-readback"), "-f", os.path.join(out, "score-list")]


def pre_repair(out, h):
    src = K.outdir_of(SOURCE)
    if not (os.path.exists(os.path.join(src, "meta.img")) and os.path.exists(os.path.join(src, "truth"))):
        K.log("  repair: running scenario %s first for its images" % SOURCE)
        K.run(SOURCE)
    shutil.copy(os.path.join(src, "truth"), os.path.join(out, "source-truth"))
    subprocess.run(["cp", "--sparse=always", os.path.join(src, "data.img"), os.path.join(out, "data.img")], check=True)
    model = source_model()
    clean = open(os.path.join(src, "meta.img"), "rb").read()
    repair = K.ours("thin_repair")
    if repair is None:
        raise K.CheckError("no thin_repair in %s" % K.THINMETA_BIN)
    info = {}

    # leaf: zero the first leaf of device 1's mapping tree
    m = K.Meta(os.path.join(src, "meta.img"))
    root = dict(m.leaves(m.mapping_root))[1]
    flags, keys, vals = m.node(root)
    if flags != 1:
        raise K.CheckError("repair: device 1's mapping tree has one level; need a leaf below a root")
    leaf = vals[0]
    lkeys = m.node(leaf)[1]
    img = bytearray(clean)
    put(img, leaf, bytes(4096))
    open(os.path.join(out, "damaged-leaf.img"), "wb").write(img)
    info["leaf"] = "zeroed leaf block %d of device 1 (%d mappings, vblocks %d..%d)" % (
        leaf, len(lkeys), lkeys[0], lkeys[-1])
    sh([repair, "-i", os.path.join(out, "damaged-leaf.img"), "-o", os.path.join(out, "leaf.img")])
    with open(os.path.join(out, "leaf-range"), "w") as f:
        f.write("%d %d\n" % (lkeys[0], lkeys[-1]))

    # nosnap: the same leaf zeroed in a copy whose superblock no longer points at the held snapshot
    img = bytearray(clean)
    sb = bytearray(img[0:4096])
    struct.pack_into("<Q", sb, 56, 0)
    fmeta.fix_checksum(sb, "superblock")
    put(img, 0, bytes(sb))
    put(img, leaf, bytes(4096))
    open(os.path.join(out, "damaged-nosnap.img"), "wb").write(img)
    info["nosnap"] = "held snapshot dropped, then " + info["leaf"]
    sh([repair, "-i", os.path.join(out, "damaged-nosnap.img"), "-o", os.path.join(out, "nosnap.img")])

    # sb: zero the superblock; thin_repair needs the three overrides, and names what is missing
    img = bytearray(clean)
    put(img, 0, bytes(4096))
    open(os.path.join(out, "damaged-sb.img"), "wb").write(img)
    p = sh([repair, "-i", os.path.join(out, "damaged-sb.img"), "-o", os.path.join(out, "sb.img")], ok=(1,))
    if b"needs to be provided" not in p.stderr or b"nr data blocks" not in p.stderr:
        raise K.CheckError("thin_repair on a zeroed superblock without overrides: message does not name "
                           "the missing fields: %s" % p.stderr.decode().strip())
    sh([repair, "-i", os.path.join(out, "damaged-sb.img"), "-o", os.path.join(out, "sb.img"),
        "--data-block-size", str(model.bs), "--nr-data-blocks", str(model.nblocks),
        "--transaction-id", str(model.trans)])
    info["sb"] = "zeroed superblock"

    cases = ["leaf", "nosnap", "sb"]
    check = K.ours("thin_check")
    if check:
        img = bytearray(clean)
        e = make_leak(img)
        open(os.path.join(out, "leak.img"), "wb").write(img)
        shutil.copy(os.path.join(out, "leak.img"), os.path.join(out, "damaged-leak.img"))
        sh([check, os.path.join(out, "leak.img")], ok=(1,))  # a leak is an error without --ignore-non-fatal
        sh([check, "--auto-repair", os.path.join(out, "leak.img")])
        sh([check, os.path.join(out, "leak.img")])
        info["leak"] = "metadata block %d counted 1 while free; thin_check --auto-repair" % e
        cases.append("leak")

    extra = []
    for c in cases:
        shutil.copy(os.path.join(out, c + ".img"), os.path.join(out, c + "-repaired.img"))
        xml = sh([K.ours("thin_dump"), os.path.join(out, c + ".img")]).stdout
        with open(os.path.join(out, "readback-" + c), "w") as f:
            for d in ET.fromstring(xml).findall("device"):
                dev = int(d.get("dev_id"))
                vbs = model.devs[dev].maps.keys() if dev in model.devs else []
                f.write("%d %s\n" % (dev, " ".join(ranges(vbs)) or "0"))
        extra += ["-f", os.path.join(out, "readback-" + c), "-e", "DEV_%s=%s" % (c, DEVS[c])]
        K.log("  repair case %s: %s" % (c, info[c]))
    with open(os.path.join(out, "cases"), "w") as f:
        f.write(" ".join(cases) + "\n")
    score = score_cases(out, clean, model, repair)
    with open(os.path.join(out, "score-list"), "w") as f:
        f.write(" ".join(line.split()[0] for line in open(os.path.join(out, "score-cases"))) + "\n")
    with open(os.path.join(out, "cases-info"), "w") as f:
        for c in cases:
            f.write("%s %s\n" % (c, info[c]))
    return score + extra + ["-f", os.path.join(out, "cases")]


def check_case(out, c, model, errors, check_trans=True):
    """Returns (mappings recovered, mappings in the truth)."""
    img = os.path.join(out, c + ".img")
    for label, path in (("repaired", os.path.join(out, c + "-repaired.img")), ("after the kernel", img)):
        for tool in filter(None, (os.path.join(K.REF_BIN, "thin_check"), K.ours("thin_check"))):
            p = subprocess.run([tool, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0:
                errors.append("%s: %s %s fails: %s" % (c, label, tool, p.stdout.decode().strip()[:300]))
    xml = K.run_dump(K.ours("thin_dump"), img)
    if xml != K.run_dump(os.path.join(K.REF_BIN, "thin_dump"), img):
        errors.append("%s: our thin_dump differs from the reference on the result" % c)
    root = ET.fromstring(xml)
    if check_trans and int(root.get("transaction")) != model.trans:
        errors.append("%s: transaction %s, truth %d" % (c, root.get("transaction"), model.trans))
    got = {int(d.get("dev_id")): K.xml_mappings(d) for d in root.findall("device")}
    if sorted(got) != sorted(model.devs):
        errors.append("%s: devices %s after repair, truth %s" % (c, sorted(got), sorted(model.devs)))
    have = total = 0
    stale = []
    for dev, md in model.devs.items():
        total += len(md.maps)
        maps = got.get(dev, {})
        extra = sorted(set(maps) - set(md.maps))
        if extra:
            errors.append("%s: dev %d maps %d vblocks the truth does not, e.g. %s" % (c, dev, len(extra), extra[:6]))
        vpath = os.path.join(out, "guest", "verify-%s-%d" % (c, dev))
        if dev not in got:
            continue
        if not os.path.exists(vpath):
            errors.append("%s: dev %d was not read back in the guest" % (c, dev))
            continue
        seen = dict(line.split() for line in open(vpath))
        wrong = []
        for v, (ident, _) in md.maps.items():
            want = str(model.content[ident][0])
            g = seen.get(str(v))
            if v in maps:
                have += 1
                if g != want and g == held_tag(model, dev, v):
                    stale.append((dev, v))  # thin_repair filled the lost leaf from the held snapshot
                elif g != want:
                    wrong.append((v, g, want))
            elif g != "zero":
                wrong.append((v, g, "zero (unmapped after repair)"))
        if wrong:
            errors.append("%s: dev %d: %d blocks read back wrong, e.g. (vblock, got, want) %s"
                          % (c, dev, len(wrong), wrong[:4]))
    return have, total, stale


def held_tag(model, dev, v):
    """The pattern the held metadata snapshot maps at (dev, v), or None."""
    if model.held is None or dev not in model.held[0] or v not in model.held[0][dev].maps:
        return None
    return str(model.content[model.held[0][dev].maps[v][0]][0])


def check_repair(out, h):
    model = K.Model()
    for line in open(os.path.join(out, "source-truth")):
        model.apply(line)
    errors, notes = [], []
    cases = open(os.path.join(out, "cases")).read().split()
    info = dict(line.rstrip("\n").split(" ", 1) for line in open(os.path.join(out, "cases-info")))
    stats = {"mappings": 0}
    for c in cases:
        have, total, stale = check_case(out, c, model, errors)
        if stale:  # never mix the held snapshot's older version into a live device
            errors.append("%s: %d recovered blocks hold the held metadata snapshot's older version, e.g. %s"
                          % (c, len(stale), stale[:3]))
        stats["mappings"] += have
        stats["recovered_" + c] = "%d/%d" % (have, total)
        K.log("  repair case %s (%s): %d of %d mappings recovered and read back" % (c, info[c], have, total))
        if c in ("leaf", "nosnap"):
            a, b = (int(x) for x in open(os.path.join(out, "leaf-range")).read().split())
            got = {int(d.get("dev_id")): set(K.xml_mappings(d)) for d in
                   ET.fromstring(K.run_dump(K.ours("thin_dump"), os.path.join(out, c + ".img"))).findall("device")}
            outside = [(dev, v) for dev, md in model.devs.items() for v in md.maps
                       if not a <= v <= b and v not in got.get(dev, ())]
            if outside:
                errors.append("%s: %d mappings lost outside the zeroed leaf's range %d..%d, e.g. %s"
                              % (c, len(outside), a, b, outside[:6]))
        elif have != total:
            errors.append("%s: only %d of %d mappings recovered: nothing was destroyed" % (c, have, total))
    # the repair score's cases: slice i of score.img is what the kernel left of case i
    packed = open(os.path.join(out, "score.img"), "rb").read()
    scored = [line.rstrip("\n").split(" ", 2) for line in open(os.path.join(out, "score-cases"))]
    size = len(packed) // max(1, len(scored))
    right = maximum = 0
    for i, (cid, mx, label) in enumerate(scored):
        with open(os.path.join(out, cid + ".img"), "wb") as f:
            f.write(packed[i * size:(i + 1) * size])
        shutil.copy(os.path.join(out, "score-%s-repaired.img" % cid), os.path.join(out, cid + "-repaired.img"))
        # a transaction id damaged upwards cannot be told from a real one (kept as it is)
        have, total, stale = check_case(out, cid, model, errors, check_trans=label != "sb trans_id flip")
        if stale:
            errors.append("score %s: %d blocks hold the held snapshot's older version" % (label, len(stale)))
        if have != int(mx):
            errors.append("score %s: %d mappings recovered and read back, maximum %s" % (label, have, mx))
        right += have
        maximum += int(mx)
    stats["score_cases"] = len(scored)
    stats["score_right"] = "%d/%d" % (right, maximum)
    K.log("  repair score in the kernel: %d cases, %d of %d (maximum) mappings recovered and read back"
          % (len(scored), right, maximum))
    if "leak" not in cases:
        notes.append("SKIPPED: leak repair round trip (no thin_check in %s)" % K.THINMETA_BIN)
    stats["devices"] = len(model.devs)
    return stats, errors, notes
