// SPDX-License-Identifier: GPL-3.0-or-later
#include "xml/metadata_reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string>

#include <expat.h>

#include "xml/elements.h"

namespace thinmeta::xml {

namespace {

Tag tag_of(const char* n) {
  switch (n[0]) {
    case 's':
      if (!std::strcmp(n, "single_mapping")) return Tag::kSingle;
      if (!std::strcmp(n, "superblock")) return Tag::kSuperblock;
      break;
    case 'r':
      if (!std::strcmp(n, "range_mapping")) return Tag::kRange;
      if (!std::strcmp(n, "ref")) return Tag::kRef;
      break;
    case 'd':
      if (!std::strcmp(n, "device")) return Tag::kDevice;
      if (!std::strcmp(n, "def")) return Tag::kDef;
      break;
  }
  return Tag::kUnknown;
}

struct Want {
  const char* name;
  std::uint64_t max;
  bool required;
  std::uint64_t value = 0;
  const char* text = nullptr;  // string attributes (name) keep the raw text
  bool found = false;
};

constexpr std::uint64_t kU32 = 0xFFFFFFFFull;
constexpr std::uint64_t kU64 = ~0ull;
constexpr std::uint64_t kText = 0;  // max 0 marks a string attribute

class Reader {
 public:
  explicit Reader(thin::MetadataSink& sink) : sink_(sink), p_(XML_ParserCreate(nullptr)) {
    XML_SetUserData(p_, this);
    XML_SetElementHandler(p_, &Reader::start_thunk, &Reader::end_thunk);
  }
  ~Reader() { XML_ParserFree(p_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  Result<> parse(const char* data, std::size_t len, bool last) {
    if (!p_) return fail(Errc::kIo, "out of memory creating the XML parser");
    if (XML_Parse(p_, data, static_cast<int>(len), last) == XML_STATUS_OK) return {};
    return error_or_expat();
  }

  Result<> parse_fd(int fd) {
    if (!p_) return fail(Errc::kIo, "out of memory creating the XML parser");
    constexpr int kChunk = 1 << 20;
    for (;;) {
      void* buf = XML_GetBuffer(p_, kChunk);
      if (!buf) return fail(Errc::kIo, "out of memory reading the XML");
      ssize_t n = ::read(fd, buf, kChunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        return fail(Errc::kIo, std::string("Couldn't read the input: ") + std::strerror(errno));
      if (XML_ParseBuffer(p_, static_cast<int>(n), n == 0) != XML_STATUS_OK)
        return error_or_expat();
      if (n == 0) return {};
    }
  }

 private:
  static void start_thunk(void* self, const XML_Char* name, const XML_Char** atts) {
    static_cast<Reader*>(self)->start(name, atts);
  }
  static void end_thunk(void* self, const XML_Char*) { static_cast<Reader*>(self)->end(); }

  Result<> error_or_expat() {
    if (error_) return std::unexpected(*error_);
    return fail(Errc::kXmlSyntax, where() + XML_ErrorString(XML_GetErrorCode(p_)));
  }

  std::string where() const {
    return "XML error at line " + std::to_string(XML_GetCurrentLineNumber(p_)) + ", column " +
           std::to_string(XML_GetCurrentColumnNumber(p_) + 1) + ": ";
  }

  void stop(const Error& e) {
    if (error_) return;
    error_ = Error{e.code, where() + e.what};
    XML_StopParser(p_, XML_FALSE);
  }
  void stop(std::string what) { stop(Error{Errc::kBadFormat, std::move(what)}); }
  void check(const Result<>& r) {
    if (!r) stop(r.error());
  }

  // Fills `w` from atts; false (after stop()) if one is missing, not a number in range, or
  // not an attribute of this tag (a typo such as lenght= must not be dropped silently).
  template <std::size_t N>
  bool get(const XML_Char* tag, const XML_Char** atts, Want (&w)[N]) {
    for (; *atts; atts += 2) {
      if (std::none_of(std::begin(w), std::end(w),
                       [&](const Want& x) { return !std::strcmp(atts[0], x.name); })) {
        stop("unknown attribute '" + std::string(atts[0]) + "' in tag '" + tag + "'");
        return false;
      }
      for (Want& x : w) {
        if (std::strcmp(atts[0], x.name) != 0) continue;
        x.found = true;
        const char* s = atts[1];
        if (x.max == kText) {
          x.text = s;
          break;
        }
        std::size_t len = std::strlen(s);
        auto r = std::from_chars(s, s + len, x.value);
        if (len == 0 || r.ptr != s + len || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range)) {
          stop("attribute " + std::string(x.name) + " is not a number: '" + s + "'");
          return false;
        }
        if (r.ec == std::errc::result_out_of_range || x.value > x.max) {
          stop("attribute " + std::string(x.name) + " is out of range: '" + s + "'");
          return false;
        }
        break;
      }
    }
    for (Want& x : w)
      if (x.required && !x.found) {
        stop("could not find attribute: " + std::string(x.name));
        return false;
      }
    return true;
  }

  void start(const XML_Char* name, const XML_Char** atts) {
    if (error_) return;
    Tag t = tag_of(name);
    if (t == Tag::kUnknown) return stop("unknown tag type '" + std::string(name) + "'");
    if (!allowed_in(t, parent_))
      return stop(std::string("<") + name + "> is not allowed " +
                  (parent_ == Tag::kNone ? std::string("as the document element")
                                         : "here (inside <" + std::string(tag_name(parent_)) + ">)"));
    switch (t) {
      case Tag::kSuperblock: {
        Want w[] = {{"uuid", kText, false},         {"time", kU32, true},
                    {"transaction", kU64, true},    {"flags", kU32, false},
                    {"version", kU32, false},       {"data_block_size", kU32, true},
                    {"nr_data_blocks", kU64, true}, {"metadata_snap", kU64, false}};
        if (!get(name, atts, w)) return;
        thin::SuperblockInfo sb;
        sb.uuid = w[0].text ? w[0].text : "";
        sb.time = static_cast<std::uint32_t>(w[1].value);
        sb.trans_id = w[2].value;
        sb.flags = static_cast<std::uint32_t>(w[3].value);
        sb.version = w[4].found ? static_cast<std::uint32_t>(w[4].value) : 2;
        sb.data_block_size = static_cast<std::uint32_t>(w[5].value);
        sb.nr_data_blocks = w[6].value;
        if (w[7].found) sb.metadata_snap = w[7].value;
        check(sink_.begin_superblock(sb));
        break;
      }
      case Tag::kDevice: {
        Want w[] = {{"dev_id", kU32, true},
                    {"mapped_blocks", kU64, true},
                    {"transaction", kU64, true},
                    {"creation_time", kU32, true},
                    {"snap_time", kU32, true}};
        if (!get(name, atts, w)) return;
        thin::DeviceInfo d;
        d.dev_id = w[0].value;
        d.details.mapped_blocks = w[1].value;
        d.details.transaction_id = w[2].value;
        d.details.creation_time = static_cast<std::uint32_t>(w[3].value);
        d.details.snapshotted_time = static_cast<std::uint32_t>(w[4].value);
        check(sink_.begin_device(d));
        break;
      }
      case Tag::kSingle: {
        Want w[] = {{"origin_block", kU64, true}, {"data_block", kU64, true}, {"time", kU32, true}};
        if (!get(name, atts, w)) return;
        check(sink_.map(thin::MappingRun{w[0].value, w[1].value, 1,
                                         static_cast<std::uint32_t>(w[2].value)}));
        break;
      }
      case Tag::kRange: {
        Want w[] = {{"origin_begin", kU64, true},
                    {"data_begin", kU64, true},
                    {"length", kU64, true},
                    {"time", kU32, true}};
        if (!get(name, atts, w)) return;
        check(sink_.map(thin::MappingRun{w[0].value, w[1].value, w[2].value,
                                         static_cast<std::uint32_t>(w[3].value)}));
        break;
      }
      case Tag::kDef:
      case Tag::kRef: {
        Want w[] = {{"name", kText, true}};
        if (!get(name, atts, w)) return;
        check(t == Tag::kDef ? sink_.begin_def(w[0].text) : sink_.ref(w[0].text));
        break;
      }
      default: break;
    }
    stack_[depth_++] = t;
    parent_ = t;
  }

  void end() {
    if (error_ || depth_ == 0) return;
    Tag t = stack_[--depth_];
    parent_ = depth_ ? stack_[depth_ - 1] : Tag::kNone;
    switch (t) {
      case Tag::kSuperblock: check(sink_.end_superblock()); break;
      case Tag::kDevice: check(sink_.end_device()); break;
      case Tag::kDef: check(sink_.end_def()); break;
      default: break;
    }
  }

  static const char* tag_name(Tag t) {
    switch (t) {
      case Tag::kSuperblock: return "superblock";
      case Tag::kDevice: return "device";
      case Tag::kDef: return "def";
      case Tag::kSingle: return "single_mapping";
      case Tag::kRange: return "range_mapping";
      case Tag::kRef: return "ref";
      default: return "?";
    }
  }

  thin::MetadataSink& sink_;
  XML_Parser p_;
  Tag stack_[4] = {};  // allowed_in() bounds the depth at 3
  unsigned depth_ = 0;
  Tag parent_ = Tag::kNone;
  std::optional<Error> error_;
};

}  // namespace

Result<> read_metadata(int fd, thin::MetadataSink& sink) {
  Reader r(sink);
  return r.parse_fd(fd);
}

Result<> read_metadata(std::string_view text, thin::MetadataSink& sink) {
  Reader r(sink);
  constexpr std::size_t kChunk = 1 << 30;
  while (text.size() > kChunk) {
    THINMETA_CHECK(r.parse(text.data(), kChunk, false));
    text.remove_prefix(kChunk);
  }
  return r.parse(text.data(), text.size(), true);
}

}  // namespace thinmeta::xml
