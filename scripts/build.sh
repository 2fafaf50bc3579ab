#!/usr/bin/env bash
# Configure and build thinmeta into build/ (Release with debug info).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTHINMETA_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
