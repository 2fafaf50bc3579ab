#!/usr/bin/env python3
"""Kernel test tier driver: run a scenario in the guest, then check the metadata it left.

usage:
  ktest.py run SCENARIO          run tests/kernel/scenarios/SCENARIO.sh in the guest, then check
  ktest.py check SCENARIO        only (re)check cache/out/SCENARIO (images + truth kept there)

Environment:
  THIN_DUMP     dump tool checked against the ground truth (default /usr/sbin/thin_dump)
  THINMETA_BIN  our build (default /work/main/build/bin): its thin_dump must equal the reference
                byte for byte; its thin_dump is also the one run online inside the guest
  THIN_RESTORE  restore tool for the "restore" scenario (default /usr/sbin/thin_restore)
  REF_BIN       reference tools dir (default /usr/sbin)
  KTEST_CACHE   cache dir (default tests/kernel/cache)

A scenario file starts with comment headers:
  # DISKS: name=SIZE ...     raw sparse images attached in order (/dev/vda, /dev/vdb, ...);
                             the disk named "meta" is the pool metadata, "data" the data device
  # TIMEOUT: seconds         # ONLINE: 1 (ship a thin_dump into the guest as $ONLINE_DUMP)
  # EXPECT: key>=N ...       assertions on the summary numbers (mappings, depth, meta_blocks,
                             meta_nr_blocks, held)
  # PRE: name                host-side preparation hook (see PRE_HOOKS)
Results: cache/out/SCENARIO/{meta.img,data.img,...,truth,guest/,summary.json}
"""
import copy
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for krepair/meta
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "functional"))

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("KTEST_CACHE", os.path.join(HERE, "cache"))
REF_BIN = os.environ.get("REF_BIN", "/usr/sbin")
THIN_DUMP = os.environ.get("THIN_DUMP", os.path.join(REF_BIN, "thin_dump"))
THINMETA_BIN = os.environ.get("THINMETA_BIN", "/work/main/build/bin")
ONLINE_TOOLS = ["thin_dump", "thin_ls", "thin_delta", "thin_check"]  # shipped for ONLINE: 1
THIN_RESTORE = os.environ.get("THIN_RESTORE", os.path.join(REF_BIN, "thin_restore"))
BLKWRITE = os.path.join(CACHE, "bin", "blkwrite")
BLOCK = 4096


class CheckError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def ours(tool):
    p = os.path.join(THINMETA_BIN, tool)
    return p if os.access(p, os.X_OK) else None


# ---------------------------------------------------------------- scenario headers
def parse_headers(path):
    h = {"DISKS": [], "TIMEOUT": "300", "ONLINE": "0", "EXPECT": "", "PRE": "", "ENV": "", "TOOLS": "",
         "CHECK": "", "POST": "", "FILES": ""}
    with open(path) as f:
        for line in f:
            m = re.match(r"#\s*([A-Z]+):\s*(.*)$", line)
            if m and m.group(1) in h:
                if m.group(1) == "DISKS":
                    h["DISKS"] = [tuple(x.split("=", 1)) for x in m.group(2).split()]
                else:
                    h[m.group(1)] = m.group(2).strip()
    return h


def size_bytes(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


# ---------------------------------------------------------------- ground-truth model
def expand(rng):
    m = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/(\d+))?", rng)
    if not m:
        raise CheckError("bad range in truth: %r" % rng)
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else a
    s = int(m.group(3)) if m.group(3) else 1
    return range(a, b + 1, s)


class Dev:
    def __init__(self, ctime, stime, trans, maps=None):
        self.ctime, self.stime, self.trans = ctime, stime, trans
        self.maps = maps if maps is not None else {}  # vblock -> [ident, time]


class Model:
    """Replays the truth log the way dm-thin behaves: a write to a mapped block whose mapping
    time is older than the device's snapshotted_time breaks sharing (new data block), otherwise
    it overwrites in place (same data block); a write to an unmapped block provisions one."""

    def __init__(self):
        self.devs, self.time, self.trans = {}, 0, 0
        self.held = None  # (devs, time, trans) frozen at reserve
        self.content = {}  # ident -> (tag, vblock)
        self.next_ident = 0
        self.bs = self.nblocks = self.wlen = None
        self.status = None

    def new_ident(self, tag, vb):
        self.next_ident += 1
        self.content[self.next_ident] = (tag, vb)
        return self.next_ident

    def seed_from_xml(self, root):
        """Initial state = a restored pool; identity of a mapping = its data block."""
        self.time = int(root.get("time"))
        self.trans = int(root.get("transaction"))
        for d in root.findall("device"):
            dev = Dev(int(d.get("creation_time")), int(d.get("snap_time")), int(d.get("transaction")))
            for v, (db, t) in xml_mappings(d).items():
                dev.maps[v] = [("xml", db), t]
            self.devs[int(d.get("dev_id"))] = dev

    def apply(self, line):
        w = line.split()
        if not w:
            return
        op, a = w[0], w[1:]
        if op == "pool":
            self.bs, self.nblocks, self.wlen = int(a[0]), int(a[1]), int(a[2])
        elif op == "grow-data":
            self.nblocks = int(a[0])
        elif op == "create":
            d = int(a[0])
            if d in self.devs:
                raise CheckError("truth: create of existing device %d" % d)
            self.devs[d] = Dev(self.time, self.time, self.trans)
        elif op == "snap":
            new, org = int(a[0]), int(a[1])
            self.time += 1
            o = self.devs[org]
            o.stime = self.time
            self.devs[new] = Dev(self.time, self.time, self.trans, {v: list(m) for v, m in o.maps.items()})
        elif op == "delete":
            del self.devs[int(a[0])]
        elif op == "trans":
            if self.trans != int(a[0]):
                raise CheckError("truth: set_transaction_id %s but model has %d" % (a[0], self.trans))
            self.trans = int(a[1])
        elif op == "write":
            dev, tag = self.devs[int(a[0])], int(a[1])
            for r in a[2:]:
                for v in expand(r):
                    m = dev.maps.get(v)
                    if m is not None and not dev.stime > m[1]:
                        self.content[m[0]] = (tag, v)  # in place
                    else:
                        dev.maps[v] = [self.new_ident(tag, v), self.time]
        elif op == "discard":
            dev = self.devs[int(a[0])]
            for r in a[1:]:
                for v in expand(r):
                    dev.maps.pop(v, None)
        elif op == "reserve":
            self.held = (copy.deepcopy(self.devs), self.time, self.trans)
        elif op == "release":
            self.held = None
        elif op == "status":
            self.status = a
        elif op == "note":
            pass
        else:
            raise CheckError("truth: unknown line %r" % line)


# ---------------------------------------------------------------- XML dumps
def xml_mappings(dev_el):
    out = {}
    for m in dev_el:
        if m.tag == "single_mapping":
            out[int(m.get("origin_block"))] = (int(m.get("data_block")), int(m.get("time")))
        elif m.tag == "range_mapping":
            o, d, n, t = (int(m.get(k)) for k in ("origin_begin", "data_begin", "length", "time"))
            for i in range(n):
                out[o + i] = (d + i, t)
        else:
            raise CheckError("unexpected element <%s> in dump" % m.tag)
    return out


def run_dump(tool, meta, snap=False):
    args = [tool] + (["-m"] if snap else []) + [meta]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise CheckError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode().strip()))
    return p.stdout


def compare_view(label, xml_bytes, devs, time_, trans, model, nr_data_blocks, idmap, errors):
    """Compare one dump (live or held) with the model view; fills idmap ident->data block."""
    root = ET.fromstring(xml_bytes)
    exp = {"time": time_, "transaction": trans, "data_block_size": model.bs,
           "nr_data_blocks": nr_data_blocks, "flags": 0}
    for k, v in exp.items():
        if int(root.get(k)) != v:
            errors.append("%s: superblock %s=%s, truth says %d" % (label, k, root.get(k), v))
    got = {int(d.get("dev_id")): d for d in root.findall("device")}
    if sorted(got) != sorted(devs):
        errors.append("%s: devices %s, truth says %s" % (label, sorted(got), sorted(devs)))
    nmap = 0
    for dev_id in sorted(set(got) & set(devs)):
        d, md = got[dev_id], devs[dev_id]
        for attr, val in (("mapped_blocks", len(md.maps)), ("transaction", md.trans),
                          ("creation_time", md.ctime), ("snap_time", md.stime)):
            if int(d.get(attr)) != val:
                errors.append("%s: dev %d %s=%s, truth says %d" % (label, dev_id, attr, d.get(attr), val))
        maps = xml_mappings(d)
        nmap += len(maps)
        extra = sorted(set(maps) - set(md.maps))
        missing = sorted(set(md.maps) - set(maps))
        if extra:
            errors.append("%s: dev %d maps %d blocks not in truth, e.g. %s" % (label, dev_id, len(extra), extra[:8]))
        if missing:
            errors.append("%s: dev %d lacks %d mapped blocks, e.g. %s" % (label, dev_id, len(missing), missing[:8]))
        badt = [v for v in maps if v in md.maps and maps[v][1] != md.maps[v][1]]
        if badt:
            v = badt[0]
            errors.append("%s: dev %d: %d mappings with wrong time, e.g. vblock %d time %d, truth %d"
                          % (label, dev_id, len(badt), v, maps[v][1], md.maps[v][1]))
        for v, (db, _) in maps.items():
            if v in md.maps:
                ident = md.maps[v][0]
                prev = idmap.setdefault(ident, db)
                if prev != db:
                    errors.append("%s: dev %d vblock %d -> data %d, but the same written block maps to data %d elsewhere"
                                  % (label, dev_id, v, db, prev))
    return nmap


def check_sharing(idmap, errors):
    """Different writes (identities) must never share a data block."""
    seen = {}
    for ident, db in idmap.items():
        if db in seen and seen[db] != ident:
            errors.append("data block %d holds two different writes (%s and %s)" % (db, seen[db], ident))
        seen[db] = ident


def check_content(data_img, model, idmap, errors):
    lines = []
    bsb = model.bs * 512
    for ident, db in idmap.items():
        if ident in model.content:
            tag, vb = model.content[ident]
            lines.append("%d %d %d\n" % (db * bsb, vb, tag))
        elif isinstance(ident, tuple) and ident[0] == "xml":
            continue  # restored mapping, checked by the restore hook's content map
    p = subprocess.run([BLKWRITE, "checkat", data_img, str(model.wlen)], input="".join(lines).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        errors.append("data content: " + p.stdout.decode().strip().replace("\n", "; "))
    return len(lines)


# ---------------------------------------------------------------- raw metadata decoding (stats)
class Meta:
    def __init__(self, path):
        self.f = open(path, "rb")
        sb = self.block(0)
        self.held_root, = struct.unpack_from("<Q", sb, 56)
        self.data_nr, self.data_alloc = struct.unpack_from("<QQ", sb, 64)
        self.meta_nr, self.meta_alloc = struct.unpack_from("<QQ", sb, 192)
        self.mapping_root, self.details_root = struct.unpack_from("<QQ", sb, 320)
        self.sb_meta_nr_blocks, = struct.unpack_from("<Q", sb, 344)

    def block(self, b):
        self.f.seek(b * BLOCK)
        return self.f.read(BLOCK)

    def node(self, b):
        blk = self.block(b)
        flags, blocknr, nr, mx, vs = struct.unpack_from("<IQIII", blk, 4)
        if blocknr != b:
            raise CheckError("metadata block %d: node claims blocknr %d" % (b, blocknr))
        keys = struct.unpack_from("<%dQ" % nr, blk, 32)
        vals = struct.unpack_from("<%dQ" % nr, blk, 32 + 8 * mx) if vs == 8 else None
        return flags, keys, vals

    def leaves(self, root):
        """(key, value) pairs of a value-size-8 tree."""
        flags, keys, vals = self.node(root)
        if flags == 1:
            for c in vals:
                yield from self.leaves(c)
        else:
            yield from zip(keys, vals)

    def depth(self, root):
        d = 1
        flags, _, vals = self.node(root)
        while flags == 1:
            d += 1
            flags, _, vals = self.node(vals[0])
        return d

    def dev_depths(self, mapping_root):
        return {dev: self.depth(r) for dev, r in self.leaves(mapping_root)}


# ---------------------------------------------------------------- pre hooks
def pre_restore(outdir, env):
    """Kernel-accepts-restore: XML -> THIN_RESTORE -> metadata; data image with patterns."""
    bs, nblocks, wlen = 128, 8192, 4096
    devs = []
    # dev 1: 0..1199 -> data 0..1199 (time 0), a long run
    d1 = [(v, v, 0) for v in range(1200)]
    # dev 2: snapshot-like: shares data 0..599 with dev 1, own blocks 600..1199 -> data 2000.. (time 1)
    d2 = [(v, v, 0) for v in range(600)] + [(v, 2000 + v - 600, 1) for v in range(600, 1200)]
    # dev 5: scattered single mappings, gaps and descending data blocks
    d5 = [(10000 + 7 * i, 5000 - i, 1) for i in range(700)]
    # dev 16777215: empty;  dev 9: one mapping at a huge virtual block
    d9 = [(10 ** 9, 6000, 1)]
    devs = [(1, d1, 0, 0), (2, d2, 1, 1), (5, d5, 1, 1), (9, d9, 1, 1), (16777215, [], 1, 1)]
    xml = ['<superblock uuid="" time="1" transaction="3" flags="0" version="2" data_block_size="%d" nr_data_blocks="%d">'
           % (bs, nblocks)]
    content = []  # (data block, vblock, tag)
    tags = {1: 21, 2: 22, 5: 25, 9: 29}
    for dev_id, maps, ctime, stime in devs:
        xml.append('  <device dev_id="%d" mapped_blocks="%d" transaction="2" creation_time="%d" snap_time="%d">'
                   % (dev_id, len(maps), ctime, stime))
        for v, db, t in maps:
            xml.append('    <single_mapping origin_block="%d" data_block="%d" time="%d"/>' % (v, db, t))
            if not (dev_id == 2 and v < 600):
                content.append((db, v, tags[dev_id]))
        xml.append("  </device>")
    xml.append("</superblock>")
    with open(os.path.join(outdir, "restore-input.xml"), "w") as f:
        f.write("\n".join(xml) + "\n")
    meta, data = os.path.join(outdir, "meta.img"), os.path.join(outdir, "data.img")
    inp = "".join("%d %d %d\n" % (db * bs * 512, v, tag) for db, v, tag in content)
    subprocess.run([BLKWRITE, "writeat", data, str(wlen)], input=inp.encode(), check=True,
                   stderr=subprocess.DEVNULL)
    p = subprocess.run([THIN_RESTORE, "-i", os.path.join(outdir, "restore-input.xml"), "-o", meta],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise CheckError("%s failed: %s" % (THIN_RESTORE, p.stdout.decode().strip()))
    # the restored content, for the host-side content check of restored mappings
    with open(os.path.join(outdir, "restore-content"), "w") as f:
        f.write(inp)
    log("  restore: %s wrote %s from %d mappings" % (THIN_RESTORE, meta, sum(len(d[1]) for d in devs)))


PRE_HOOKS = {"restore": pre_restore}


# ---------------------------------------------------------------- post hooks (extra checks)
def delta_ranges(xml_bytes):
    """thin_delta simple output -> {vblock: kind}"""
    out = {}
    for m in re.finditer(rb'<(same|different|left_only|right_only) begin="(\d+)" length="(\d+)"', xml_bytes):
        for v in range(int(m.group(2)), int(m.group(2)) + int(m.group(3))):
            out[v] = m.group(1).decode()
    return out


def post_backup(out, model, meta, data, errors, notes):
    """The delta the backup recipe used (guest/delta.xml, devices 2 -> 3) equals the ground truth:
    per vblock, same write in both -> same; different writes -> different; only one -> *_only."""
    old, new = model.devs[2].maps, model.devs[3].maps
    exp = {}
    for v in set(old) | set(new):
        if v in old and v in new:
            exp[v] = "same" if old[v][0] == new[v][0] else "different"
        else:
            exp[v] = "left_only" if v in old else "right_only"
    got = delta_ranges(open(os.path.join(out, "guest", "delta.xml"), "rb").read())
    for kind in ("same", "different", "left_only", "right_only"):
        e = {v for v, k in exp.items() if k == kind}
        g = {v for v, k in got.items() if k == kind}
        if e != g:
            errors.append("backup delta: %s blocks %d, truth %d (missing %s, extra %s)"
                          % (kind, len(g), len(e), sorted(e - g)[:6], sorted(g - e)[:6]))
    changed = sum(1 for k in exp.values() if k != "same")
    log("  backup: delta has %d changed blocks of %d, matching the truth" % (changed, len(exp)))


def post_trim(out, model, meta, data, errors, notes):
    """After thin_trim in the guest: the pool had more non-zero data blocks before than it uses;
    with discard support, every free data block of data.img is zero afterwards."""
    before, after, dmax = (int(x) for x in open(os.path.join(out, "guest", "trim-counts")).read().split())
    used = set()
    for d in ET.fromstring(open(os.path.join(out, "dump.xml"), "rb").read()).findall("device"):
        used.update(db for db, _ in xml_mappings(d).values())
    if before <= len(used):
        errors.append("trim: only %d non-zero data blocks before thin_trim for %d used: nothing to trim"
                      % (before, len(used)))
    bsb = model.bs * 512
    nonzero_free = []
    with open(data, "rb") as f:
        for b in range(model.nblocks):
            if b not in used:
                f.seek(b * bsb)
                if f.read(bsb).count(0) != bsb:
                    nonzero_free.append(b)
    if dmax == 0:
        notes.append("trim: the virtio disk does not support discard; freed blocks not checked for zero")
    elif nonzero_free:
        errors.append("trim: %d free data blocks still hold data after thin_trim, e.g. %s"
                      % (len(nonzero_free), nonzero_free[:8]))
    elif after != len(used):
        errors.append("trim: %d non-zero data blocks after thin_trim, %d used" % (after, len(used)))
    log("  trim: %d non-zero data blocks before thin_trim, %d after, %d mapped; free blocks zero: %s"
        % (before, after, len(used), "yes" if not nonzero_free else "NO (%d)" % len(nonzero_free)))


def post_shrink(out, model, meta, data, errors, notes):
    """After thin_shrink in the guest: data blocks >= the new size were mapped before (the data
    was spread over the whole device), none are now, the pool's data device has the new size,
    and every device keeps the same virtual blocks with the same times (the contents are
    checked on data.img by the generic checks)."""
    before = ET.fromstring(open(os.path.join(out, "guest", "before.xml"), "rb").read())
    after = ET.fromstring(open(os.path.join(out, "dump.xml"), "rb").read())
    n = int(after.get("nr_data_blocks"))
    if n != 512 or int(before.get("nr_data_blocks")) != 1024:
        errors.append("shrink: nr_data_blocks %s -> %d, want 1024 -> 512" % (before.get("nr_data_blocks"), n))
    high = {db for d in before.findall("device") for db, _ in xml_mappings(d).values() if db >= n}
    if not high:
        errors.append("shrink: no data block >= %d was mapped before the shrink" % n)
    b = {int(d.get("dev_id")): {v: t for v, (_, t) in xml_mappings(d).items()} for d in before.findall("device")}
    a = {int(d.get("dev_id")): {v: t for v, (_, t) in xml_mappings(d).items()} for d in after.findall("device")}
    if a != b:
        errors.append("shrink: the devices' virtual blocks or times changed")
    moved = [db for d in after.findall("device") for db, _ in xml_mappings(d).values() if db >= n]
    if moved:
        errors.append("shrink: %d mappings still point at or beyond block %d" % (len(moved), n))
    log("  shrink: %d data blocks >= %d moved below it; %d mappings checked" %
        (len(high), n, sum(len(m) for m in a.values())))


POST_HOOKS = {"backup": post_backup, "trim": post_trim, "shrink": post_shrink}


# ---------------------------------------------------------------- run + check
def scenario_path(name):
    return os.path.join(HERE, "scenarios", name + ".sh")


def outdir_of(name):
    return os.path.join(CACHE, "out", name)


def run(name):
    path = scenario_path(name)
    h = parse_headers(path)
    out = outdir_of(name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    disks = []
    for dname, size in h["DISKS"]:
        p = os.path.join(out, dname + ".img")
        with open(p, "wb") as f:
            f.truncate(size_bytes(size))
        disks.append(p)
    extra = []
    if h["PRE"]:
        extra = PRE_HOOKS[h["PRE"]](out, h) or []
    script = os.path.join(out, "guest-script.sh")
    with open(script, "w") as f:
        f.write(open(os.path.join(HERE, "guest", "lib.sh")).read())
        f.write("\n# ---- scenario %s ----\n" % name)
        f.write(open(path).read())
    cmd = [os.path.join(HERE, "run-guest.sh"), "-o", os.path.join(out, "guest"), "-t", h["TIMEOUT"]]
    for d in disks:
        cmd += ["-d", d]
    if h["ONLINE"] == "1" or h["TOOLS"]:
        # our multi-call binary with its tool links (run-guest keeps symlinks as links)
        tools = (ONLINE_TOOLS if h["ONLINE"] == "1" else ["thin_dump"]) + h["TOOLS"].split()
        shipped = [t for i, t in enumerate(tools) if ours(t) and t not in tools[:i]]
        missing = [t for t in h["TOOLS"].split() if not ours(t)]
        if missing:
            raise CheckError("the scenario needs %s, not in %s" % (" ".join(missing), THINMETA_BIN))
        if "thin_dump" not in shipped:
            raise CheckError("no thinmeta build in %s: the scenario needs our tools" % THINMETA_BIN)
        for t in shipped:
            cmd += ["-b", ours(t)]
        cmd += ["-e", "ONLINE_DUMP=/opt/bin/thin_dump"]
        with open(os.path.join(out, "online-tool"), "w") as f:
            f.write(THINMETA_BIN + "\n")
        log("  our tools in the guest: %s (from %s)" % (" ".join(shipped), THINMETA_BIN))
    for fname in h["FILES"].split():
        cmd += ["-f", os.path.join(HERE, fname)]
    for e in h["ENV"].split():
        cmd += ["-e", e]
    cmd += extra
    cmd.append(script)
    t0 = time.time()
    p = subprocess.run(cmd)
    secs = time.time() - t0
    with open(os.path.join(out, "guest-seconds"), "w") as f:
        f.write("%.1f\n" % secs)
    gout = os.path.join(out, "guest")
    if os.path.exists(os.path.join(gout, "truth")):
        shutil.copy(os.path.join(gout, "truth"), os.path.join(out, "truth"))
    if p.returncode != 0:
        err = open(os.path.join(gout, "stderr")).read() if os.path.exists(os.path.join(gout, "stderr")) else ""
        raise CheckError("guest failed with status %d after %.0fs; guest stderr tail:\n%s"
                         % (p.returncode, secs, "\n".join(err.splitlines()[-15:])))
    return secs


def check(name):
    out = outdir_of(name)
    h = parse_headers(scenario_path(name))
    if h["CHECK"]:
        return CHECKS[h["CHECK"]](out, h)
    meta, data = os.path.join(out, "meta.img"), os.path.join(out, "data.img")
    errors, notes = [], []
    model = Model()
    if os.path.exists(os.path.join(out, "restore-input.xml")):
        model.seed_from_xml(ET.parse(os.path.join(out, "restore-input.xml")).getroot())
    with open(os.path.join(out, "truth")) as f:
        for line in f:
            model.apply(line)
    if model.bs is None:
        raise CheckError("truth has no pool line")

    # 1. reference thin_check must pass
    p = subprocess.run([os.path.join(REF_BIN, "thin_check"), meta], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        errors.append("reference thin_check failed: " + p.stdout.decode().strip().replace("\n", "; "))
    if ours("thin_check"):
        for args in ([], ["-m"]):
            if args and not Meta(meta).held_root:
                continue
            p = subprocess.run([ours("thin_check")] + args + [meta], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0:
                errors.append("our thin_check %sfailed: %s" % (" ".join(args + [""]), p.stdout.decode().strip().replace("\n", "; ")))
    else:
        notes.append("SKIPPED: no thinmeta build (%s/thin_check missing): our thin_check not run" % THINMETA_BIN)

    # 2. THIN_DUMP (live, and -m if held) against the truth
    m = Meta(meta)
    idmap = {}
    live = run_dump(THIN_DUMP, meta)
    open(os.path.join(out, "dump.xml"), "wb").write(live)
    nmap = compare_view("live dump", live, model.devs, model.time, model.trans, model, model.nblocks, idmap, errors)
    held_xml = None
    if model.held is not None:
        if m.held_root == 0:
            errors.append("truth says a metadata snapshot is held, superblock held_root is 0")
        else:
            held_xml = run_dump(THIN_DUMP, meta, snap=True)
            open(os.path.join(out, "dump-m.xml"), "wb").write(held_xml)
            hdevs, htime, htrans = model.held
            compare_view("held dump (-m)", held_xml, hdevs, htime, htrans, model, 0, idmap, errors)
    elif m.held_root != 0:
        errors.append("superblock held_root=%d but truth has no held snapshot" % m.held_root)
    check_sharing(idmap, errors)
    ncontent = check_content(data, model, idmap, errors)
    rc_path = os.path.join(out, "restore-content")
    if os.path.exists(rc_path):
        # restored mappings that were never overwritten must still hold the restored patterns
        still = {db for ident, db in idmap.items() if isinstance(ident, tuple) and ident not in model.content}
        lines = [l for l in open(rc_path) if int(l.split()[0]) // (model.bs * 512) in still]
        p = subprocess.run([BLKWRITE, "checkat", data, str(model.wlen)], input="".join(lines).encode(),
                           stdout=subprocess.PIPE)
        if p.returncode != 0:
            errors.append("restored data content: " + p.stdout.decode().strip().replace("\n", "; "))
        ncontent += len(lines)

    # 3. the last pool status line against the superblock (FORMAT.md section 11)
    if model.status:
        s = model.status
        # s = [start, len, "thin-pool", trans, used/total meta, used/total data, held, ...]
        mu, mt = (int(x) for x in s[4].split("/"))
        du, dt = (int(x) for x in s[5].split("/"))
        if int(s[3]) != model.trans:
            errors.append("status transaction %s != truth %d" % (s[3], model.trans))
        if mt != m.meta_nr:
            errors.append("status metadata total %d != space map nr_blocks %d" % (mt, m.meta_nr))
        if mu != m.meta_alloc + min(4096, mt // 10):
            errors.append("status metadata used %d != nr_allocated %d + min(4096, total/10)" % (mu, m.meta_alloc))
        if (du, dt) != (m.data_alloc, m.data_nr):
            errors.append("status data %d/%d != data space map %d/%d" % (du, dt, m.data_alloc, m.data_nr))
        if du != len(set(idmap.values())):
            errors.append("status data used %d != distinct data blocks in the dumps %d" % (du, len(set(idmap.values()))))
        held_s = "-" if m.held_root == 0 else str(m.held_root)
        if s[6] != held_s:
            errors.append("status held root %s != superblock held_root %s" % (s[6], held_s))

    # 4. our thin_dump must equal the reference byte for byte
    ref_dump = os.path.join(REF_BIN, "thin_dump")
    ourdump = ours("thin_dump")
    if ourdump is None:
        notes.append("SKIPPED: no thinmeta build (%s/thin_dump missing): ours-vs-reference comparison not run" % THINMETA_BIN)
    else:
        for snap in ([False, True] if m.held_root else [False]):
            try:
                a = run_dump(ref_dump, meta, snap)
                b = run_dump(ourdump, meta, snap)
                if a != b:
                    errors.append("our thin_dump%s differs from the reference (%d vs %d bytes)"
                                  % (" -m" if snap else "", len(b), len(a)))
            except CheckError as e:
                errors.append(str(e))

    # 5. online runs in the guest (pool active, writers running) == the same command on the final image
    if h["ONLINE"] == "1":
        check_online(out, meta, m, errors, notes)

    # 6. scenario-specific checks
    if h["POST"]:
        POST_HOOKS[h["POST"]](out, model, meta, data, errors, notes)

    # 7. stats + scenario expectations
    depths = m.dev_depths(m.mapping_root)
    stats = {"mappings": nmap, "devices": len(depths), "depth": max(depths.values()) if depths else 0,
             "top_depth": m.depth(m.mapping_root), "meta_blocks": m.meta_alloc, "meta_nr_blocks": m.meta_nr,
             "sb_meta_nr_blocks": m.sb_meta_nr_blocks, "held": 1 if m.held_root else 0,
             "held_root": m.held_root, "data_blocks_used": m.data_alloc, "content_checked": ncontent}
    for cond in h["EXPECT"].split():
        mm = re.fullmatch(r"(\w+)(>=|<=|==|>)(\d+)", cond)
        if not mm:
            raise CheckError("bad EXPECT %r" % cond)
        k, op, v = mm.group(1), mm.group(2), int(mm.group(3))
        val = stats[k]
        ok = {">=": val >= v, "<=": val <= v, "==": val == v, ">": val > v}[op]
        if not ok:
            errors.append("expectation %s failed: %s=%d" % (cond, k, val))
    return stats, errors, notes


def check_online(out, meta, m, errors, notes):
    """Every `online NAME TOOL ARGS` run in the guest (guest/online-cmds, outputs
    guest/online-NAME.out) is rerun on the host on the final image: stdout must be identical."""
    bindir = open(os.path.join(out, "online-tool")).read().strip()
    cmds = os.path.join(out, "guest", "online-cmds")
    if not os.path.exists(cmds):
        errors.append("online runs missing from the guest result")
        return
    if m.held_root == 0:
        errors.append("online check needs the snapshot still held at the end")
        return
    ran = set()
    for line in open(cmds):
        name, tool, *args = line.split()
        ran.add(tool)
        args = [meta if a == "/dev/vda" else a for a in args]
        p = subprocess.run([os.path.join(bindir, tool)] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got = open(os.path.join(out, "guest", "online-%s.out" % name), "rb").read()
        now = p.stdout
        if tool == "thin_check":
            # METADATA_FREE_BLOCKS is the live space map's count at that moment, not the snapshot's
            got, now = (re.sub(rb"METADATA_FREE_BLOCKS=\d+\n", b"", x) for x in (got, now))
        if p.returncode != 0:
            errors.append("online %s: on the final image %s failed (%d): %s"
                          % (name, tool, p.returncode, p.stderr.decode().strip()))
        elif got != now:
            errors.append("online %s: `%s %s` in the guest (pool active, writers running) differs from the "
                          "same command on the final image (%d vs %d bytes)"
                          % (name, tool, " ".join(args), len(got), len(now)))
        elif not got:
            errors.append("online %s: empty output" % name)
        elif tool in ("thin_ls", "thin_delta") and name.endswith("1") and "HIGHEST" not in line:
            # and equal to the reference tool's output (thin_dump: check 4; 0.9.0 has no HIGHEST_*)
            r = subprocess.run([os.path.join(REF_BIN, tool)] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if r.returncode != 0 or r.stdout != got:
                errors.append("online %s: our `%s %s` differs from the reference's (exit %d, %d vs %d bytes)"
                              % (name, tool, " ".join(args), r.returncode, len(got), len(r.stdout)))
    for t in ONLINE_TOOLS:
        if t not in ran:
            notes.append("SKIPPED: online %s (not in %s)" % (t, bindir))


import krepair  # noqa: E402
import klvm2  # noqa: E402

krepair.K = klvm2.K = sys.modules[__name__]
PRE_HOOKS["repair"] = krepair.pre_repair
PRE_HOOKS["lvm2"] = klvm2.pre_lvm2
CHECKS = {"repair": krepair.check_repair, "lvm2": klvm2.check_lvm2}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "check"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mode, name = sys.argv[1], sys.argv[2]
    if not os.path.exists(scenario_path(name)):
        print("no scenario %s" % name, file=sys.stderr)
        sys.exit(2)
    secs = None
    try:
        if mode == "run":
            secs = run(name)
        else:
            sp = os.path.join(outdir_of(name), "guest-seconds")
            secs = float(open(sp).read()) if os.path.exists(sp) else 0.0
        stats, errors, notes = check(name)
    except CheckError as e:
        stats, errors, notes = {}, [str(e)], []
    stats["seconds"] = round(secs or 0, 1)
    stats["result"] = "FAIL" if errors else "PASS"
    stats["errors"] = errors
    stats["notes"] = notes
    os.makedirs(outdir_of(name), exist_ok=True)
    with open(os.path.join(outdir_of(name), "summary.json"), "w") as f:
        json.dump(stats, f, indent=1)
    for n in notes:
        log("  " + n)
    for e in errors:
        # a long error keeps its head (what failed) and its tail (a guest's last lines say why)
        log("  FAIL: " + (e if len(e) < 1600 else e[:400] + " [...] " + e[-1200:]))
    log("%s: %s %s" % (name, stats["result"], " ".join("%s=%s" % (k, v) for k, v in stats.items()
                                                      if k not in ("errors", "result", "notes"))))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
