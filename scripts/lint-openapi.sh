#!/usr/bin/env bash
# Lints the OpenAPI document with Redocly's recommended rules; fails on any error.
#
# The document checked is the snapshot the test suite keeps equal to what
# /openapi.json serves (tests/api/ops.rs, `openapi_document_snapshot`).
set -euo pipefail
cd "$(dirname "$0")/.."
doc=$(mktemp --suffix=.json)
trap 'rm -f "$doc"' EXIT
# The snapshot is the JSON after insta's four-line header.
tail -n +5 tests/api/snapshots/api__ops__openapi.snap > "$doc"
npx --yes @redocly/cli@2.77.0 lint --format=summary "$doc"
