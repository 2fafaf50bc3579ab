# SPDX-License-Identifier: GPL-3.0-or-later
"""Messages (issue 13): item 6, thin_restore refuses mappings newer than the superblock time
with one clear line and leaves the output untouched. Items 9 and 12: argument errors are one
line in 1.3.3's wording plus a pointer to --help (no usage block), runtime errors one line."""
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

# Item 12: 1.3.3's wordings; item 9: one line and a pointer to --help, never the usage block.
HELP = "For more information, try '--help'."
INPUT = "the following required arguments were not provided: "
missing = os.path.join(W, "no-such-file")


def arg_error(tool, args, first):
    rc, o, e = common.run([common.ours(tool)] + args)
    lines = e.decode(errors="replace").splitlines()
    if not first.startswith(tool + ": "):
        first = f"{tool}: {first}"  # every error line names its tool
    F.check(rc == 1 and o == b"" and lines == [first, HELP],
            f"{tool} {args}: rc={rc} stderr={lines!r}, expected {[first, HELP]!r}")


for tool in ["thin_check", "thin_dump", "thin_ls", "thin_rmap", "thin_delta", "thin_restore",
             "thin_repair", "thin_trim", "thin_metadata_size", "thin_send", "thin_receive",
             "thin_migrate", "thin_metadata_pack", "thin_metadata_unpack", "thin_shrink"]:
    if os.path.exists(common.ours(tool)):
        arg_error(tool, ["--bogus-option"], f"{tool}: unexpected argument '--bogus-option' found")
for tool in ["thin_check", "thin_dump", "thin_ls"]:
    arg_error(tool, [], INPUT + "<INPUT>")
arg_error("thin_rmap", ["--region", "1..2"], INPUT + "<INPUT>")
arg_error("thin_delta", ["--snap1", "1", "--snap2", "2"], INPUT + "<INPUT>")
arg_error("thin_delta", ["--snap2", "1", missing], "--thin1 or --root1 not specified")
arg_error("thin_delta", ["--thin1", "1", missing], "--thin2 or --root2 not specified")
for tool in ["thin_restore", "thin_repair", "thin_metadata_pack", "thin_metadata_unpack",
             "thin_shrink"]:
    if os.path.exists(common.ours(tool)):
        arg_error(tool, ["-o", out], INPUT + "--input <FILE>")
        arg_error(tool, ["-i", xml], INPUT + "--output <FILE>")
arg_error("thin_repair", ["-i", xml, "-o", out, "extra"],
          "unexpected argument 'extra' found")

# Item 9: a runtime error (a missing input) is one line, with no usage and no --help pointer.
for tool, args in [("thin_delta", ["--snap1", "1", "--snap2", "2", missing]),
                   ("thin_dump", [missing]), ("thin_check", [missing]), ("thin_ls", [missing])]:
    rc, o, e = common.run([common.ours(tool)] + args)
    F.check(rc == 1 and o == b"" and e.count(b"\n") == 1 and b"Usage" not in e,
            f"{tool} on a missing file: one line: {e!r}")

F.finish()
