#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# thin_delta and thin_ls benchmark: a thin wrapper over bench/bench.py (see its --help).
exec python3 "$(dirname "$0")/bench.py" --only delta,ls "$@"
