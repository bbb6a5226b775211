#!/usr/bin/env bash
# Regenerates src/api from the .proto files in api/. Generated code is committed;
# test/unit/codegen.test.ts fails when running this would change it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../src/api"}
cd "$here"
rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#out: ../src/api#out: $out#" buf.gen.yaml > "$tmp/buf.gen.yaml"
"$here/../node_modules/.bin/buf" generate --template "$tmp/buf.gen.yaml" .
