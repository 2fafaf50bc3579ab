# SPDX-License-Identifier: GPL-3.0-or-later
"""Worker threads and I/O engines never change what a tool says: every read tool (and
thin_repair's output file) on the whole corpus, on images holding a metadata snapshot, on
images whose devices share subtrees and on damaged images gives the same exit status, stdout
and stderr, byte for byte, with THINMETA_THREADS forced to 1, 2, 3 and 8 and with the sync,
aio and mmap engines. The reference run is one thread with the sync engine (the code path
without workers)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import meta  # noqa: E402
import repair_corpus  # noqa: E402
from shared_trees import shared_image  # noqa: E402
from common import Failures, corpus, ours, run, work_dir  # noqa: E402

F = Failures("test_threads")
FIELDS = ("DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS,SHARED_BLOCKS,MAPPED_SECTORS,EXCLUSIVE_SECTORS,"
          "SHARED_SECTORS,MAPPED_BYTES,EXCLUSIVE_BYTES,SHARED_BYTES,MAPPED,EXCLUSIVE,SHARED,"
          "TRANSACTION,CREATE_TIME,SNAP_TIME")
BASE = {"THINMETA_THREADS": "1", "THINMETA_IO_ENGINE": "sync"}
VARIANTS = [{"THINMETA_THREADS": t, "THINMETA_IO_ENGINE": e}
            for t, e in (("2", "sync"), ("3", "sync"), ("8", "sync"), ("1", "mmap"),
                         ("2", "mmap"), ("2", "aio"), ("3", "aio"))]
DAMAGE_VARIANTS = [VARIANTS[2], VARIANTS[4], VARIANTS[6]]
WD = os.path.join(work_dir(), "threads")
os.makedirs(WD, exist_ok=True)


def commands(binp, held=False):
    """The read tools' command lines on one image (thin_repair: its output is compared too)."""
    img = meta.Image(open(binp, "rb").read())
    try:
        ids = sorted(img.device_roots())
    except Exception:  # noqa: BLE001 -- a damaged superblock or details tree: no pairs
        ids = []
    cmds = [["thin_check", binp], ["thin_check", "--skip-mappings", binp],
            ["thin_check", "--ignore-non-fatal-errors", binp],
            ["thin_dump", binp], ["thin_dump", "--repair", binp],
            ["thin_ls", "-o", FIELDS, binp], ["thin_ls", binp],
            ["thin_rmap", "--region", "0..4294967296", binp],
            ["thin_rmap", "--region", "5..21", "--region", "3000..3100", binp]]
    if ids:
        a, b = ids[0], ids[-1]
        cmds += [["thin_delta", "--snap1", str(a), "--snap2", str(b), binp],
                 ["thin_delta", "--verbose", "--snap1", str(b), "--snap2", str(a), binp]]
    if held:
        cmds += [["thin_dump", "-m", binp], ["thin_ls", "-m", "-o", FIELDS, binp]]
        if ids:
            cmds.append(["thin_delta", "-m", "--snap1", str(ids[0]), "--snap2", str(ids[-1]), binp])
    return cmds


def outcome(argv, env):
    """(exit, stdout, stderr) with the image path and tool prefix kept as they are; thin_repair
    writes a file, whose bytes are part of the outcome."""
    return run([ours(argv[0])] + argv[1:], env=env)


def repair_outcome(binp, env):
    out = os.path.join(WD, "repaired.bin")
    if os.path.exists(out):
        os.unlink(out)
    with open(out, "wb") as f:
        f.truncate(os.path.getsize(binp))
    rc, o, e = run([ours("thin_repair"), "-i", binp, "-o", out], env=env)
    with open(out, "rb") as f:
        data = f.read()
    return rc, o, e, data


def compare(name, binp, held=False, repair=False, variants=VARIANTS):
    for argv in commands(binp, held):
        want = outcome(argv, BASE)
        F.check(want[0] in (0, 1), f"{name} {' '.join(argv[:-1])}: exit {want[0]}")
        for env in variants:
            got = outcome(argv, env)
            F.check(got == want, f"{name} {' '.join(argv[:-1])} with {env}: rc {got[0]} vs "
                    f"{want[0]}, stdout {len(got[1])} vs {len(want[1])} bytes, stderr "
                    f"{got[2][:120]!r} vs {want[2][:120]!r}")
    if repair:
        want = repair_outcome(binp, BASE)
        for env in variants:
            got = repair_outcome(binp, env)
            F.check(got == want, f"{name} thin_repair with {env}: rc {got[0]} vs {want[0]}, "
                    f"output identical: {got[3] == want[3]}")


def free_block(data):
    used = set(repair_corpus.used_blocks(meta.Image(data)))
    return next(b for b in range(1, len(data) // 4096) if b not in used)


images = corpus()
for name, _, binp in images:
    compare(name, binp)

byname = {n: b for n, _, b in images}
for name in ("snapshots", "deep", "many_devices"):
    data = open(byname[name], "rb").read()
    path = os.path.join(WD, name + "-held.bin")
    with open(path, "wb") as f:
        f.write(meta.with_held_snapshot(data, free_block(data)))
    compare(name + " held", path, held=True)

# Devices sharing subtrees (as after kernel snapshots): nodes and a whole tree shared.
compare("snapshots shared", shared_image(byname["snapshots"], os.path.join(WD, "shared.bin"), [
    ("even", 1, 2, 1), ("whole", 1, 3, 0), ("odd", 1, 4, 1)]))
compare("deep shared", shared_image(byname["deep"], os.path.join(WD, "shared-deep.bin"), [
    ("odd", 1, 2, 3)]))

# Damage: every eighth case of the repair score's corpus on two images (flipped bytes in
# leaves, internal nodes, space maps, the details tree; superblock fields), with thin_repair;
# three variants (more threads than work, the mapped engine, the async one) keep it quick.
checks = lambda p: [run([ours("thin_check"), "-q", p], env=BASE)[0] == 0]  # noqa: E731
for name in ("snapshots", "many_devices"):
    src = open(byname[name], "rb").read()
    for i, (label, damaged, _) in enumerate(repair_corpus.cases(src, WD, checks)):
        if i % 8:
            continue
        path = os.path.join(WD, "damaged.bin")
        with open(path, "wb") as f:
            f.write(damaged)
        compare(f"{name} {label}", path, repair=True, variants=DAMAGE_VARIANTS)

F.finish()
