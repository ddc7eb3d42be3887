#!/usr/bin/env bash
# Regenerate the published tables in results/leaderboard/ from a fresh default-profile run:
#   bash scripts/publish_leaderboard.sh            (or pass existing run directories to merge them)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
  genbench run --all --profile default --out results/runs | tee /tmp/genbench-publish.log || true
  set -- "$(ls -d results/runs/*/ | tail -1)"
fi
mkdir -p results/leaderboard
for fmt in md csv json html; do
  genbench leaderboard "$@" --format "$fmt" -o "results/leaderboard/leaderboard.$fmt"
done
