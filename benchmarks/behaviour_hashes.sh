#!/usr/bin/env bash
# Fingerprints of the tracker's behaviour, to show that a refactor changed nothing: the per-sequence boxes and
# scores of `siamtrack eval` on val and val-hard (the shipped settings, and the online model on val), and the
# `siamtrack track` CSVs of the three demo clips (one target each, and three targets on vtest.avi).
#   benchmarks/behaviour_hashes.sh OUT_DIR     (run it on two commits, then: diff A/hashes.txt B/hashes.txt)
# Takes about 5 minutes on 2 cores. Timings are left out: only boxes, scores, lost flags and states count.
set -euo pipefail
out=$(realpath -m "${1:?usage: $0 OUT_DIR}")
data=${SIAMTRACK_DATA:-$(dirname "$(realpath "$0")")/../../shared/data}
videos=$data/videos
mkdir -p "$out"
siamtrack eval "$data/val" --out "$out/val" --no-progress > "$out/val.log"
siamtrack eval "$data/val-hard" --out "$out/val-hard" --no-progress > "$out/val-hard.log"
siamtrack eval "$data/val" --out "$out/val-online" --no-progress --set online_weight=0.5 --set lost_threshold=0.6 \
    > "$out/val-online.log"
siamtrack track "$videos/bag.avi" --box 312.6421,146.8878,105.1309,95.4144 --boxes "$out/bag.csv" --quiet
siamtrack track "$videos/vtest.avi" --box 399,150,30,52 --boxes "$out/vtest.csv" --quiet
siamtrack track "$videos/hockey.mp4" --box 129,47,74,85 --boxes "$out/hockey.csv" --quiet
siamtrack track "$videos/vtest.avi" --box 399,150,30,52 --box 170,140,30,60 --box 90,110,25,50 \
    --boxes "$out/vtest-three.csv" --quiet
cd "$out"
{ find val val-hard val-online -path '*siamtrack*' -name '*.txt' ! -path '*times*' | sort | xargs sha256sum
  sha256sum bag.csv vtest.csv hockey.csv vtest-three.csv; } > hashes.txt
echo "$(wc -l < hashes.txt) files; digest $(sha256sum hashes.txt | cut -d' ' -f1) ($out/hashes.txt)"
