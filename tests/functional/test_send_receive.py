# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_send / thin_receive, low-level form on image files: a pool restored from XML (known
mappings) over a data image of per-block patterns. Full and incremental chains applied to files
(also on tmpfs) equal the ground truth from the XML block for block; dry-run numbers match the
mappings; wrong base, flipped bytes and cut streams are refused with one line and exit 1, never
leaving wrong data undetected; a cut stream is finished by its resume token; broken pipe and
full output end with exit 1."""
import hashlib
import os
import random
import shutil
import subprocess

import common
import corpus

F = common.Failures("test_send_receive")
W = os.path.join(common.work_dir(), "send_receive")
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else W
SHM_DIR = os.path.join(SHM, f"thinmeta-send-{os.getpid()}")
os.makedirs(SHM_DIR, exist_ok=True)
STATE = os.path.join(W, "state")
ENV = {"THINMETA_RECEIVE_STATE_DIR": STATE}
SEND = common.ours("thin_send")
RECV = common.ours("thin_receive")

BS = 128 * 512  # data block size: 128 sectors
V = 160  # virtual blocks per device
SIZE_SECTORS = V * 128 - 64  # the last block is half inside the device
SIZE = SIZE_SECTORS * 512
rng = random.Random(14)


def pattern(b):
    s = f"data block {b:08d}|".encode()
    return (s * (BS // len(s) + 1))[:BS]


# A chain: 2 = first snapshot, 3 and 4 later ones; each changes some blocks (new data
# blocks), unmaps some, maps some new; 1 is the origin (= 4 plus more).
next_data = 0


def fresh():
    global next_data
    next_data += 1
    return next_data - 1


maps = {}
m2 = {}
v = 0
while v < V:
    if rng.random() < 0.7:
        n = rng.randint(1, 12)
        d = fresh()
        for k in range(n):
            if v + k < V:
                m2[v + k] = d + k if k == 0 else fresh()
        v += n
    else:
        v += rng.randint(1, 6)
maps[2] = m2


def evolve(prev):
    m = dict(prev)
    for v in range(V):
        r = rng.random()
        if v in m and r < 0.15:
            m[v] = fresh()       # written since: a new data block
        elif v in m and r < 0.22:
            del m[v]             # discarded
        elif v not in m and r < 0.2:
            m[v] = fresh()       # newly written
    return m


maps[3] = evolve(maps[2])
maps[4] = evolve(maps[3])
maps[1] = evolve(maps[4])
NR_DATA = next_data + 8

devices = [(dev, 0, dev, 4, [(v, d, 0) for v, d in sorted(maps[dev].items())]) for dev in (1, 2, 3, 4)]
xml = os.path.join(W, "pool.xml")
with open(xml, "w") as f:
    f.write(corpus.xml_pool(5, 5, 128, NR_DATA, devices))
META = os.path.join(W, "pool.meta")
with open(META, "wb") as f:
    f.truncate(8 << 20)
common.run([common.ours("thin_restore"), "-i", xml, "-o", META], check=True)
DATA = os.path.join(W, "pool.data")
with open(DATA, "wb") as f:
    for b in range(NR_DATA):
        f.write(pattern(b))


def truth(dev):
    out = bytearray(SIZE)
    for v, d in maps[dev].items():
        b = v * BS
        e = min(b + BS, SIZE)
        out[b:e] = pattern(d)[: e - b]
    return bytes(out)


def send(snap, base=None, extra=(), out=None):
    argv = [SEND, "--metadata-dev", META, "--data-dev", DATA, "--snap2", str(snap),
            "--size", str(SIZE_SECTORS)] + (["--snap1", str(base)] if base else []) + list(extra)
    if out:
        argv += ["-o", out]
    return common.run(argv)


def receive(target, stream, extra=()):
    return common.run([RECV] + list(extra) + [target], stdin=stream, env=ENV)


def content(path):
    with open(path, "rb") as f:
        return f.read()


def one_line(err):
    return err.count(b"\n") == 1


def check_equal(label, path, dev):
    got = content(path)
    want = truth(dev)
    if got == want:
        F.check(True, label)
        return
    bad = [v for v in range(V) if got[v * BS:(v + 1) * BS] != want[v * BS:(v + 1) * BS]]
    F.check(False, f"{label}: size {len(got)} (want {len(want)}), blocks differ: {bad[:10]}")


streams = {}
for key, (snap, base) in {"full2": (2, None), "inc23": (3, 2), "inc34": (4, 3), "full4": (4, None),
                          "inc24": (4, 2)}.items():
    rc, out, err = send(snap, base)
    F.check(rc == 0 and not err, f"send {key}: rc {rc} {err[:200]!r}")
    streams[key] = out

# -o FILE writes the same bytes.
rc, _, err = send(3, 2, out=os.path.join(W, "inc23.stream"))
F.check(rc == 0 and content(os.path.join(W, "inc23.stream")) == streams["inc23"], "-o FILE = stdout")

# Chains: full 2, then 2->3, 3->4, on a disk file and on tmpfs.
for where in (W, SHM_DIR):
    t = os.path.join(where, "chain.img")
    rc, _, err = receive(t, streams["full2"])
    F.check(rc == 0 and not err, f"receive full 2 into {where}: {rc} {err!r}")
    check_equal(f"full 2 in {where}", t, 2)
    rc, _, err = receive(t, streams["inc23"])
    F.check(rc == 0, f"receive 2->3 in {where}: {rc} {err!r}")
    check_equal(f"2->3 in {where}", t, 3)
    rc, _, err = receive(t, streams["inc34"])
    F.check(rc == 0, f"receive 3->4 in {where}: {rc} {err!r}")
    check_equal(f"3->4 in {where}", t, 4)
    # The holes: a chain on a file stays sparse where the device is unprovisioned.
    st = os.stat(t)
    mapped4 = sum(1 for v in maps[4] if v * BS < SIZE)
    F.check(st.st_blocks * 512 <= (mapped4 + 2) * BS + (1 << 20),
            f"file stays sparse in {where}: {st.st_blocks * 512} bytes allocated, {mapped4} blocks mapped")

# A full stream applies over any content; 2->4 in one go.
t = os.path.join(W, "over.img")
with open(t, "wb") as f:
    f.write(b"\xee" * (SIZE + 3 * BS))
rc, _, err = receive(t, streams["full4"])
F.check(rc == 0, f"full 4 over garbage: {rc} {err!r}")
check_equal("full 4 over garbage (also cut to the device size)", t, 4)
t = os.path.join(W, "skip.img")
receive(t, streams["full2"])
rc, _, err = receive(t, streams["inc24"])
F.check(rc == 0, f"2->4: {rc} {err!r}")
check_equal("2->4", t, 4)


# Dry-run numbers against the mappings.
def expected(snap, base):
    data = zero = 0
    for v in range(V):
        b, e = v * BS, min((v + 1) * BS, SIZE)
        s = maps[snap].get(v)
        if base is None:
            if s is not None:
                data += e - b
            else:
                zero += e - b
        else:
            o = maps[base].get(v)
            if s is not None and s != o:
                data += e - b
            elif s is None and o is not None:
                zero += e - b
    return data, zero


for snap, base in ((2, None), (3, 2), (4, 3), (4, 2)):
    rc, out, err = send(snap, base, extra=["-n"])
    d, z = expected(snap, base)
    lines = out.decode().splitlines()
    ok = rc == 0 and len(lines) == 2 and lines[0].startswith(f"data: {d} bytes in ") and \
        lines[1].startswith(f"unmap: {z} bytes in ")
    F.check(ok, f"dry run {base}->{snap}: {out!r}, want data {d} unmap {z}")
    # The stream carries exactly those bytes.
    key = {(2, None): "full2", (3, 2): "inc23", (4, 3): "inc34", (4, 2): "inc24"}[(snap, base)]
    F.check(len(streams[key]) > d and len(streams[key]) < d + 256 + 48 * (V + 2) + 80,
            f"stream {key} size {len(streams[key])} fits data {d}")
# Dry run reads no data: it works without --data-dev.
rc, out, err = common.run([SEND, "--metadata-dev", META, "--snap2", "2", "--size", str(SIZE_SECTORS), "-n"])
F.check(rc == 0 and out.startswith(b"data: "), f"dry run without --data-dev: {rc} {err!r}")

# --mapped-only: only provisioned ranges; the rest of the target is left as it was.
t = os.path.join(W, "origin.img")
with open(t, "wb") as f:
    f.write(b"\xee" * SIZE)
rc, ms, err = send(4, extra=["--mapped-only"])
rc2, _, err2 = receive(t, ms)
got = content(t)
want = bytearray(b"\xee" * SIZE)
for vb, d in maps[4].items():
    b, e = vb * BS, min((vb + 1) * BS, SIZE)
    want[b:e] = pattern(d)[: e - b]
F.check(rc == 0 and rc2 == 0 and got == bytes(want), f"mapped-only onto an origin: {rc} {rc2} {err2!r}")

# Wrong base: refused before anything is written; --force applies it.
t = os.path.join(W, "wrong.img")
receive(t, streams["full2"])
before = content(t)
rc, _, err = receive(t, streams["inc34"])
F.check(rc == 1 and one_line(err) and b"does not hold the base" in err and content(t) == before,
        f"3->4 onto 2 refused: {rc} {err!r}")
rc, _, err = receive(t, streams["inc23"], extra=["-n"])
F.check(rc == 0 and content(t) == before and b"would write" in _, f"receive dry run: {rc} {err!r}")
rc, _, err = receive(os.path.join(W, "new.img"), streams["inc23"])
F.check(rc == 1 and not os.path.exists(os.path.join(W, "new.img")),
        f"incremental onto a missing file refused, nothing created: {rc} {err!r}")
# A file changed since the receive is not taken for what was recorded.
with open(t, "r+b") as f:
    f.seek(5)
    f.write(b"x")
rc, _, err = receive(t, streams["inc23"])
F.check(rc == 1 and b"changed since" in err, f"changed file refused: {rc} {err!r}")
rc, _, err = receive(t, streams["inc34"], extra=["--force"])
F.check(rc == 0, f"--force: {rc} {err!r}")


# Damage: a flipped byte anywhere is refused with one line naming a byte offset; what the
# receiver applied before it is resumed by the token to the exact snapshot.
def resume_from(err):
    for line in err.decode().splitlines():
        if line.startswith("resume token: "):
            return line[len("resume token: "):]
    return None


s = streams["inc23"]
for pos in (3, 100, 256 + 5, 256 + 48 + 10, len(s) // 2, len(s) - 20):
    t = os.path.join(W, f"flip{pos}.img")
    receive(t, streams["full2"])
    bad = bytearray(s)
    bad[pos] ^= 0x01
    rc, _, err = receive(t, bytes(bad))
    lines = err.decode().splitlines()
    F.check(rc == 1 and len(lines) in (1, 2) and "byte" in lines[0], f"flip at {pos}: {rc} {err!r}")
    tok = resume_from(err)
    if pos < 256:
        F.check(tok is None and content(t) == truth(2), f"bad header at {pos}: nothing written")
        continue
    F.check(tok is not None, f"flip at {pos}: a resume token")
    rc, r, err = send(3, 2, extra=["--resume", tok])
    rc2, _, err2 = receive(t, r)
    F.check(rc == 0 and rc2 == 0, f"resume after flip at {pos}: {rc} {rc2} {err!r} {err2!r}")
    check_equal(f"resumed after flip at {pos}", t, 3)

# Truncation at several offsets; the token finishes it (also a second cut of the resumed one).
s = streams["full4"]
for cut in (1, 255, 256, 300, 256 + 48 + 1000, len(s) // 3, len(s) - 81, len(s) - 1):
    t = os.path.join(SHM_DIR, f"cut{cut}.img")
    rc, _, err = receive(t, s[:cut])
    lines = err.decode().splitlines()
    F.check(rc == 1 and f"truncated at byte {cut}" in lines[0], f"cut at {cut}: {rc} {err!r}")
    tok = resume_from(err)
    if cut < 256:
        F.check(tok is None, f"cut in the header at {cut}: no token")
        continue
    F.check(tok is not None, f"cut at {cut}: a token")
    rc, r, _ = send(4, extra=["--resume", tok])
    rc2, _, err2 = receive(t, r[: len(r) // 2] if len(r) > 2000 else r)
    tok2 = resume_from(err2) if rc2 == 1 else None
    if tok2:
        rc, r, _ = send(4, extra=["--resume", tok2])
        rc2, _, err2 = receive(t, r)
    F.check(rc == 0 and rc2 == 0, f"resume after cut at {cut}: {rc2} {err2!r}")
    check_equal(f"resumed after cut at {cut}", t, 4)
# A token of another stream is refused by the sender; a resumed stream onto another target by
# the receiver.
t = os.path.join(W, "tok.img")
rc, _, err = receive(t, streams["inc24"][:0] or streams["full2"][:5000])
tok = resume_from(err)
rc, _, err = send(3, extra=["--resume", tok])
F.check(rc == 1 and b"resume token" in err, f"token of another snapshot refused: {rc} {err!r}")
rc, r, _ = send(2, extra=["--resume", tok])
rc, _, err = receive(os.path.join(W, "chain.img"), r)
F.check(rc == 1 and b"does not continue" in err, f"resumed stream onto another target: {rc} {err!r}")
rc, _, err = send(2, extra=["--resume", "1-00zz"])
F.check(rc == 1 and b"invalid resume token" in err, f"bad token: {rc} {err!r}")

# Output failures: broken pipe quietly, a full disk with one line; exit 1 both.
p1 = subprocess.Popen([SEND, "--metadata-dev", META, "--data-dev", DATA, "--snap2", "4", "--size",
                       str(SIZE_SECTORS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
p1.stdout.read(1000)
p1.stdout.close()
err = p1.stderr.read()
F.check(p1.wait() == 1 and err == b"", f"broken pipe: {p1.returncode} {err!r}")
rc, _, err = send(4, out="/dev/full")
F.check(rc == 1 and one_line(err), f"/dev/full: {rc} {err!r}")

# Argument and input errors: one line (and the usage for usage errors), exit 1, never 2.
for argv, what in (([SEND, "--metadata-dev", META, "--data-dev", DATA, "--snap2", "2"], "--size"),
                   ([SEND, "--metadata-dev", META, "--data-dev", DATA, "--snap2", "9", "--size", "128"], "unknown thin device 9"),
                   ([SEND, "--metadata-dev", META, "--data-dev", DATA, "--snap2", "2", "--snap1", "9", "--size", "128"], "unknown thin device 9"),
                   ([SEND, "--metadata-dev", DATA, "--data-dev", DATA, "--snap2", "2", "--size", "128"], ""),
                   ([RECV], "No target")):
    rc, _, err = common.run(argv, stdin=b"")
    F.check(rc == 1 and what.encode() in err, f"{argv[1:]}: {rc} {err[:300]!r}")
rc, _, err = receive(os.path.join(W, "empty.img"), b"")
F.check(rc == 1 and one_line(err) and b"empty stream" in err and not os.path.exists(os.path.join(W, "empty.img")),
        f"empty stdin: {rc} {err!r}")
rc, _, err = receive(os.path.join(W, "junk.img"), b"x" * 5000)
F.check(rc == 1 and one_line(err) and not os.path.exists(os.path.join(W, "junk.img")), f"junk stdin: {rc} {err!r}")
# A data device too short for the mappings.
short = os.path.join(W, "short.data")
with open(short, "wb") as f:
    f.write(content(DATA)[: 10 * BS])
rc, _, err = common.run([SEND, "--metadata-dev", META, "--data-dev", short, "--snap2", "2", "--size",
                         str(SIZE_SECTORS), "-o", os.path.join(W, "short.stream")])
F.check(rc == 1 and one_line(err) and b"beyond the end" in err and not os.path.exists(os.path.join(W, "short.stream")),
        f"short data device: {rc} {err!r}")

shutil.rmtree(SHM_DIR, ignore_errors=True)
F.finish()
