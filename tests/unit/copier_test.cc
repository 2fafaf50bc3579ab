// SPDX-License-Identifier: GPL-3.0-or-later
// The data plane's engine: every queue kind (io_uring, libaio, synchronous) moves the right
// bytes; ReadPipeline delivers every pushed run and marker in order with the source's bytes
// whatever the joins, splits and buffer budget; WritePipeline and copy_extents leave the target
// holding exactly what was written, zeroed ranges reading as zeros; errors name the offset.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "data-plane/copier.h"
#include "data-plane/data_device.h"
#include "persistent-data/io/async_queue.h"

namespace {

using namespace thinmeta;
using namespace thinmeta::dataplane;
using pdata::EngineKind;

constexpr std::uint64_t kSize = 8ull << 20;  // 8 MiB source

// The byte at offset o of the pattern file.
std::uint8_t pattern(std::uint64_t o) { return static_cast<std::uint8_t>((o >> 9) * 7 + (o & 511) * 13 + 1); }

std::string temp_path(const char* dir = "/tmp") {
  std::string t = std::string(dir) + "/thinmeta-copier-XXXXXX";
  int fd = ::mkstemp(t.data());
  EXPECT_GE(fd, 0);
  ::close(fd);
  return t;
}

std::string pattern_file() {
  std::string p = temp_path();
  std::vector<std::uint8_t> buf(kSize);
  for (std::uint64_t o = 0; o < kSize; ++o) buf[o] = pattern(o);
  int fd = ::open(p.c_str(), O_WRONLY);
  EXPECT_EQ(::pwrite(fd, buf.data(), buf.size(), 0), static_cast<ssize_t>(buf.size()));
  ::close(fd);
  return p;
}

std::vector<std::uint8_t> slurp(const std::string& p) {
  struct stat st;
  ::stat(p.c_str(), &st);
  std::vector<std::uint8_t> v(static_cast<std::size_t>(st.st_size));
  int fd = ::open(p.c_str(), O_RDONLY);
  EXPECT_EQ(::pread(fd, v.data(), v.size(), 0), static_cast<ssize_t>(v.size()));
  ::close(fd);
  return v;
}

class CopierTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override { src_path_ = pattern_file(); }
  void TearDown() override {
    ::unlink(src_path_.c_str());
    for (auto& p : extra_) ::unlink(p.c_str());
  }
  CopierOptions opts(std::size_t budget, std::size_t req) {
    CopierOptions o;
    o.buffer_bytes = budget;
    o.max_request_bytes = req;
    o.max_gap_bytes = 64 << 10;
    o.engine = GetParam();
    return o;
  }
  std::string src_path_;
  std::vector<std::string> extra_;
};

TEST_P(CopierTest, QueueMovesBytesAndReportsShortReads) {
  auto q = pdata::make_async_queue(8, GetParam());
  int fd = ::open(src_path_.c_str(), O_RDONLY);
  pdata::AlignedBuffer buf(64);
  for (int i = 0; i < 8; ++i) {
    pdata::AsyncOp op;
    op.fd = fd;
    op.offset = static_cast<std::uint64_t>(i) * 12345;
    op.buf = buf.block(static_cast<std::size_t>(i) * 8);
    op.len = 30000;
    op.tag = static_cast<std::uint64_t>(i);
    q->submit(op);
  }
  pdata::AlignedBuffer tail(1);
  pdata::AsyncOp past;
  past.fd = fd;
  past.offset = kSize - 100;
  past.buf = tail.data();
  past.len = 4096;
  past.tag = 99;
  std::vector<pdata::AsyncDone> done;
  while (q->outstanding()) q->wait(done, true);
  q->submit(past);
  while (q->outstanding()) q->wait(done, true);
  ASSERT_EQ(done.size(), 9u);
  for (const auto& d : done) {
    if (d.tag == 99) {
      EXPECT_EQ(d.err, EIO);
      continue;
    }
    EXPECT_EQ(d.err, 0);
    const std::uint8_t* p = buf.block(static_cast<std::size_t>(d.tag) * 8);
    for (std::uint64_t k = 0; k < 30000; ++k) ASSERT_EQ(p[k], pattern(d.tag * 12345 + k));
  }
  ::close(fd);
}

struct Recorder final : ChunkSink {
  Result<> chunk(const Chunk& c) override {
    got.push_back(c);
    got.back().data = {};
    if (!c.marker) {
      EXPECT_EQ(c.data.size(), c.len);
      for (std::uint64_t k = 0; k < c.len; ++k)
        if (c.data[k] != pattern(c.src + k)) {
          ADD_FAILURE() << "byte " << c.src + k;
          return fail(Errc::kIo, "mismatch");
        }
    }
    return {};
  }
  std::vector<Chunk> got;
};

TEST_P(CopierTest, ReadPipelineDeliversInOrder) {
  auto src = DataDevice::open(src_path_, {});
  ASSERT_TRUE(src.has_value()) << src.error().what;
  std::mt19937_64 rng(42);
  for (std::size_t budget : {std::size_t(128) << 10, std::size_t(2) << 20}) {
    Recorder rec;
    std::vector<std::pair<bool, Extent>> pushed;
    {
      ReadPipeline rp(**src, rec, opts(budget, 64 << 10));
      std::uint64_t dst = 0;
      for (int i = 0; i < 400; ++i) {
        Extent e;
        int shape = static_cast<int>(rng() % 4);
        std::uint64_t base = pushed.empty() ? 0 : pushed.back().second.src + pushed.back().second.len;
        if (shape == 0 || base >= kSize - (300 << 10)) base = (rng() % (kSize / 512 - 1000)) * 512;
        else if (shape == 1) base += (rng() % 64) * 512;  // nearby: joined over a gap
        e.src = base;
        e.len = (1 + rng() % (shape == 3 ? 400 : 40)) * 512;  // some longer than a request
        e.dst = dst;
        e.tag = static_cast<std::uint64_t>(i);
        dst += e.len;
        if (rng() % 5 == 0) {
          ASSERT_TRUE(rp.push_marker(dst, 4096, 1000 + i).has_value());
          pushed.push_back({true, Extent{0, dst, 4096, 1000u + i}});
        }
        ASSERT_TRUE(rp.push(e).has_value());
        pushed.push_back({false, e});
      }
      ASSERT_TRUE(rp.finish().has_value());
    }
    // Chunks: the pushed items in order, data extents possibly cut into consecutive pieces.
    std::size_t k = 0;
    for (const auto& [marker, e] : pushed) {
      std::uint64_t covered = 0;
      while (covered < e.len) {
        ASSERT_LT(k, rec.got.size());
        const Chunk& c = rec.got[k++];
        EXPECT_EQ(c.marker, marker);
        EXPECT_EQ(c.tag, e.tag);
        EXPECT_EQ(c.dst, e.dst + covered);
        if (!marker) { EXPECT_EQ(c.src, e.src + covered); }
        covered += c.len;
      }
      EXPECT_EQ(covered, e.len);
    }
    EXPECT_EQ(k, rec.got.size());
  }
}

TEST_P(CopierTest, ReadPipelineRefusesRunsPastTheEnd) {
  auto src = DataDevice::open(src_path_, {});
  ASSERT_TRUE(src.has_value());
  Recorder rec;
  ReadPipeline rp(**src, rec, opts(1 << 20, 64 << 10));
  auto r = rp.push(Extent{kSize - 4096, 0, 8192, 0});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("beyond the end"), std::string::npos);
  EXPECT_FALSE(rp.finish().has_value());
}

TEST_P(CopierTest, ReadPipelinePassesOnTheSinksError) {
  auto src = DataDevice::open(src_path_, {});
  ASSERT_TRUE(src.has_value());
  struct Failing final : ChunkSink {
    Result<> chunk(const Chunk&) override { return fail(Errc::kBrokenPipe, "Broken pipe"); }
  } sink;
  ReadPipeline rp(**src, sink, opts(256 << 10, 64 << 10));
  Result<> r;
  for (int i = 0; i < 100 && r; ++i) r = rp.push(Extent{static_cast<std::uint64_t>(i) << 16, 0, 4096, 0});
  if (r) r = rp.finish();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().what, "Broken pipe");
}

TEST_P(CopierTest, WritePipelineWritesAndZeroes) {
  std::string dst_path = temp_path();
  ::unlink(dst_path.c_str());
  extra_.push_back(dst_path);
  DeviceOptions o;
  o.writable = true;
  o.create_size = 4 << 20;
  auto dst = DataDevice::open(dst_path, o);
  ASSERT_TRUE(dst.has_value()) << dst.error().what;
  EXPECT_TRUE((*dst)->created());
  std::vector<std::uint8_t> truth(4 << 20, 0);
  std::mt19937_64 rng(7);
  {
    WritePipeline wp(**dst, opts(256 << 10, 64 << 10));
    // Fill everything, then zero some ranges and rewrite parts of them (aligned and not).
    for (std::uint64_t off = 0; off < truth.size(); off += 64 << 10) {
      auto b = wp.buffer(64 << 10);
      ASSERT_TRUE(b.has_value());
      for (std::size_t k = 0; k < (64 << 10); ++k) (*b)[k] = truth[off + k] = pattern(off + k);
      ASSERT_TRUE(wp.write(off, 64 << 10).has_value());
    }
    for (int i = 0; i < 30; ++i) {
      std::uint64_t off = rng() % (truth.size() - 200000), len = 1 + rng() % 200000;
      if (i % 2) {
        off &= ~std::uint64_t(4095);
        len = (len + 4095) & ~std::uint64_t(4095);
      }
      ASSERT_TRUE(wp.make_zero(off, len).has_value());
      std::fill(truth.begin() + static_cast<long>(off), truth.begin() + static_cast<long>(off + len), 0);
      std::vector<std::uint8_t> data(1 + rng() % 100000, static_cast<std::uint8_t>(i + 1));
      std::uint64_t at = rng() % (truth.size() - data.size());
      ASSERT_TRUE(wp.write_copy(at, data).has_value());
      std::copy(data.begin(), data.end(), truth.begin() + static_cast<long>(at));
    }
    ASSERT_TRUE(wp.finish().has_value());
    EXPECT_EQ(wp.completed_below(), wp.completed_below());
    ASSERT_TRUE((*dst)->sync().has_value());
    auto past = wp.write_copy(truth.size() - 10, std::vector<std::uint8_t>(20, 1));
    ASSERT_FALSE(past.has_value());
    EXPECT_NE(past.error().what.find("beyond the end"), std::string::npos);
  }
  EXPECT_TRUE(slurp(dst_path) == truth);
}

TEST_P(CopierTest, CopyExtentsCopiesEveryRun) {
  std::string dst_path = temp_path();
  extra_.push_back(dst_path);
  ::truncate(dst_path.c_str(), kSize);
  auto src = DataDevice::open(src_path_, {});
  DeviceOptions o;
  o.writable = true;
  auto dst = DataDevice::open(dst_path, o);
  ASSERT_TRUE(src.has_value() && dst.has_value());
  std::vector<std::uint8_t> truth(kSize, 0);
  // Disjoint destinations: block i of a shuffled list, in runs that sometimes continue.
  std::vector<Extent> ext;
  std::mt19937_64 rng(3);
  std::vector<std::uint64_t> dsts;
  for (std::uint64_t b = 0; b < kSize / 4096; b += 4) dsts.push_back(b * 4096);
  std::shuffle(dsts.begin(), dsts.end(), rng);
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < dsts.size(); ++i) {
    Extent e{s, dsts[i], 4096 * (1 + rng() % 4), 0};
    if (rng() % 3 == 0 && i > 0) {  // contiguous on both sides with the previous one
      e.src = ext.back().src + ext.back().len;
      e.dst = ext.back().dst + ext.back().len;
      if ((e.dst + e.len - 1) / 16384 != ext.back().dst / 16384) continue;
    }
    if (e.src + e.len > kSize) break;
    ext.push_back(e);
    s = e.src + e.len + 4096 * (rng() % 3);
    for (std::uint64_t k = 0; k < e.len; ++k) truth[e.dst + k] = pattern(e.src + k);
  }
  std::size_t i = 0;
  std::uint64_t last = 0;
  auto r = copy_extents(
      **src, **dst,
      [&]() -> Result<std::optional<Extent>> {
        if (i == ext.size()) return std::optional<Extent>();
        return std::optional<Extent>(ext[i++]);
      },
      opts(512 << 10, 32 << 10), [&](std::uint64_t done) { last = done; });
  ASSERT_TRUE(r.has_value()) << r.error().what;
  std::uint64_t total = 0;
  for (const auto& e : ext) total += e.len;
  EXPECT_EQ(last, total);
  EXPECT_TRUE(slurp(dst_path) == truth);
}

INSTANTIATE_TEST_SUITE_P(Engines, CopierTest,
                         ::testing::Values(EngineKind::kAio, EngineKind::kLibaio, EngineKind::kSync));

TEST(DataDevice, ReportsWhatIsWrongWithThePath) {
  auto missing = DataDevice::open("/nonexistent/thinmeta-x", {});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().what, "Couldn't find input file '/nonexistent/thinmeta-x'");
  auto dir = DataDevice::open("/tmp", {});
  ASSERT_FALSE(dir.has_value());
  EXPECT_EQ(dir.error().what, "Not a block device or regular file '/tmp'.");
}

TEST(DataDevice, FallsBackToBufferedWhereODirectIsRefused) {
  // tmpfs refuses O_DIRECT on some kernels: either way the transfers work.
  std::string p = temp_path("/dev/shm");
  ::truncate(p.c_str(), 1 << 20);
  DeviceOptions o;
  o.writable = true;
  auto d = DataDevice::open(p, o);
  ASSERT_TRUE(d.has_value()) << d.error().what;
  std::vector<std::uint8_t> v(5000, 0xab), back(5000);
  ASSERT_TRUE((*d)->write_at(777, v.data(), v.size()).has_value());
  ASSERT_TRUE((*d)->read_at(777, back.data(), back.size()).has_value());
  EXPECT_EQ(v, back);
  ASSERT_TRUE((*d)->make_zero(1000, 100).has_value());
  ASSERT_TRUE((*d)->read_at(777, back.data(), back.size()).has_value());
  for (std::size_t k = 0; k < back.size(); ++k)
    ASSERT_EQ(back[k], (k + 777 >= 1000 && k + 777 < 1100) ? 0 : 0xab) << k;
  ::unlink(p.c_str());
}

TEST(DataDevice, AReadPastTheEndIsAnIoError) {
  // The file ends inside the read: the part before the end comes back, then nothing (EIO).
  std::string p = temp_path("/tmp");
  ASSERT_EQ(::truncate(p.c_str(), 8192), 0);
  auto d = DataDevice::open(p, {});
  ASSERT_TRUE(d.has_value()) << d.error().what;
  std::vector<std::uint8_t> back(4096);
  EXPECT_TRUE((*d)->read_at(4096, back.data(), back.size()).has_value());
  auto r = (*d)->read_at(6144, back.data(), back.size());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().what, "read of '" + p + "' failed: " + std::strerror(EIO));
  ::unlink(p.c_str());
}

}  // namespace
