#!/usr/bin/env bash
# Batch throughput on ../shared/data/val-hard (21 videos, 9920 frames), configurations one after another in one
# run: a shell loop of `siamtrack track`, `siamtrack batch` with 1 and 2 local workers, and on local Ray; then
# whether every CSV is byte-identical to the loop's. Run from the repository root with siamtrack installed
# ('.[batch]' for Ray). Prints figures; writes into a temporary folder. About 15 minutes on 2 cores.
set -euo pipefail
VH=$(cd "$(dirname "$0")/../.." && pwd)/shared/data/val-hard
[ -d "$VH" ] || { echo "needs ../shared/data/val-hard beside the repository" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
frames=$(cat "$VH"/*/groundtruth.txt | grep -c .)
mkdir "$work/loop"
start=$(date +%s.%N)
for d in "$VH"/*/; do
    n=$(basename "$d"); box=$(head -1 "$d/groundtruth.txt" | tr -d ' \r')
    siamtrack track "$d/video.mp4" --box="$box" --boxes "$work/loop/$n.csv" --quiet 2>/dev/null
done
end=$(date +%s.%N)
python3 -c "print(f'loop of siamtrack track: {$frames} frames in {$end - $start:.1f} s = {$frames / ($end - $start):.1f} frames/s')"
for cfg in "--workers 1" "--workers 2 --threads 1" "--workers 1 --threads 1" "--workers 2 --threads 1 --ray"; do
    tag=$(echo "$cfg" | tr -d ' -')
    echo -n "batch $cfg: "
    siamtrack batch "$VH" --out "$work/$tag" $cfg --no-progress 2>&1 | grep "frames/s across"
    same=0
    for f in "$work"/loop/*.csv; do cmp -s "$f" "$work/$tag/$(basename "$f")" && same=$((same + 1)); done
    echo "  $same of $(ls "$work"/loop/*.csv | wc -l) CSVs byte-identical to the loop's"
done
