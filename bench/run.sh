#!/usr/bin/env bash
# bench/run.sh: wall time and peak memory (max RSS) of `reconciler diff` on a
# generated fleet, next to conftest and a bare parse-and-evaluate loop on the
# same fleet and policy, all measured in this one run. Machines are noisy, so
# the figures that matter are the ratios between commands of the same run.
#
# Environment:
#   BENCH_N     instance files in the fleet (default 10000)
#   BENCH_RUNS  runs of each command; the table shows the median wall time
#               and the largest max RSS (default 3)
#
# The table goes to standard output and to .bench/result-N.md (bench/scale.sh
# reads .bench/result-N.tsv); progress goes to standard error.
#
# Exit status: non-zero on an error (a build, a command that fails, a tool
# whose result counts disagree with the fleet), never on a missed goal.
set -euo pipefail

# Every path below is relative to the module root.
cd "$(dirname "$0")/.."

N=${BENCH_N:-10000}
RUNS=${BENCH_RUNS:-3}
CONFTEST_VERSION=v0.71.1
TOOLS=$PWD/.tools
WORK=.bench
BIN=$WORK/bin
FLEET=$WORK/fleet-$N

die() {
	echo "bench: $*" >&2
	exit 1
}
say() { echo "bench: $*" >&2; }

[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer, not '$N'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '$RUNS'"
mkdir -p "$WORK" "$BIN"

# --- Build -----------------------------------------------------------------

say "building bin/reconciler and the bench tools"
go build -o bin/reconciler ./cmd/reconciler
for tool in genfleet measure bareloop; do
	go build -o "$BIN/$tool" "./bench/$tool"
done

# `go install` leaves conftest's own --version at "dev", so the version is
# read from the module information Go embeds in the binary.
installed_conftest=$(go version -m "$TOOLS/conftest" 2>/dev/null | awk '$1 == "mod" { print $3 }' || true)
if [[ $installed_conftest != "$CONFTEST_VERSION" ]]; then
	say "installing conftest $CONFTEST_VERSION into $TOOLS"
	GOBIN=$TOOLS go install "github.com/open-policy-agent/conftest@$CONFTEST_VERSION"
fi

# --- Fleet -----------------------------------------------------------------

# The fleet is regenerated only when it is missing, or was made for another
# size or by another version of the generator (its sources and embedded
# policy, hashed). It is written beside its final place and moved there
# whole, so an interrupted generation never leaves a half fleet behind.
stamp="n=$N $(find bench/genfleet -type f ! -name '*_test.go' -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)"
if [[ ! -f $FLEET/.stamp || $(<"$FLEET/.stamp") != "$stamp" ]]; then
	say "generating $FLEET"
	rm -rf "$FLEET" "$FLEET.tmp"
	"$BIN/genfleet" -n "$N" "$FLEET.tmp" >&2
	echo "$stamp" >"$FLEET.tmp/.stamp"
	mv "$FLEET.tmp" "$FLEET"
fi

# fleet.json is flat, one "key": number per line.
fleet_stat() { sed -n "s/^ *\"$1\": *\([0-9]*\).*/\1/p" "$FLEET/fleet.json"; }
files=$(fleet_stat files)
multi=$(fleet_stat multi_document_files)
instances=$(fleet_stat instances)
denied=$(fleet_stat denied_instances)
deny=$(fleet_stat deny)
warn=$(fleet_stat warn)

# --- The three commands ----------------------------------------------------

# Conftest reads only .rego files from -p; -d loads encryption.yaml into data
# as the reconciler and the bare loop do, or deny_ssl_required would match
# nothing and conftest would do less work than the others.
reconciler_cmd=(bin/reconciler diff "$FLEET" -o json)
conftest_cmd=("$TOOLS/conftest" test --no-color -p "$FLEET/policies" -d "$FLEET/policies" "$FLEET/instances")
bare_cmd=("$BIN/bareloop" -p "$FLEET/policies" "$FLEET/instances")

# Exit statuses that are success: diff exits 2 for changes and 3 for
# denials (the fleet has some on purpose); conftest exits 1 for failures.
reconciler_ok=0,2,3
conftest_ok=0,1
bare_ok=0

# --- Warm-up and checks ----------------------------------------------------

# One unmeasured run of each command fills the page cache for all of them
# and checks that each did the whole work: the same instances, the same
# policy results. A benchmark of a tool that skipped half the fleet would
# be worse than none.
say "warm-up: checking each command's results against $FLEET/fleet.json"

"$BIN/measure" -ok "$bare_ok" -stdout "$WORK/bare.out" -- "${bare_cmd[@]}" >/dev/null || die "bare loop failed"
want="files=$files documents=$instances deny=$deny violation=0 warn=$warn"
[[ $(<"$WORK/bare.out") == "$want" ]] || die "bare loop counted '$(<"$WORK/bare.out")', want '$want'"

"$BIN/measure" -ok "$conftest_ok" -stdout "$WORK/conftest.out" -stderr "$WORK/conftest.err" -- "${conftest_cmd[@]}" >/dev/null ||
	{ cat "$WORK/conftest.err" >&2; die "conftest failed"; }
# Conftest also exits 1 on errors; a policy failure never writes to stderr.
[[ ! -s $WORK/conftest.err ]] || { cat "$WORK/conftest.err" >&2; die "conftest wrote errors"; }
grep -q " $warn warnings, $deny failures," "$WORK/conftest.out" ||
	die "conftest: '$(tail -1 "$WORK/conftest.out")', want $warn warnings and $deny failures"

"$BIN/measure" -ok "$reconciler_ok" -stdout "$WORK/reconciler.json" -stderr "$WORK/reconciler.err" -- "${reconciler_cmd[@]}" >/dev/null ||
	{ cat "$WORK/reconciler.err" >&2; die "reconciler diff failed"; }
summary=$(tr -d ' \n\t' <"$WORK/reconciler.json" | grep -o '"summary":{[^}]*}' || true)
summary_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$summary"; }
[[ $(summary_field instances) == "$instances" && $(summary_field errors) == 0 && $(summary_field denied) == "$denied" ]] ||
	die "reconciler summary $summary, want $instances instances, 0 errors, $denied denied"

# --- Measure ---------------------------------------------------------------

declare -A walls rss
json_field() { sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p" <<<"$2"; }

# measure NAME: one run of the command NAME, its figures appended to
# walls[NAME] and rss[NAME].
measure() {
	local name=$1 ok cmd json
	ok=${name}_ok
	cmd="${name}_cmd[@]"
	json=$("$BIN/measure" -ok "${!ok}" -stderr "$WORK/$name.err" -- "${!cmd}") ||
		{ cat "$WORK/$name.err" >&2; die "$name failed"; }
	walls[$name]+="$(json_field wall_seconds "$json") "
	rss[$name]+="$(json_field max_rss_kib "$json") "
}

# The commands take turns, so that a slow spell of the machine falls on all
# three rather than on one.
for ((run = 1; run <= RUNS; run++)); do
	say "run $run of $RUNS"
	for name in reconciler conftest bare; do
		measure "$name"
	done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
largest() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -1; }
# calc EXPR: floating-point arithmetic, which bash lacks.
calc() { awk "BEGIN { printf $1 }"; }

declare -A wall maxrss
for name in reconciler conftest bare; do
	wall[$name]=$(median "${walls[$name]}")
	maxrss[$name]=$(largest "${rss[$name]}")
done

# --- Report ----------------------------------------------------------------

declare -A label=(
	[reconciler]="\`reconciler diff -o json\`"
	[conftest]="\`conftest test\` ${CONFTEST_VERSION}"
	[bare]='bare loop (yaml.v3 + prepared OPA query, GOMAXPROCS workers)'
)
r_wall=${wall[reconciler]} r_rss=${maxrss[reconciler]}
c_wall=${wall[conftest]} c_rss=${maxrss[conftest]}
b_wall=${wall[bare]}

speedup=$(calc "\"%.1f\", $c_wall / $r_wall")
rss_ratio=$(calc "\"%.1f\", $r_rss / $c_rss")
bare_ratio=$(calc "\"%.1f\", $r_wall / $b_wall")
verdict() { if (($(calc "\"%d\", $1"))); then echo met; else echo MISSED; fi; }

report() {
	echo "Fleet: $files files ($multi multi-document), $instances instances, $denied denied;" \
		"three-rule policy. $(nproc) CPUs, $(go env GOVERSION)," \
		"$RUNS runs of each command, interleaved."
	echo
	echo "| command | wall (median of $RUNS) | max RSS | wall vs reconciler | RSS vs reconciler |"
	echo "|---|--:|--:|--:|--:|"
	for name in reconciler conftest bare; do
		calc "\"| %s | %.2f s | %.1f MiB | %.2fx | %.2fx |\\n\", \"${label[$name]}\", ${wall[$name]}, ${maxrss[$name]} / 1024, ${wall[$name]} / $r_wall, ${maxrss[$name]} / $r_rss"
	done
	echo
	echo "reconciler vs conftest: ${speedup}x faster (goal ≥ 5x), RSS ${rss_ratio}x (goal ≤ 1x)" \
		"[speed $(verdict "$c_wall / $r_wall >= 5"), RSS $(verdict "$r_rss <= $c_rss")]"
	echo "reconciler vs bare loop: ${bare_ratio}x the time (goal ≤ 1.5x)" \
		"[$(verdict "$r_wall / $b_wall <= 1.5")]"
}

report | tee "$WORK/result-$N.md"
for name in reconciler conftest bare; do
	printf '%s\t%s\t%s\n' "$name" "${wall[$name]}" "${maxrss[$name]}"
done >"$WORK/result-$N.tsv"
