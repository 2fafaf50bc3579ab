# SPDX-License-Identifier: GPL-3.0-or-later
"""Outputs that never lie (issue 13, items 2, 3, 5): thin_dump -o writes through a symlink
(renamed beside the target), into /dev/stdout and /proc/self/fd paths in place, refuses a
hard-linked file; honours the umask for a new file and keeps the mode of a replaced one; writes
a writable file in a read-only directory in place; leaves no temporary file after SIGINT or
SIGTERM (the old contents stay). thin_restore refuses -i X -o X (also through a symlink) and a
second writer of the same file (flock)."""
import fcntl
import glob
import os
import signal
import stat
import subprocess
import time

import common
import corpus

F = common.Failures("test_outputs")
W = os.path.join(common.work_dir(), "outputs")
os.makedirs(W, exist_ok=True)
for old in glob.glob(os.path.join(W, "*")):
    if os.path.isdir(old):
        os.chmod(old, 0o755)
        for x in glob.glob(os.path.join(old, "*")):
            os.unlink(x)
        os.rmdir(old)
    else:
        os.unlink(old)
DUMP = common.ours("thin_dump")

xml = os.path.join(W, "pool.xml")
with open(xml, "w") as f:
    f.write(corpus.xml_pool(1, 3, 128, 100000,
                            [(1, 0, 0, 0, [(i, 2 * i, 0) for i in range(20000)])]))
img = os.path.join(W, "meta.bin")
with open(img, "wb") as f:
    f.truncate(16 << 20)
common.run([common.ours("thin_restore"), "-i", xml, "-o", img], check=True)
_, want, _ = common.run([DUMP, img], check=True)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def temps():
    return [p for p in glob.glob(os.path.join(W, "*.??????")) if not p.endswith(".bin")]


# Item 2: a symlink is written through; the link stays a link.
real = os.path.join(W, "real.xml")
link = os.path.join(W, "link.xml")
with open(real, "w") as f:
    f.write("old\n")
os.symlink("real.xml", link)
rc, _, err = common.run([DUMP, "-o", link, img])
F.check(rc == 0, f"dump -o symlink: exit 0: {err!r}")
F.check(os.path.islink(link), "dump -o symlink: the link is still a link")
F.check(read(real) == want, "dump -o symlink: the target got the dump")

# A dangling symlink: the file is created where it points.
dangling = os.path.join(W, "dangling.xml")
os.symlink("created.xml", dangling)
rc, _, err = common.run([DUMP, "-o", dangling, img])
F.check(rc == 0 and os.path.islink(dangling) and read(os.path.join(W, "created.xml")) == want,
        f"dump -o dangling symlink: target created: {err!r}")

# /dev/stdout and /proc/self/fd/1 redirected to a file: written in place, nothing replaced.
for path in ("/dev/stdout", "/proc/self/fd/1", "/dev/fd/1"):
    out = os.path.join(W, "stdout.xml")
    with open(out, "wb") as f:
        p = subprocess.run([DUMP, "-o", path, img], stdout=f, stderr=subprocess.PIPE)
    F.check(p.returncode == 0 and read(out) == want,
            f"dump -o {path} > file: the file has the dump ({p.returncode}, {p.stderr!r})")
    F.check(os.path.islink("/dev/stdout") or path != "/dev/stdout", "/dev/stdout left alone")
# ... and into a pipe.
p = subprocess.run([DUMP, "-o", "/dev/stdout", img], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
F.check(p.returncode == 0 and p.stdout == want, "dump -o /dev/stdout | pipe: the pipe has the dump")

# A hard-linked target is refused with a clear message, both names keep their contents.
h1, h2 = os.path.join(W, "hard1.xml"), os.path.join(W, "hard2.xml")
with open(h1, "w") as f:
    f.write("old\n")
os.link(h1, h2)
rc, _, err = common.run([DUMP, "-o", h1, img])
F.check(rc == 1 and b"hard links" in err and err.count(b"\n") == 1,
        f"dump -o hard link: refused in one line: {err!r}")
F.check(os.stat(h1).st_ino == os.stat(h2).st_ino and read(h1) == b"old\n", "hard links kept")

# Item 3: the umask for a new file, the mode of a replaced one.
new = os.path.join(W, "new.xml")
rc, _, _ = common.run(["/bin/sh", "-c", f'umask 077; exec "$0" -o "$1" "$2"', DUMP, new, img])
F.check(rc == 0 and stat.S_IMODE(os.stat(new).st_mode) == 0o600,
        f"umask 077: new output is 0600 ({oct(stat.S_IMODE(os.stat(new).st_mode))})")
os.chmod(new, 0o640)
rc, _, _ = common.run([DUMP, "-o", new, img])
F.check(stat.S_IMODE(os.stat(new).st_mode) == 0o640, "replacing keeps the mode")

# A writable file in a read-only directory is written in place (run as nobody: root's writes
# ignore the directory's mode).
ro = os.path.join(W, "ro")
os.mkdir(ro)
inplace = os.path.join(ro, "out.xml")
with open(inplace, "w") as f:
    f.write("old\n")
os.chmod(inplace, 0o666)
os.chmod(ro, 0o555)
argv = [DUMP, "-o", inplace, img]
if os.geteuid() == 0:
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv
rc, _, err = common.run(argv)
F.check(rc == 0 and read(inplace) == want, f"read-only directory: written in place: {err!r}")
os.chmod(ro, 0o755)

# SIGINT / SIGTERM while writing: no temporary left, the old contents stay.
big_xml = os.path.join(W, "big.xml")
with open(big_xml, "w") as f:
    f.write(corpus.xml_pool(1, 3, 128, 4000000,
                            [(d, 0, 0, 0, [(i, 3 * i + d, 0) for i in range(0, 600000)])
                             for d in range(1, 4)]))
big = os.path.join(W, "big.bin")
with open(big, "wb") as f:
    f.truncate(128 << 20)
common.run([common.ours("thin_restore"), "-i", big_xml, "-o", big], check=True)
target = os.path.join(W, "target.xml")
for sig in (signal.SIGINT, signal.SIGTERM):
    with open(target, "w") as f:
        f.write("old\n")
    seen = False
    # First (delay None) the signal is sent as soon as the temporary exists, whatever the
    # machine's speed; then after fixed delays (other phases; a sanitizer build starts slower).
    for delay in (None, 0.05, 0.1, 0.2, 0.4) + ((0.8, 1.6, 3.2) if common.sanitized() else ()):
        p = subprocess.Popen([DUMP, "-o", target, big], stderr=subprocess.PIPE)
        if delay is None:
            while p.poll() is None and not temps():
                time.sleep(0.001)
        else:
            time.sleep(delay)
        seen = seen or (p.poll() is None and bool(temps()))
        p.send_signal(sig)
        p.communicate()
        F.check(not temps(), f"{sig.name} after {delay}s: no temporary left ({temps()})")
        if p.returncode == 0:
            with open(target, "w") as f:
                f.write("old\n")
            continue
        F.check(read(target) == b"old\n", f"{sig.name} after {delay}s: target keeps old contents")
        F.check(p.returncode == -sig, f"{sig.name}: the process dies of the signal ({p.returncode})")
    F.check(seen, f"{sig.name}: a temporary existed while writing (the test saw the window)")

# Item 5: thin_restore -i X -o X, also through a symlink.
same = os.path.join(W, "same.bin")
with open(same, "wb") as f:
    f.write(read(img))
samelink = os.path.join(W, "same-link.bin")
os.symlink("same.bin", samelink)
for o in (same, samelink):
    rc, _, err = common.run([common.ours("thin_restore"), "-i", same, "-o", o])
    F.check(rc == 1 and b"same" in err and read(same) == read(img),
            f"restore -i X -o {os.path.basename(o)}: refused, untouched: {err!r}")

# A second writer of a locked regular file is refused, before anything is written.
locked = os.path.join(W, "locked.bin")
with open(locked, "wb") as f:
    f.truncate(16 << 20)
holder = open(locked, "rb")
fcntl.flock(holder, fcntl.LOCK_EX)
rc, _, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", locked])
F.check(rc == 1 and b"being written by another process" in err,
        f"restore onto a locked file: refused: {err!r}")
F.check(read(locked)[:4096] == bytes(4096), "restore onto a locked file: nothing written")
rc, _, err = common.run([common.ours("thin_repair"), "-i", img, "-o", locked])
F.check(rc == 1 and b"being written by another process" in err,
        f"repair onto a locked file: refused: {err!r}")
lk2 = os.path.join(W, "locked2.bin")
with open(lk2, "wb") as f:
    f.write(read(img))
h2f = open(lk2, "rb")
fcntl.flock(h2f, fcntl.LOCK_EX)
rc, _, err = common.run([common.ours("thin_check"), "--auto-repair", lk2])
F.check(rc == 1 and b"being written by another process" in err,
        f"check --auto-repair on a locked file: refused: {err!r}")
h2f.close()
holder.close()
rc, _, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", locked])
F.check(rc == 0, f"restore once the lock is gone: {err!r}")

# Item 7: SIGINT in thin_restore's write phase leaves a zeroed superblock (the old metadata is
# no longer valid, the new one not yet); the next thin_check / thin_dump says what to do.
# The write phase lasts tens of milliseconds: on a loaded machine the watcher may not run in
# time, so the restore runs at the lowest priority (the watcher then gets the CPU first) and
# a missed run is tried again.
victim = os.path.join(W, "victim.bin")
zeroed = False
for attempt in range(8):
    with open(victim, "wb") as f:
        f.write(read(big))
    p = subprocess.Popen(["nice", "-n", "19", common.ours("thin_restore"), "-i", big_xml, "-o", victim],
                         stderr=subprocess.PIPE)
    # Watch for the write phase (the old superblock zeroed first), then interrupt it.
    with open(victim, "rb") as f:
        while p.poll() is None:
            f.seek(0)
            if f.read(4096) == bytes(4096):
                p.send_signal(signal.SIGINT)
                break
    p.communicate()
    head = read(victim)[:4096]
    F.check(head == bytes(4096) or p.returncode == 0,
            f"restore SIGINT in the write phase: superblock zeroed ({p.returncode})")
    if p.returncode != 0 and head == bytes(4096):
        zeroed = True
        break
F.check(zeroed, "restore SIGINT: a run was caught in its write phase")
if zeroed:
    rc, _, err = common.run([common.ours("thin_check"), victim])
    F.check(rc == 1 and b"run thin_restore or thin_repair again" in err,
            f"thin_check after an interrupted restore points at thin_restore: {err!r}")
    rc, _, err = common.run([DUMP, victim])
    F.check(rc == 1 and b"thin_restore or thin_repair" in err,
            f"thin_dump after an interrupted restore points at thin_restore: {err!r}")

F.finish()
