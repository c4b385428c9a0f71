#!/usr/bin/env bash
# bench/scale.sh: how the figures of bench/run.sh grow with the fleet. Runs
# it for each size in BENCH_SCALE_NS (default "1000 10000"), prints every
# table, then how each command's wall time and max RSS grew from the
# smallest fleet to the largest. Linear growth is the size ratio (10x from
# 1,000 to 10,000); less means fixed costs (start-up, policy compile) still
# weigh, more means something grows faster than the fleet.
#
# BENCH_RUNS is passed on. Exit status: non-zero when a run fails.
set -euo pipefail

cd "$(dirname "$0")/.."

read -r -a sizes <<<"${BENCH_SCALE_NS:-1000 10000}"
((${#sizes[@]} >= 2)) || { echo "bench: BENCH_SCALE_NS needs two sizes or more" >&2; exit 1; }

# Run every size first, so the tables are printed together at the end
# rather than scattered among the progress lines.
for n in "${sizes[@]}"; do
	BENCH_N=$n bash bench/run.sh >/dev/null
done

for n in "${sizes[@]}"; do
	echo "### $n instance files"
	echo
	cat ".bench/result-$n.md"
	echo
done

small=${sizes[0]} large=${sizes[-1]}
echo "### Growth from $small to $large files ($(awk "BEGIN { printf \"%.0f\", $large / $small }")x the files)"
echo
echo "| command | wall $small | wall $large | wall growth | max RSS $small | max RSS $large | RSS growth |"
echo "|---|--:|--:|--:|--:|--:|--:|"
# result-N.tsv lines: command, median wall seconds, max RSS KiB; the rows
# keep the order of the large run's table.
awk -F '\t' '
	NR == FNR { wall[$1] = $2; rss[$1] = $3; next }
	{ printf "| %s | %.2f s | %.2f s | %.1fx | %.1f MiB | %.1f MiB | %.1fx |\n", $1, wall[$1], $2, $2 / wall[$1], rss[$1] / 1024, $3 / 1024, $3 / rss[$1] }
' ".bench/result-$small.tsv" ".bench/result-$large.tsv"
