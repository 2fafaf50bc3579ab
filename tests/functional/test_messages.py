# SPDX-License-Identifier: GPL-3.0-or-later
"""Messages (issue 13): item 6, thin_restore refuses mappings newer than the superblock time
with one clear line and leaves the output untouched."""
import os

import common
import corpus

F = common.Failures("test_messages")
W = os.path.join(common.work_dir(), "messages")
os.makedirs(W, exist_ok=True)

xml = os.path.join(W, "future.xml")
with open(xml, "w") as f:
    f.write(corpus.xml_pool(1, 3, 128, 1000, [(1, 0, 0, 0, [(0, 0, 10)])]))
out = os.path.join(W, "out.bin")
with open(out, "wb") as f:
    f.truncate(8 << 20)
rc, _, err = common.run([common.ours("thin_restore"), "-i", xml, "-o", out])
F.check(rc == 1 and b"mapping time 10 is newer than the superblock time 1" in err
        and err.count(b"\n") == 1, f"restore: a mapping newer than the pool refused: {err!r}")
with open(out, "rb") as f:
    F.check(f.read(4096) == bytes(4096), "restore: output untouched")

F.finish()
