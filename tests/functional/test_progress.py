# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress on stderr (issue 13, item 15): shown when stderr is a terminal (a pty here), never
on a pipe by default; THINMETA_PROGRESS=0/1 and --no-progress/--progress force it off/on; the
line is erased at the end so stdout and the messages are unchanged. THINMETA_PROGRESS_DELAY_MS=0
replaces the first quiet second so a small image shows every stage."""
import os
import pty
import subprocess

import common
import corpus

F = common.Failures("test_progress")
W = os.path.join(common.work_dir(), "progress")
os.makedirs(W, exist_ok=True)


def on_pty(argv, env):
    """(exit code, what the terminal got on stderr) with stdout to a pipe."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    got = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    p.stdout.read()
    rc = p.wait()
    os.close(master)
    return rc, got


def on_pipe(argv, env):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return p.returncode, p.stderr


xml = os.path.join(W, "pool.xml")
with open(xml, "w") as f:
    f.write(corpus.xml_pool(1, 3, 128, 1000, [(1, 0, 0, 0, [(i, 2 * i, 0) for i in range(200)])]))
img = os.path.join(W, "meta.bin")
with open(img, "wb") as f:
    f.truncate(8 << 20)
common.run([common.ours("thin_restore"), "-i", xml, "-o", img], check=True)
out_xml = os.path.join(W, "out.xml")
out_img = os.path.join(W, "out.bin")
with open(out_img, "wb") as f:
    f.truncate(8 << 20)

data_dev = os.path.join(W, "data.bin")
with open(data_dev, "wb") as f:
    f.truncate(1000 * 128 * 512)

base = dict(os.environ, THINMETA_PROGRESS_DELAY_MS="0")
base.pop("THINMETA_PROGRESS", None)
cases = [
    ("thin_check", [common.ours("thin_check"), img], b"thin_check: examining"),
    ("thin_dump -o", [common.ours("thin_dump"), "-o", out_xml, img], b"thin_dump: dumping"),
    ("thin_restore", [common.ours("thin_restore"), "-i", xml, "-o", out_img],
     b"thin_restore: "),
    ("thin_repair", [common.ours("thin_repair"), "-i", img, "-o", out_img], b"thin_repair: "),
    ("thin_ls", [common.ours("thin_ls"), img], b"thin_ls: listing"),
    ("thin_rmap", [common.ours("thin_rmap"), "--region", "0..5", img], b"thin_rmap: mapping"),
    ("thin_trim", [common.ours("thin_trim"), "--metadata-dev", img, "--data-dev", data_dev],
     b"thin_trim: checking"),
]
for name, argv, mark in cases:
    rc, tty = on_pty(argv, base)
    F.check(rc == 0, f"{name} on a terminal: exit 0 ({rc}): {tty[-200:]!r}")
    F.check(mark in tty and b"\r" in tty, f"{name}: progress on a terminal: {tty[-300:]!r}")
    # Erased at the end: the last thing drawn is a blank-out ending with \r.
    F.check(tty.endswith(b"\r") and tty[:-1].rsplit(b"\r", 1)[-1].strip() == b"",
            f"{name}: the line is erased at the end: {tty[-120:]!r}")
    rc, err = on_pipe(argv, base)
    F.check(mark not in err, f"{name}: no progress on a pipe by default: {err[-200:]!r}")
    rc, tty = on_pty(argv, dict(base, THINMETA_PROGRESS="0"))
    F.check(mark not in tty, f"{name}: THINMETA_PROGRESS=0 silences it on a terminal")
    rc, tty = on_pty(argv[:1] + ["--no-progress"] + argv[1:], base)
    F.check(mark not in tty, f"{name}: --no-progress silences it on a terminal")
    rc, err = on_pipe(argv, dict(base, THINMETA_PROGRESS="1"))
    F.check(mark in err, f"{name}: THINMETA_PROGRESS=1 forces it on a pipe: {err[-200:]!r}")
    rc, err = on_pipe(argv[:1] + ["--progress"] + argv[1:], base)
    F.check(mark in err, f"{name}: --progress forces it on a pipe")

# thin_check's stdout is unchanged by progress, and the phase lines still come one per line.
rc, err = on_pipe([common.ours("thin_check"), img], dict(base, THINMETA_PROGRESS="1"))
lines = [l.split(b"\r")[-1] for l in err.split(b"\n") if l.split(b"\r")[-1].strip()]
F.check(b"examining superblock" in lines[0] or any(l == b"examining superblock" for l in lines),
        f"thin_check: phase lines intact with progress: {err!r}")
# Without a delay override nothing shows on a quick run, even on a terminal.
env = dict(base)
env.pop("THINMETA_PROGRESS_DELAY_MS")
rc, tty = on_pty([common.ours("thin_check"), img], env)
F.check(b"thin_check: examining" not in tty, "a run under a second shows no progress")

F.finish()
