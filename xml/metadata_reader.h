// SPDX-License-Identifier: GPL-3.0-or-later
// Reads thin_dump XML (FORMAT.md §12, with the 1.x <def>/<ref> form of §12.6) into a
// MetadataSink, streaming: expat, no per-element allocation, memory independent of the input
// size. Every error, the sink's included, names the line and column it was found at.
#pragma once

#include <string_view>

#include "persistent-data/result.h"
#include "thin/sink.h"

namespace thinmeta::xml {

// Parses the whole of `fd` (read until EOF). Returns the first error.
Result<> read_metadata(int fd, thin::MetadataSink& sink);
// Same, from memory (tests).
Result<> read_metadata(std::string_view text, thin::MetadataSink& sink);

}  // namespace thinmeta::xml
