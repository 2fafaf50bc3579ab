// SPDX-License-Identifier: GPL-3.0-or-later
// A fast reader for the XML thin_dump writes (FORMAT.md §12): double-quoted attributes, no
// entities, comments or character data. Anything else, and every error (the sink's too), makes
// it decline, and the caller reads the input again with the expat reader (metadata_reader.h),
// which accepts all XML and names the line and column of each error. Streams the input in
// chunks: memory does not grow with its size.
#pragma once

#include <string_view>

#include "persistent-data/result.h"
#include "thin/sink.h"

namespace thinmeta::xml {

// true: the whole of `fd` (read until EOF) went to `sink`. false: declined part way (the sink
// has seen some events; discard it, rewind and use read_metadata). An error: the input could
// not be read.
Result<bool> read_metadata_fast(int fd, thin::MetadataSink& sink);
// Same, from memory (tests).
Result<bool> read_metadata_fast(std::string_view text, thin::MetadataSink& sink);
// Same as read_metadata_fast(fd), the reading on a helper thread while the calling thread
// feeds the sink (pipelined_reader.cc).
Result<bool> read_metadata_pipelined(int fd, thin::MetadataSink& sink);

}  // namespace thinmeta::xml
