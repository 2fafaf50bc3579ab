# SPDX-License-Identifier: GPL-3.0-or-later
"""thin_check --super-block-only checks the superblock alone (issue 13 item 13): a device cut
down to its first block passes when that superblock is sound (1.3.3 passes it), and a bad one
still fails; without the option nothing changes (the cut device fails, as lvm2 expects)."""
import os
import struct

import common
import meta

F = common.Failures("test_check_superblock_only")
W = os.path.join(common.work_dir(), "check_superblock_only")
os.makedirs(W, exist_ok=True)
BS = 4096

corpus = {name: binp for name, _, binp in common.corpus()}
full = open(corpus["snapshots"], "rb").read()
nr_blocks = len(full) // BS


def image(name, data):
    p = os.path.join(W, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def check(path, *args):
    return common.run([common.ours("thin_check")] + list(args) + [path])


def resealed(sb, **fields):
    """The superblock block with fields changed (offsets FORMAT.md §4) and its checksum fixed."""
    b = bytearray(sb)
    offsets = {"held_root": (56, "<Q"), "data_block_size": (336, "<I"), "flags": (4, "<I"),
               "mapping_root": (320, "<Q"), "meta_nr_blocks": (192, "<Q")}
    for k, v in fields.items():
        off, fmt = offsets[k]
        struct.pack_into(fmt, b, off, v)
    meta.fix_checksum(b, "superblock")
    return bytes(b)


sb = full[:BS]
one = image("one.bin", sb)
rc, out, err = check(one, "--super-block-only")
rc_full, out_full, _ = check(corpus["snapshots"], "--super-block-only")
F.check(rc == 0 and out == out_full and rc_full == 0,
        f"a sound superblock on a one-block device passes: {rc} {out!r} {err!r}")
rc, _, err = check(one, "-q", "--super-block-only")
F.check(rc == 0 and err == b"", f"-q --super-block-only: {rc} {err!r}")
# Without the option the cut device is still damage (what lvm2 and initramfs run).
rc, _, err = check(one)
F.check(rc == 1 and b"too short" in err, f"without --super-block-only it fails: {rc} {err!r}")
rc, _, _ = check(one, "--skip-mappings")
F.check(rc == 1, f"--skip-mappings on the cut device fails: {rc}")

# A bad superblock still fails, cut or not.
for name, data in [
        ("bad_checksum", sb[:100] + bytes([sb[100] ^ 1]) + sb[101:]),
        ("zeroed", bytes(BS)),
        ("bad_block_size", resealed(sb, data_block_size=100)),
        ("root_beyond_claim", resealed(sb, mapping_root=nr_blocks + 5)),
        ("no_metadata_blocks", resealed(sb, meta_nr_blocks=0))]:
    for cut in (True, False):
        data_full = data + full[BS:]
        p = image(f"{name}_{cut}.bin", data if cut else data_full)
        rc, _, err = check(p, "--super-block-only")
        F.check(rc == 1 and err, f"{name} ({'cut' if cut else 'whole'}): fails: {rc} {err!r}")

# A held metadata snapshot lies beyond a cut device: the superblock alone passes; with -m the
# held copy is what is asked for, and cannot be read.
held_img = meta.with_held_snapshot(full, nr_blocks - 1)
cut_held = image("cut_held.bin", held_img[:BS])
rc, _, err = check(cut_held, "--super-block-only")
F.check(rc == 0, f"held root beyond the cut device, --super-block-only: {rc} {err!r}")
rc, _, err = check(cut_held, "--super-block-only", "-m")
F.check(rc == 1, f"... with -m it fails: {rc} {err!r}")
whole_held = image("whole_held.bin", held_img)
rc, _, err = check(whole_held, "--super-block-only", "-m")
F.check(rc == 0, f"whole device with a held snapshot, -m --super-block-only: {rc} {err!r}")
# On the whole device the held copy is still read and checked.
bad_held = bytearray(held_img)
bad_held[(nr_blocks - 1) * BS + 200] ^= 1
rc, _, err = check(image("bad_held.bin", bytes(bad_held)), "--super-block-only")
F.check(rc == 1 and b"metadata snapshot" in err, f"a damaged held copy on the device: {rc} {err!r}")

# --clear-needs-check-flag with --super-block-only clears the flag on the cut device.
flagged = image("flagged.bin", resealed(sb, flags=1))
rc, _, err = check(flagged, "--super-block-only", "--clear-needs-check-flag")
after = open(flagged, "rb").read()
F.check(rc == 0 and len(after) == BS and struct.unpack_from("<I", after, 4)[0] == 0 and
        meta.checksum(bytearray(after), "superblock") == struct.unpack_from("<I", after, 0)[0],
        f"--clear-needs-check-flag --super-block-only on the cut device: {rc} {err!r}")

F.finish()
