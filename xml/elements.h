// SPDX-License-Identifier: GPL-3.0-or-later
// The elements of thin_dump's XML (FORMAT.md §12) and where each may appear: shared by the
// expat reader and the fast reader, so both accept the same documents.
#pragma once

namespace thinmeta::xml {

enum class Tag { kNone, kSuperblock, kDevice, kDef, kSingle, kRange, kRef, kUnknown };

inline bool allowed_in(Tag t, Tag parent) {
  switch (t) {
    case Tag::kSuperblock: return parent == Tag::kNone;
    case Tag::kDevice:
    case Tag::kDef: return parent == Tag::kSuperblock;
    case Tag::kSingle:
    case Tag::kRange: return parent == Tag::kDevice || parent == Tag::kDef;
    case Tag::kRef: return parent == Tag::kDevice;
    default: return false;
  }
}

}  // namespace thinmeta::xml
