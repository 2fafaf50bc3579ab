// SPDX-License-Identifier: GPL-3.0-or-later
// dm/table.h: the table and status text the kernel prints for thin and thin-pool targets
// (lines taken from dmsetup on Debian's 6.1 kernel and from lvm2-made pools).
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include "dm/table.h"

namespace thinmeta::dm {
namespace {

TEST(DmTable, ThinParams) {
  auto t = parse_thin_params("253:2 7");
  ASSERT_TRUE(t) << t.error().what;
  EXPECT_EQ(major(t->pool), 253u);
  EXPECT_EQ(minor(t->pool), 2u);
  EXPECT_EQ(t->thin_id, 7u);
  EXPECT_FALSE(t->origin);
}

TEST(DmTable, ThinParamsWithExternalOrigin) {
  auto t = parse_thin_params("253:2 16777215 254:1048575");
  ASSERT_TRUE(t) << t.error().what;
  EXPECT_EQ(t->thin_id, 16777215u);
  ASSERT_TRUE(t->origin);
  EXPECT_EQ(major(*t->origin), 254u);
  EXPECT_EQ(minor(*t->origin), 1048575u);  // minors past 255 use the wide encoding
  EXPECT_EQ(format_dev(*t->origin), "254:1048575");
}

TEST(DmTable, ThinParamsRejected) {
  for (const char* s : {"", "253:2", "253:2 x", "253:2 16777216", "2532 1", "253:2 1 2 3", "253: 1",
                        ":2 1", "253:2 -1"})
    EXPECT_FALSE(parse_thin_params(s)) << s;
}

TEST(DmTable, PoolParams) {
  auto p = parse_pool_params("253:0 253:1 128 0 1 skip_block_zeroing");
  ASSERT_TRUE(p) << p.error().what;
  EXPECT_EQ(format_dev(p->metadata), "253:0");
  EXPECT_EQ(format_dev(p->data), "253:1");
  EXPECT_EQ(p->block_size_sectors, 128u);
  EXPECT_EQ(p->low_water_blocks, 0u);
  ASSERT_EQ(p->features.size(), 1u);
  EXPECT_EQ(p->features[0], "skip_block_zeroing");

  auto q = parse_pool_params("254:16 254:32 2097152 51 0");
  ASSERT_TRUE(q) << q.error().what;
  EXPECT_EQ(q->block_size_sectors, 2097152u);
  EXPECT_EQ(q->low_water_blocks, 51u);
  EXPECT_TRUE(q->features.empty());
}

TEST(DmTable, PoolParamsRejected) {
  for (const char* s :
       {"253:0 253:1 128 0", "253:0 253:1 128 0 2 skip_block_zeroing", "253:0 253:1 100 0 0",
        "253:0 253:1 0 0 0", "253:0 253:1 4194304 0 0", "253:0 x 128 0 0"})
    EXPECT_FALSE(parse_pool_params(s)) << s;
}

TEST(DmTable, PoolStatusHeldAndNot) {
  auto s = parse_pool_status("7 115/1024 15/512 132 rw discard_passdown queue_if_no_space - 256 ");
  ASSERT_TRUE(s) << s.error().what;
  EXPECT_EQ(s->transaction_id, 7u);
  EXPECT_EQ(s->used_metadata_blocks, 115u);
  EXPECT_EQ(s->total_metadata_blocks, 1024u);
  EXPECT_EQ(s->used_data_blocks, 15u);
  EXPECT_EQ(s->total_data_blocks, 512u);
  ASSERT_TRUE(s->held_root);
  EXPECT_EQ(*s->held_root, 132u);
  EXPECT_EQ(s->mode, "rw");
  EXPECT_FALSE(s->needs_check);

  auto n = parse_pool_status(
      "0 114/1024 17/512 - ro discard_passdown error_if_no_space needs_check 256 ");
  ASSERT_TRUE(n) << n.error().what;
  EXPECT_FALSE(n->held_root);
  EXPECT_EQ(n->mode, "ro");
  EXPECT_TRUE(n->needs_check);
}

TEST(DmTable, PoolStatusFailedOrGarbage) {
  auto f = parse_pool_status("Fail");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().what.find("failed"), std::string::npos);
  EXPECT_FALSE(parse_pool_status("Error"));
  EXPECT_FALSE(parse_pool_status(""));
  EXPECT_FALSE(parse_pool_status("7 115/1024 15-512 132 rw"));
  EXPECT_FALSE(parse_pool_status("7 115/1024 15/512 x13 rw"));
}

TEST(DmTable, ThinStatus) {
  auto s = parse_thin_status("1664 25727");
  ASSERT_TRUE(s) << s.error().what;
  EXPECT_EQ(s->mapped_sectors, 1664u);
  EXPECT_EQ(*s->highest_mapped_sector, 25727u);
  auto e = parse_thin_status("0 -");
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->highest_mapped_sector);
  EXPECT_FALSE(parse_thin_status("Fail"));
}

}  // namespace
}  // namespace thinmeta::dm
