#!/usr/bin/env bash
# Remakes previous-agent-state.tar.gz and previous-privacy.json with the
# previous release: the commit in previous-release (the last one before the
# agent's state gained its sent log), built from git history. Run from a
# checkout with history:  tools/installtest/testdata/make-previous-state.sh
# The state is a real site agent's after a two-round federated job with
# record-level DP (concord-sim, secure aggregation off to keep it at ~40 KB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
commit=$(cat "$here/previous-release")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
git -C "$here/../../.." archive "$commit" | tar -x -C "$tmp/src"
(cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/concord-fl/concord/internal/version.Stamp=previous-${commit:0:7}" \
  -o "$tmp/bin/" ./cmd/concord-sim ./cmd/site-agent)
"$tmp/bin/concord-sim" --sites 2 --rounds 2 --images 40 --seed 1 --dp-epsilon 4 \
  --secure-aggregation none --out "$tmp/out" > /dev/null
sites=$tmp/out/federation/sites
tar -C "$sites" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - elm-park-clinic |
  gzip -n > "$here/previous-agent-state.tar.gz"
"$tmp/bin/site-agent" privacy --state "$sites/elm-park-clinic" --json > "$here/previous-privacy.json"
echo "made with $("$tmp/bin/site-agent" version) from $commit"
