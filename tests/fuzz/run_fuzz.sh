#!/usr/bin/env bash
# Builds the AFL++ target over the superblock + btree readers (with ASan/UBSan) and fuzzes it
# for a bounded time (default 60 s; FUZZ_SECONDS overrides). Fails if AFL++ found a crash or a
# hang. Seeds are small images restored by the reference thin_restore.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${FUZZ_WORK:-$top/build/fuzz}
secs=${FUZZ_SECONDS:-60}
command -v afl-clang-fast++ >/dev/null || { echo "FAIL: afl-clang-fast++ missing (scripts/setup.sh installs afl++ and clang)"; exit 1; }
mkdir -p "$out/seeds"
bin="$out/fuzz_metadata"
# The readers under test (listed, not globbed: the fuzz build uses clang 14, see
# persistent-data/expected_compat.h).
srcs=""
for f in persistent-data/btree/btree_node.cc persistent-data/btree/btree_walker.cc persistent-data/checksum.cc persistent-data/helper_thread.cc \
         persistent-data/crc32c.cc persistent-data/io/io_engine.cc thin/dump.cc thin/human_readable.cc \
         thin/mapping_tree.cc thin/metadata.cc thin/superblock.cc thin/text_output.cc \
         persistent-data/io/open_engine.cc persistent-data/io/sync_engine.cc persistent-data/io/aio_engine.cc persistent-data/io/uring_engine.cc persistent-data/io/uring_ring.cc persistent-data/io/io_plan.cc persistent-data/io/mmap_engine.cc \
         xml/metadata_writer.cc; do
  srcs+=" $top/$f"
done
AFL_QUIET=1 AFL_USE_ASAN=1 AFL_USE_UBSAN=1 afl-clang-fast++ -std=c++2b -O1 -g -I"$top" \
  "$here/fuzz_metadata.cc" $srcs -laio -o "$bin" 2>"$out/build.log" || { cat "$out/build.log"; exit 1; }
# Seeds: small restored pools, cut to the blocks they use.
mk_seed() {  # name xml blocks
  printf '%s' "$2" > "$out/seeds/$1.xml"
  truncate -s 0 "$out/seeds/$1.img"; truncate -s $((1024 * 4096)) "$out/seeds/$1.img"
  thin_restore -i "$out/seeds/$1.xml" -o "$out/seeds/$1.img" >/dev/null
  head -c $(($3 * 4096)) "$out/seeds/$1.img" > "$out/seeds/$1.seed"
  rm -f "$out/seeds/$1.img" "$out/seeds/$1.xml"
}
mk_seed tiny '<superblock uuid="" time="1" transaction="5" flags="0" version="2" data_block_size="128" nr_data_blocks="1000">
<device dev_id="1" mapped_blocks="3" transaction="0" creation_time="0" snap_time="1">
<range_mapping origin_begin="0" data_begin="10" length="2" time="0"/>
<single_mapping origin_block="5" data_block="20" time="1"/>
</device>
<device dev_id="7" mapped_blocks="0" transaction="3" creation_time="1" snap_time="1"></device>
</superblock>' 11
multi='<superblock uuid="" time="2" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="2000"><device dev_id="1" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">'
for i in $(seq 0 600); do multi+="<single_mapping origin_block=\"$((i * 2))\" data_block=\"$i\" time=\"1\"/>"; done
multi+='</device></superblock>'
mk_seed multi "$multi" 16
# A kernel-written pool holding a metadata snapshot: exercises the -m path (71 blocks used).
zstd -q -d -f "$top/examples/pool-with-snap.meta.zst" -o "$out/seeds/kernel.img"
head -c $((71 * 4096)) "$out/seeds/kernel.img" > "$out/seeds/kernel.seed"
rm -f "$out/seeds/kernel.img"
find "$out/seeds" -name '*.seed' -size +0 | grep -q . || { echo "FAIL: no fuzz seeds"; exit 1; }
mkdir -p "$out/in" && cp "$out"/seeds/*.seed "$out/in/"
rm -rf "$out/findings"
start=$(date +%s)
AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 \
AFL_SHUFFLE_QUEUE=1 AFL_QUIET=1 AFL_SKIP_BIN_CHECK=1 \
  timeout $((secs + 60)) afl-fuzz -V "$secs" -m none -t 2000 -i "$out/in" -o "$out/findings" -- "$bin" @@ \
  > "$out/afl.log" 2>&1 || true
end=$(date +%s)
stats="$out/findings/default/fuzzer_stats"
[ -f "$stats" ] || { echo "FAIL: afl-fuzz did not run:"; tail -20 "$out/afl.log"; exit 1; }
execs=$(awk -F: '/^execs_done/ {gsub(/ /,"",$2); print $2}' "$stats")
paths=$(awk -F: '/^corpus_count/ {gsub(/ /,"",$2); print $2}' "$stats")
crashes=$(find "$out/findings/default/crashes" -type f -name 'id:*' | wc -l)
hangs=$(find "$out/findings/default/hangs" -type f -name 'id:*' | wc -l)
echo "fuzz: $((end - start)) s, $execs executions, $paths corpus entries, $crashes crashes, $hangs hangs"
if [ "$crashes" -ne 0 ] || [ "$hangs" -ne 0 ]; then
  echo "FAIL: inputs that crash or hang are in $out/findings/default/{crashes,hangs}"
  exit 1
fi
