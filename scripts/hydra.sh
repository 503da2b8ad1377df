#!/usr/bin/env bash
# ORY Hydra for the external authorization server tests (docs/external-as.md):
# built once from tools/hydra (a Go module of its own, with the replace
# directive Hydra's own go.mod needs) with SQLite, into the user's cache,
# keyed by tools/hydra's go.mod and go.sum. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
key=$(cat tools/hydra/go.mod tools/hydra/go.sum | sha256sum | cut -c1-16)
dir=${XDG_CACHE_HOME:-$HOME/.cache}/csctoken
bin=$dir/hydra-$key
mkdir -p "$dir"
exec 9>"$bin.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "building ORY Hydra into $bin (several minutes the first time)" >&2
  start=$(date +%s)
  (cd tools/hydra && ${GO:-go} build -tags sqlite -trimpath -o "$bin.tmp" github.com/ory/hydra/v2)
  mv "$bin.tmp" "$bin"
  echo "ORY Hydra built in $(( $(date +%s) - start )) s" >&2
fi
echo "$bin"
