// SPDX-License-Identifier: GPL-3.0-or-later
#include "xml/fast_reader.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "xml/elements.h"

namespace thinmeta::xml {

namespace {

struct Attr {
  const char* name;
  std::uint8_t len;
  bool required;
  bool text;  // else a number no greater than `max`
  std::uint64_t max;
};

constexpr std::uint64_t kU32 = 0xFFFFFFFFull;
constexpr std::uint64_t kU64 = ~0ull;

constexpr Attr kSuperblockAttrs[] = {
    {"uuid", 4, false, true, 0},           {"time", 4, true, false, kU32},
    {"transaction", 11, true, false, kU64}, {"flags", 5, false, false, kU32},
    {"version", 7, false, false, kU32},     {"data_block_size", 15, true, false, kU32},
    {"nr_data_blocks", 14, true, false, kU64}, {"metadata_snap", 13, false, false, kU64}};
constexpr Attr kDeviceAttrs[] = {{"dev_id", 6, true, false, kU32},
                                 {"mapped_blocks", 13, true, false, kU64},
                                 {"transaction", 11, true, false, kU64},
                                 {"creation_time", 13, true, false, kU32},
                                 {"snap_time", 9, true, false, kU32}};
constexpr Attr kSingleAttrs[] = {{"origin_block", 12, true, false, kU64},
                                 {"data_block", 10, true, false, kU64},
                                 {"time", 4, true, false, kU32}};
constexpr Attr kRangeAttrs[] = {{"origin_begin", 12, true, false, kU64},
                                {"data_begin", 10, true, false, kU64},
                                {"length", 6, true, false, kU64},
                                {"time", 4, true, false, kU32}};
constexpr Attr kNameAttrs[] = {{"name", 4, true, true, 0}};

struct TagInfo {
  const char* name;
  std::uint8_t len;
  const Attr* attrs;
  std::uint8_t nr_attrs;
};

constexpr TagInfo kTags[] = {
    {"", 0, nullptr, 0},
    {"superblock", 10, kSuperblockAttrs, 8},
    {"device", 6, kDeviceAttrs, 5},
    {"def", 3, kNameAttrs, 1},
    {"single_mapping", 14, kSingleAttrs, 3},
    {"range_mapping", 13, kRangeAttrs, 4},
    {"ref", 3, kNameAttrs, 1},
};

const TagInfo& info(Tag t) { return kTags[static_cast<int>(t)]; }

// memcmp for the short names here, inlined (a call per attribute shows in profiles).
inline bool same(const char* a, const char* b, std::size_t len) {
  for (std::size_t i = 0; i < len; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

Tag tag_of(const char* n, std::size_t len) {
  if (len == 13 && same(n, "range_mapping", 13)) return Tag::kRange;  // nearly every tag
  for (int i = 1; i < 7; ++i)
    if (kTags[i].len == len && same(kTags[i].name, n, len)) return static_cast<Tag>(i);
  return Tag::kNone;
}

inline bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
inline bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

enum class Step { kOk, kNeedMore, kDecline };

class FastReader {
 public:
  FastReader(thin::MetadataSink& sink, int fd) : sink_(sink), fd_(fd) {
    if (fd_ >= 0) {
      storage_ = std::make_unique_for_overwrite<char[]>(kBufSize);
      p_ = end_ = storage_.get();
    }
  }
  void set_text(std::string_view text) {
    p_ = text.data();
    end_ = text.data() + text.size();
    eof_ = true;
  }

  Result<bool> run() {
    for (;;) {
      // The indent before a mapping line in one step (~1 compare a line instead of 4 a byte).
      if (end_ - p_ >= 6 && std::memcmp(p_, "\n    <", 6) == 0)
        p_ += 5;
      else
        while (p_ < end_ && is_ws(*p_)) ++p_;
      if (p_ == end_) {
        if (eof_) return depth_ == 0 && seen_root_;
        THINMETA_CHECK(refill());
        continue;
      }
      if (*p_ != '<' || (depth_ == 0 && seen_root_)) return false;
      Step step = canonical_mapping();
      if (step == Step::kNeedMore) step = tag();  // not that line: any tag
      switch (step) {
        case Step::kOk: break;
        case Step::kDecline: return false;
        case Step::kNeedMore:
          // A tag longer than the buffer is not one thin_dump writes.
          if (eof_ || (p_ == storage_.get() && end_ == p_ + kBufSize)) return false;
          THINMETA_CHECK(refill());
          break;
      }
    }
  }

 private:
  static constexpr std::size_t kBufSize = 1 << 20;

  // Keeps [p_, end_) and reads more after it.
  Result<> refill() {
    char* base = storage_.get();
    std::size_t keep = static_cast<std::size_t>(end_ - p_);
    if (p_ != base) std::memmove(base, p_, keep);
    p_ = base;
    end_ = base + keep;
    for (;;) {
      ssize_t n = ::read(fd_, base + keep, kBufSize - keep);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return fail(Errc::kIo, std::string("Couldn't read the input: ") + std::strerror(errno));
      if (n == 0) eof_ = true;
      end_ += n;
      return {};
    }
  }

  // Digits at q up to the closing quote, no more than `max` (q moves past the digits); false if
  // anything else or `end` comes first. Eight digits at a time where eight bytes are left (a
  // SWAR step: no branch per digit); up to 19 digits cannot overflow 64 bits, a 20th is checked.
  [[gnu::always_inline]] static bool number(const char*& q, const char* end, std::uint64_t max,
                                             std::uint64_t& v) {
    const char* digits = q;
    v = 0;
    if (end - q >= 8) {
      std::uint64_t w;
      std::memcpy(&w, q, 8);
      // A byte's top bit set where it is no digit: above '9' (+0x46 carries into bit 7) or below
      // '0' (-0x30 borrows); carries and borrows cross only from a byte that is no digit, into
      // later bytes, so the first non-digit byte is flagged right.
      std::uint64_t other = ((w + 0x4646464646464646ull) | (w - 0x3030303030303030ull)) &
                            0x8080808080808080ull;
      unsigned n = other ? static_cast<unsigned>(std::countr_zero(other)) / 8 : 8;
      if (n == 0) return false;
      // The n digits to the top bytes (little-endian: the first digit is the lowest byte), the
      // bytes shifted in are leading zeros; then pairs, fours and eights of digits joined.
      w <<= 8 * (8 - n);
      w = ((w & 0x0F0F0F0F0F0F0F0Full) * 2561) >> 8;
      w = ((w & 0x00FF00FF00FF00FFull) * 6553601) >> 16;
      v = ((w & 0x0000FFFF0000FFFFull) * 42949672960001ull) >> 32;
      q += n;
      if (n < 8) return q < end && *q == '"' && v <= max;
    }
    while (q < end && *q >= '0' && *q <= '9' && q - digits < 19)
      v = v * 10 + static_cast<unsigned>(*q++ - '0');
    if (q < end && *q >= '0' && *q <= '9') {
      if (__builtin_mul_overflow(v, 10u, &v) ||
          __builtin_add_overflow(v, static_cast<unsigned>(*q++ - '0'), &v))
        return false;
      if (q < end && *q >= '0' && *q <= '9') return false;
    }
    return q != digits && q < end && *q == '"' && v <= max;
  }

  // The lines thin_dump writes for nearly every mapping (range and single), matched literally.
  // kNeedMore (nothing consumed) if p_ is anything else, for tag() to read.
  Step canonical_mapping() {
    static constexpr std::size_t kLongest = 29 + 20 + 14 + 20 + 10 + 20 + 8 + 10 + 3;
    const char* q = p_;
    std::uint64_t v[4];
    Tag t;
    if (static_cast<std::size_t>(end_ - q) < kLongest + 1) return Step::kNeedMore;
    if (std::memcmp(q, "<range_mapping origin_begin=\"", 29) == 0) {
      q += 29;
      if (!number(q, end_, kU64, v[0]) || std::memcmp(q, "\" data_begin=\"", 14) != 0)
        return Step::kNeedMore;
      q += 14;
      if (!number(q, end_, kU64, v[1]) || std::memcmp(q, "\" length=\"", 10) != 0)
        return Step::kNeedMore;
      q += 10;
      if (!number(q, end_, kU64, v[2])) return Step::kNeedMore;
      t = Tag::kRange;
    } else if (std::memcmp(q, "<single_mapping origin_block=\"", 30) == 0) {
      q += 30;
      if (!number(q, end_, kU64, v[0]) || std::memcmp(q, "\" data_block=\"", 14) != 0)
        return Step::kNeedMore;
      q += 14;
      if (!number(q, end_, kU64, v[1])) return Step::kNeedMore;
      v[2] = 1;
      t = Tag::kSingle;
    } else {
      return Step::kNeedMore;
    }
    if (end_ - q < 8 || std::memcmp(q, "\" time=\"", 8) != 0) return Step::kNeedMore;
    q += 8;
    if (!number(q, end_, kU32, v[3]) || end_ - q < 3 || std::memcmp(q, "\"/>", 3) != 0)
      return Step::kNeedMore;
    if (!allowed_in(t, parent())) return Step::kNeedMore;
    if (!sink_.map(thin::MappingRun{v[0], v[1], v[2], static_cast<std::uint32_t>(v[3])}))
      return Step::kDecline;
    p_ = q + 3;
    return Step::kOk;
  }

  // One tag at p_ ('<'); p_ moves past it only when it was whole and went to the sink.
  Step tag() {
    const char* q = p_ + 1;
    if (q == end_) return Step::kNeedMore;
    if (*q == '/') return end_tag(q + 1);
    const char* name = q;
    while (q < end_ && is_name_char(*q)) ++q;
    if (q == end_) return Step::kNeedMore;
    Tag t = tag_of(name, static_cast<std::size_t>(q - name));
    if (t == Tag::kNone || depth_ >= 3 || !allowed_in(t, parent())) return Step::kDecline;
    const TagInfo& ti = info(t);
    std::uint64_t vals[8];
    std::string_view texts[8];
    unsigned found = 0;
    int next_attr = 0;
    bool empty = false;
    for (;;) {
      const char* ws = q;
      while (q < end_ && is_ws(*q)) ++q;
      if (q == end_) return Step::kNeedMore;
      if (*q == '>') {
        ++q;
        break;
      }
      if (*q == '/') {
        if (q + 1 == end_) return Step::kNeedMore;
        if (q[1] != '>') return Step::kDecline;
        q += 2;
        empty = true;
        break;
      }
      if (q == ws || !is_name_start(*q)) return Step::kDecline;
      const char* an = q;
      while (q < end_ && is_name_char(*q)) ++q;
      std::size_t alen = static_cast<std::size_t>(q - an);
      while (q < end_ && is_ws(*q)) ++q;
      if (q == end_) return Step::kNeedMore;
      if (*q != '=') return Step::kDecline;
      ++q;
      while (q < end_ && is_ws(*q)) ++q;
      if (q == end_) return Step::kNeedMore;
      if (*q != '"') return Step::kDecline;
      ++q;
      // Attributes usually come in the order thin_dump writes them: try the next one first.
      int k = next_attr;
      if (k >= ti.nr_attrs || ti.attrs[k].len != alen || !same(ti.attrs[k].name, an, alen)) {
        k = 0;
        while (k < ti.nr_attrs && (ti.attrs[k].len != alen || !same(ti.attrs[k].name, an, alen)))
          ++k;
      }
      if (k == ti.nr_attrs || (found & (1u << k))) return Step::kDecline;
      next_attr = k + 1;
      found |= 1u << k;
      const Attr& a = ti.attrs[k];
      if (a.text) {
        const char* v = q;
        while (q < end_ && *q != '"') {
          unsigned char c = static_cast<unsigned char>(*q);
          if (c == '&' || c == '<' || c < 0x20 || c >= 0x80) return Step::kDecline;
          ++q;
        }
        if (q == end_) return Step::kNeedMore;
        texts[k] = std::string_view(v, static_cast<std::size_t>(q - v));
      } else {
        std::uint64_t v = 0;
        const char* digits = q;
        while (q < end_ && *q >= '0' && *q <= '9') {
          unsigned d = static_cast<unsigned>(*q - '0');
          if (v > (a.max - d) / 10) return Step::kDecline;
          v = v * 10 + d;
          ++q;
        }
        if (q == end_) return Step::kNeedMore;
        if (*q != '"' || q == digits) return Step::kDecline;
        vals[k] = v;
      }
      ++q;  // the closing quote
    }
    for (int k = 0; k < ti.nr_attrs; ++k)
      if (ti.attrs[k].required && !(found & (1u << k))) return Step::kDecline;
    if (!start(t, vals, texts, found)) return Step::kDecline;
    stack_[depth_++] = t;
    seen_root_ = true;
    if (empty && !end()) return Step::kDecline;
    p_ = q;
    return Step::kOk;
  }

  Step end_tag(const char* q) {
    const char* name = q;
    while (q < end_ && is_name_char(*q)) ++q;
    const char* name_end = q;
    while (q < end_ && is_ws(*q)) ++q;
    if (q == end_) return Step::kNeedMore;
    if (*q != '>' || depth_ == 0) return Step::kDecline;
    const TagInfo& ti = info(stack_[depth_ - 1]);
    if (static_cast<std::size_t>(name_end - name) != ti.len || !same(name, ti.name, ti.len))
      return Step::kDecline;
    if (!end()) return Step::kDecline;
    p_ = q + 1;
    return Step::kOk;
  }

  Tag parent() const { return depth_ ? stack_[depth_ - 1] : Tag::kNone; }

  bool start(Tag t, const std::uint64_t* v, const std::string_view* s, unsigned found) {
    switch (t) {
      case Tag::kSuperblock: {
        thin::SuperblockInfo sb;
        sb.uuid = (found & 1) ? std::string(s[0]) : std::string();
        sb.time = static_cast<std::uint32_t>(v[1]);
        sb.trans_id = v[2];
        sb.flags = (found & (1u << 3)) ? static_cast<std::uint32_t>(v[3]) : 0;
        sb.version = (found & (1u << 4)) ? static_cast<std::uint32_t>(v[4]) : 2;
        sb.data_block_size = static_cast<std::uint32_t>(v[5]);
        sb.nr_data_blocks = v[6];
        if (found & (1u << 7)) sb.metadata_snap = v[7];
        return sink_.begin_superblock(sb).has_value();
      }
      case Tag::kDevice: {
        thin::DeviceInfo d;
        d.dev_id = v[0];
        d.details.mapped_blocks = v[1];
        d.details.transaction_id = v[2];
        d.details.creation_time = static_cast<std::uint32_t>(v[3]);
        d.details.snapshotted_time = static_cast<std::uint32_t>(v[4]);
        return sink_.begin_device(d).has_value();
      }
      case Tag::kSingle:
        return sink_.map(thin::MappingRun{v[0], v[1], 1, static_cast<std::uint32_t>(v[2])})
            .has_value();
      case Tag::kRange:
        return sink_.map(thin::MappingRun{v[0], v[1], v[2], static_cast<std::uint32_t>(v[3])})
            .has_value();
      case Tag::kDef: return sink_.begin_def(s[0]).has_value();
      case Tag::kRef: return sink_.ref(s[0]).has_value();
      default: return false;
    }
  }

  bool end() {
    Tag t = stack_[--depth_];
    switch (t) {
      case Tag::kSuperblock: return sink_.end_superblock().has_value();
      case Tag::kDevice: return sink_.end_device().has_value();
      case Tag::kDef: return sink_.end_def().has_value();
      default: return true;
    }
  }

  thin::MetadataSink& sink_;
  int fd_;
  std::unique_ptr<char[]> storage_;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
  bool eof_ = false;
  bool seen_root_ = false;
  Tag stack_[3] = {};
  unsigned depth_ = 0;
};

}  // namespace

Result<bool> read_metadata_fast(int fd, thin::MetadataSink& sink) {
  FastReader r(sink, fd);
  return r.run();
}

Result<bool> read_metadata_fast(std::string_view text, thin::MetadataSink& sink) {
  FastReader r(sink, -1);
  r.set_text(text);
  return r.run();
}

}  // namespace thinmeta::xml
