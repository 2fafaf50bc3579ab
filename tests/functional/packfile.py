# SPDX-License-Identifier: GPL-3.0-or-later
"""An independent little reader of metadata pack files (PACK.md §1-§5) for the tests: splits a
pack into frames and records and returns each record's instruction bytes, so that our packs
can be compared record by record with those of 1.3.3 (whose record bytes PACK.md §6 fixes)."""
import struct
import zlib

MAGIC = 0xA537A0AA6309EF77


def frames(data):
    """[(offset, compressed length, decompressed bytes)] of a pack file."""
    magic, version, bs, nr = struct.unpack_from("<4Q", data, 0)
    assert magic == MAGIC and version == 3 and bs == 4096, "not a pack"
    out, pos = [], 32
    while len(data) - pos >= 8:
        (n,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, n, zlib.decompress(data[pos + 8: pos + 8 + n])))
        pos += 8 + n
    return out


def _program_len(d, p):
    """Length of the program starting at d[p:] that produces 4096 bytes."""
    start = p

    def run(p, need):
        produced = 0
        while produced < need:
            n = 1
            b = d[p]; p += 1
            while b >> 4 in (7, 8):
                if b >> 4 == 7:
                    n = b & 15
                else:
                    n = (b & 15) << 8 | d[p]; p += 1
                b = d[p]; p += 1
            tag, nib = b >> 4, b & 15
            if tag in (0, 2, 4):
                p += nib
                produced += 8 * n
            elif tag in (1, 3):
                produced += 8 * n
            elif tag == 5:
                produced += 8 * nib
            elif tag == 6:
                produced += 8 * ((nib << 8) | d[p]); p += 1
            elif tag == 9:
                p += nib; produced += nib
            elif tag == 10:
                ln = int.from_bytes(d[p:p + nib], "little"); p += nib + ln; produced += ln
            elif tag == 11:
                cnt = (nib << 8) | d[p]; p += 1
                if cnt:
                    p = run(p, 8 * cnt)
                    p = run(p, 8 * cnt)
                produced += 8 * cnt
            else:
                raise ValueError("bad tag")
        return p

    return run(p, 4096) - start


def records(data):
    """{block number: instruction bytes} of every record of a pack file."""
    out = {}
    for _, _, raw in frames(data):
        p = 0
        while p < len(raw):
            (b,) = struct.unpack_from("<Q", raw, p)
            n = _program_len(raw, p + 8)
            assert b not in out, f"block {b} twice"
            out[b] = raw[p + 8: p + 8 + n]
            p += 8 + n
    return out
