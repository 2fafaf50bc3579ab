# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel tier, scenario "lvm2": Debian's lvm2 drives thin pools in the guest with our tools
behind logging wrappers (scenarios/lvm2.sh). Boot 1 (PHASE=create) is run by the PRE hook,
which then damages the PV image between the boots: needs_check set in pool1's superblock
(checksum fixed), a mapping leaf of big2 (pool2) zeroed. Boot 2 (PHASE=repair) is ktest's own
run. The CHECK reads the wrappers' log (which tool ran with what arguments, and its exit
status, per step), the read-back files, and checks the final metadata of both pools with the
reference and our thin_check and our thin_dump against the reference's."""
import os
import re
import shutil
import struct
import subprocess

import meta as fmeta

K = None  # the ktest module, set by ktest.py
BS = 4096


def guest_cmd(out, h, phase, gout):
    cmd = [os.path.join(K.HERE, "run-guest.sh"), "-o", gout, "-t", h["TIMEOUT"],
           "-c", os.path.join(K.CACHE, "lvm2.cpio"), "-e", "PHASE=" + phase]
    for dname, _ in h["DISKS"]:
        cmd += ["-d", os.path.join(out, dname + ".img")]
    for t in h["TOOLS"].split():
        if not K.ours(t):
            raise K.CheckError("the lvm2 scenario needs our %s (not in %s)" % (t, K.THINMETA_BIN))
        cmd += ["-b", K.ours(t)]
    if os.environ.get("LVM2_FALSE_TOOL"):
        cmd += ["-e", "LVM2_FALSE_TOOL=" + os.environ["LVM2_FALSE_TOOL"]]
        K.log("  lvm2: LVM2_FALSE_TOOL=%s: lvm2 gets /bin/false for it" % os.environ["LVM2_FALSE_TOOL"])
    return cmd


def layout(gout):
    """{lv name: [(first byte, length in bytes)...]} on the PV image, from the guest's lvs."""
    pe_start = int(open(os.path.join(gout, "pe_start")).read().split()[0]) * 512
    ext = int(open(os.path.join(gout, "extent_size")).read().split()[0]) * 512
    lvs = {}
    for line in open(os.path.join(gout, "segments")):
        w = line.split()
        if len(w) < 2:
            continue
        name = w[0].strip("[]")
        for r in w[1:]:
            m = re.fullmatch(r"/dev/vda:(\d+)-(\d+)", r)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                lvs.setdefault(name, []).append((pe_start + a * ext, (b - a + 1) * ext))
    return lvs


def read_lv(img, segs):
    with open(img, "rb") as f:
        data = b""
        for off, n in segs:
            f.seek(off)
            data += f.read(n)
    return data


def write_block(img, segs, b, blk):
    """Write metadata block b of an LV (its first segment must hold it)."""
    off, n = segs[0]
    if (b + 1) * BS > n:
        raise K.CheckError("lvm2: block %d beyond the first segment" % b)
    with open(img, "r+b") as f:
        f.seek(off + b * BS)
        f.write(blk)


def pre_lvm2(out, h):
    gout = os.path.join(out, "guest-create")
    script = os.path.join(out, "guest-script.sh")
    with open(script, "w") as f:
        f.write(open(os.path.join(K.HERE, "guest", "lib.sh")).read())
        f.write("\n# ---- scenario lvm2 ----\n")
        f.write(open(K.scenario_path("lvm2")).read())
    K.log("  lvm2: boot 1 (PHASE=create)")
    p = subprocess.run(guest_cmd(out, h, "create", gout) + [script])
    if p.returncode != 0:
        err = open(os.path.join(gout, "stderr")).read() if os.path.exists(os.path.join(gout, "stderr")) else ""
        raise K.CheckError("lvm2: boot 1 failed with status %d; guest stderr tail:\n%s"
                           % (p.returncode, "\n".join(err.splitlines()[-15:])))
    img = os.path.join(out, "pv.img")
    lvs = layout(gout)
    for lv in ("pool1_tmeta", "pool2_tmeta"):
        if lv not in lvs:
            raise K.CheckError("lvm2: no %s in the guest's lvs: %s" % (lv, sorted(lvs)))

    # pool1: needs_check set in the superblock (flags bit 0), checksum fixed
    sb = bytearray(read_lv(img, lvs["pool1_tmeta"])[:BS])
    flags, = struct.unpack_from("<I", sb, 4)
    struct.pack_into("<I", sb, 4, flags | 1)
    fmeta.fix_checksum(sb, "superblock")
    write_block(img, lvs["pool1_tmeta"], 0, bytes(sb))
    meta1 = os.path.join(out, "pool1-needs-check.img")
    open(meta1, "wb").write(read_lv(img, lvs["pool1_tmeta"]))
    dump = K.run_dump(os.path.join(K.REF_BIN, "thin_dump"), meta1)
    if b'flags="1"' not in dump.split(b"\n")[0]:
        raise K.CheckError("lvm2: needs_check not set in pool1's superblock: %s" % dump.split(b"\n")[0])

    # pool2: zero the first leaf of big2's mapping tree (device id 1, the first thin LV of pool2)
    m2 = fmeta.Image(read_lv(img, lvs["pool2_tmeta"]))
    roots = m2.device_roots()
    if 1 not in roots:
        raise K.CheckError("lvm2: pool2 has no device 1: %s" % sorted(roots))
    leaves = m2.leaves(roots[1])
    if len(leaves) < 2:
        raise K.CheckError("lvm2: big2's mapping tree has one leaf; need a leaf below a root")
    leaf, node = leaves[0]
    write_block(img, lvs["pool2_tmeta"], leaf, bytes(BS))
    with open(os.path.join(out, "leaf-range"), "w") as f:
        f.write("%d %d\n" % (node["keys"][0], node["keys"][-1]))
    K.log("  lvm2: needs_check set in pool1's superblock; pool2: big2's leaf block %d zeroed "
          "(%d mappings, vblocks %d..%d)" % (leaf, node["nr"], node["keys"][0], node["keys"][-1]))
    return ["-c", os.path.join(K.CACHE, "lvm2.cpio"), "-e", "PHASE=repair"] + \
        (["-e", "LVM2_FALSE_TOOL=" + os.environ["LVM2_FALSE_TOOL"]] if os.environ.get("LVM2_FALSE_TOOL") else [])


def tool_calls(path):
    """{step: [(tool, args, exit)]} from a wrappers' log."""
    steps, cur, pending = {}, "start", {}
    for line in open(path):
        w = line.rstrip("\n").split(" ", 2)
        if w[0] == "mark":
            cur = " ".join(w[1:])
            steps.setdefault(cur, [])
        elif w[0] == "call":
            pending[w[1]] = w[2] if len(w) > 2 else ""
        elif w[0] == "exit":
            steps.setdefault(cur, []).append((w[1], pending.pop(w[1], "?"), int(w[2])))
    return steps


def check_lvm2(out, h):
    errors, notes = [], []
    gc, gr = os.path.join(out, "guest-create"), os.path.join(out, "guest")
    steps = tool_calls(os.path.join(gc, "tools.log"))
    steps.update(tool_calls(os.path.join(gr, "tools.log")))

    def calls(step, tool):
        return [(a, rc) for t, a, rc in steps.get(step, []) if t == tool]

    def need(step, tool, pred, what):
        c = calls(step, tool)
        if not any(pred(a, rc) for a, rc in c):
            errors.append("lvm2 step %s: %s (%s calls: %s)" % (step, what, tool, c[:4]))

    meta_arg = lambda a, pool: a.split()[-1:] == ["/dev/mapper/vg-%s_tmeta" % pool]
    for pool in ("pool1", "pool2"):
        need("deactivate-activate", "thin_check",
             lambda a, rc, p=pool: rc == 0 and meta_arg(a, p) and "--clear-needs-check-flag" in a.split(),
             "our thin_check -q --clear-needs-check-flag ran on %s's metadata at activation, exit 0" % pool)
    need("skip-mappings", "thin_check", lambda a, rc: rc == 0 and "--skip-mappings" in a.split(),
         "thin_check --skip-mappings ran (thin_check_options), exit 0")
    if any("--skip-mappings" in a.split() for a, _ in calls("deactivate-activate", "thin_check")):
        errors.append("lvm2: --skip-mappings passed without thin_check_options asking for it")
    need("needs-check", "thin_check", lambda a, rc: rc == 0 and meta_arg(a, "pool1"),
         "our thin_check cleared needs_check on pool1 at activation (exit 0)")
    need("damaged", "thin_check", lambda a, rc: rc == 1 and meta_arg(a, "pool2"),
         "our thin_check refused pool2's damaged metadata (exit 1)")
    need("repair", "thin_repair", lambda a, rc: rc == 0 and "-i" in a.split() and "-o" in a.split(),
         "our thin_repair -i TMETA -o PMSPARE ran, exit 0")
    need("repair", "thin_dump", lambda a, rc: rc == 0, "our thin_dump ran after the repair, exit 0")
    need("extend", "thin_check", lambda a, rc: rc == 0 and meta_arg(a, "pool2"),
         "our thin_check passed the extended pool2 at activation")
    for step in sorted(steps):
        for t, a, rc in steps[step]:
            if rc not in (0, 1):
                errors.append("lvm2 step %s: %s %s exited %d (only 0 or 1)" % (step, t, a, rc))

    # read-backs of big2 (tag 21 at 0-699): the zeroed leaf's range holds its content or zeroes
    a, b = (int(x) for x in open(os.path.join(out, "leaf-range")).read().split())
    lost = 0
    for which in ("repaired", "final"):
        p = os.path.join(gr, "verify-big2-" + which)
        if not os.path.exists(p):
            errors.append("lvm2: big2 was not read back (%s)" % which)
            continue
        got = dict(line.split() for line in open(p))
        bad = [(v, got.get(str(v))) for v in range(700)
               if got.get(str(v)) != "21" and not (a <= v <= b and got.get(str(v)) == "zero")]
        if bad:
            errors.append("lvm2: big2 %s: %d blocks read back wrong (vblock, got) e.g. %s" % (which, len(bad), bad[:5]))
        lost = sum(1 for v in range(700) if got.get(str(v)) == "zero")

    # the final metadata of both pools: reference and our thin_check pass, thin_dumps equal
    img = os.path.join(out, "pv.img")
    lvs = layout(gr)
    stats = {"devices": 5, "mappings": 0}
    for pool in ("pool1", "pool2"):
        meta = os.path.join(out, pool + "-final.img")
        open(meta, "wb").write(read_lv(img, lvs[pool + "_tmeta"]))
        for tool in (os.path.join(K.REF_BIN, "thin_check"), K.ours("thin_check")):
            p = subprocess.run([tool, meta], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0:
                errors.append("lvm2: %s on %s's final metadata: %s" % (tool, pool, p.stdout.decode().strip()[:300]))
        try:
            ref = K.run_dump(os.path.join(K.REF_BIN, "thin_dump"), meta)
            if ref != K.run_dump(K.ours("thin_dump"), meta):
                errors.append("lvm2: our thin_dump differs from the reference on %s's final metadata" % pool)
            if pool == "pool1" and b'flags="0"' not in ref.split(b"\n")[0]:
                errors.append("lvm2: pool1's needs_check flag still set at the end")
            stats["mappings"] += ref.count(b"<single_mapping") + sum(
                int(x) for x in re.findall(rb'<range_mapping [^>]*length="(\d+)"', ref))
        except K.CheckError as e:
            errors.append(str(e))
        stats[pool + "_meta_bytes"] = sum(n for _, n in lvs[pool + "_tmeta"])
    if stats.get("pool2_meta_bytes", 0) < 8 << 20:
        errors.append("lvm2: pool2's metadata LV was not extended (%d bytes)" % stats.get("pool2_meta_bytes", 0))
    stats["big2_leaf_lost"] = "%d of %d" % (lost, b - a + 1)
    lvm_log = open(os.path.join(gr, "lvm2.log")).read() if os.path.exists(os.path.join(gr, "lvm2.log")) else ""
    stats["lvm2_commands"] = lvm_log.count("\nexit ") + open(os.path.join(gc, "lvm2.log")).read().count("\nexit ")
    K.log("  lvm2: steps %s; big2's zeroed leaf (vblocks %d..%d): %s blocks read zero after the repair, "
          "the rest their content" % (" ".join(s for s in steps if s != "start"), a, b, lost))
    shutil.copy(os.path.join(gc, "lvm2.log"), os.path.join(out, "lvm2-create.log"))
    if lvm_log:
        shutil.copy(os.path.join(gr, "lvm2.log"), os.path.join(out, "lvm2-repair.log"))
    return stats, errors, notes
