#!/usr/bin/env bash
# bench/agents.sh: the CPU and memory of `reconciler run` serving N guest
# agents that long-poll and heartbeat every 30 s, for each N in
# BENCH_AGENTS. The agents are goroutines of bench/agentload speaking the
# real protocol (agent/transport.Client: enrollment with a one-time token,
# then sealed long polls carrying the status), each with its own TLS
# connection and HTTP/2, as real agents have. The daemon runs on the
# embedded defaults (examples/reconciler/local.yaml: a watched fleet
# directory, the local key provider, SQLite) in .bench/agents-N/.
#
# For each N: build, write a fleet of N instances (rpcEncryption on, ssl as
# BENCH_SSL), start the daemon, wait until it holds every instance's RPC
# key, start the agents, wait until the daemon reports all N enrolled,
# Active (and, with SSL, verified) and seen within two heartbeats, let a
# warm-up pass, then measure the daemon process alone over the window:
# CPU as (utime+stime) delta / window, in cores; VmRSS (at the end and
# the largest sampled in the window) and VmHWM (the peak of the whole run,
# setup included) from /proc; goroutines and heap in use from its
# /metrics. The generator's CPU and RSS are measured the same way, so
# that a reader sees the load was not starved. The window is checked
# too: the daemon must have opened one sealed poll per agent per
# heartbeat (within 20%), the held polls must last the heartbeat, and all
# N agents must still be Active and seen at the end.
#
# Environment:
#   BENCH_AGENTS     agent counts, smallest first (default "1000 10000")
#   BENCH_WINDOW     measured window, seconds (default 120: four heartbeats)
#   BENCH_WARMUP     wait between "all agents in" and the window (default 60)
#   BENCH_HEARTBEAT  the agents' heartbeat, seconds (default 30)
#   BENCH_SSL        enabled (a certificate per instance from the local
#                    CA, reported verified) or disabled (default enabled)
#   BENCH_SHARED_TRANSPORT  1: the agents share one HTTP/1.1 transport
#   BENCH_DAEMON_ENV  assignments for the daemon's environment alone, such
#                    as "GOMEMLIMIT=280MiB" (the generator's is left alone)
#   BENCH_PROFILE    1: after each window, take a 60 s CPU profile and a
#                    heap and goroutine profile of the daemon into
#                    .bench/agents-N/ (the daemon is then built with
#                    bench/agentload/overlay/pprof.go.txt added through
#                    go build -overlay: net/http/pprof on a loopback port
#                    of its own, idle during the window)
#
# The tables go to standard output and .bench/agents.md; progress to
# standard error. Exit status: non-zero on an error (a build, a process
# that dies, fewer than N agents served, a window whose heartbeats are
# off), never on a missed goal.
set -euo pipefail

cd "$(dirname "$0")/.."

read -r -a SIZES <<<"${BENCH_AGENTS:-1000 10000}"
WINDOW=${BENCH_WINDOW:-120}
WINDOW=${WINDOW%s}
WARMUP=${BENCH_WARMUP:-60}
WARMUP=${WARMUP%s}
HEARTBEAT=${BENCH_HEARTBEAT:-30}
HEARTBEAT=${HEARTBEAT%s}
SSL=${BENCH_SSL:-enabled}
SHARED=${BENCH_SHARED_TRANSPORT:-}
PROFILE=${BENCH_PROFILE:-}
DAEMON_ENV=${BENCH_DAEMON_ENV:-}
WORK=$PWD/.bench
BIN=$WORK/bin
GOAL_CORES=0.25
GOAL_MB=300
TCK=$(getconf CLK_TCK)

die() {
	echo "bench: $*" >&2
	exit 1
}
say() { echo "bench: $(date +%T) $*" >&2; }

((${#SIZES[@]} >= 1)) || die "BENCH_AGENTS is empty"
for n in "${SIZES[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_AGENTS must hold positive integers, not '$n'"; done
for v in WINDOW WARMUP HEARTBEAT; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive number of seconds, not '${!v}'"; done
[[ $SSL == enabled || $SSL == disabled ]] || die "BENCH_SSL must be enabled or disabled, not '$SSL'"
mkdir -p "$WORK" "$BIN"

# Every process started here is stopped on exit, however the script ends.
PIDS=()
stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}
cleanup() {
	local rc=$?
	set +e
	stop_all
	((rc == 0)) || echo "bench: FAILED (exit $rc); logs in $WORK/agents-*/" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_ports N: N distinct free TCP ports on 127.0.0.1.
free_ports() {
	local n=$1 found=() p
	while ((${#found[@]} < n)); do
		p=$((20000 + RANDOM % 12000))
		[[ " ${found[*]} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then found+=("$p"); fi
	done
	echo "${found[@]}"
}

# field FILE KEY: a top-level number of a JSON object written one key a
# line (agentload's stats and probe output).
field() { sed -n "s/^  \"$2\": *\([0-9.eE+-]*\),\{0,1\}$/\1/p" "$1"; }
# calc EXPR: floating-point arithmetic, which bash lacks.
calc() { awk "BEGIN { printf $1 }"; }
# cpu_ticks PID: utime+stime of the process, in clock ticks (fields 14
# and 15 of /proc/PID/stat, counted after the parenthesised name).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# status_kib PID FIELD: VmRSS or VmHWM in KiB.
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
alive() { kill -0 "$1" 2>/dev/null; }

# --- Build -----------------------------------------------------------------

say "building bin/reconciler and agentload"
# Read-only: --no-optional-locks keeps git from refreshing the index.
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]] || REVISION+=" with uncommitted changes"
go build -o bin/reconciler ./cmd/reconciler
go build -o "$BIN/agentload" ./bench/agentload
DAEMON=bin/reconciler
if [[ -n $PROFILE ]]; then
	# The real daemon plus an idle pprof listener, without touching
	# cmd/reconciler: the file is added at build time only.
	printf '{"Replace": {"%s": "%s"}}\n' "$PWD/cmd/reconciler/zz_agentload_pprof.go" \
		"$PWD/bench/agentload/overlay/pprof.go.txt" >"$BIN/pprof-overlay.json"
	go build -overlay "$BIN/pprof-overlay.json" -o "$BIN/reconciler-pprof" ./cmd/reconciler
	DAEMON=$BIN/reconciler-pprof
fi

# --- One size --------------------------------------------------------------

# run_size N: the whole run for N agents; writes $WORK/agents-N.md and .tsv.
run_size() {
	local n=$1
	local D=$WORK/agents-$n
	local fleet=$WORK/agentfleet-$n-$SSL
	local stamp
	# The fleet is regenerated only when missing or made by another
	# version of agentload's fleet writer (as bench/run.sh does).
	stamp="n=$n ssl=$SSL $(cat bench/agentload/fleet.go bench/agentload/policies/* | sha256sum | cut -d' ' -f1)"
	if [[ ! -f $fleet/.stamp || $(<"$fleet/.stamp") != "$stamp" ]]; then
		say "writing $fleet"
		rm -rf "$fleet" "$fleet.tmp"
		"$BIN/agentload" fleet -n "$n" -ssl "$SSL" "$fleet.tmp" >&2
		echo "$stamp" >"$fleet.tmp/.stamp"
		mv "$fleet.tmp" "$fleet"
	fi

	rm -rf "$D"
	mkdir -p "$D/state"
	local api_port agents_port pprof_port
	read -r api_port agents_port pprof_port <<<"$(free_ports 3)"
	local API=https://127.0.0.1:$api_port
	(
		umask 077
		head -c 32 /dev/urandom | base64 >"$D/state/kek"
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/state/admin.token"
	)
	cat >"$D/state/reconciler.yaml" <<EOF
# bench/agents.sh: the embedded defaults of examples/reconciler/local.yaml.
source:
  dir: {path: "$fleet"}
keyProvider:
  local: {kekFile: kek}
listen: {api: "127.0.0.1:$api_port", agents: "127.0.0.1:$agents_port"}
tokens:
  - {name: bench, role: admin, file: admin.token}
EOF
	local CA=$D/state/reconciler-ca.pem
	probe() { "$BIN/agentload" probe -api "$API" -ca "$CA" -token "$D/state/admin.token" -seen "$((2 * HEARTBEAT + 5))s" "$@"; }

	say "N=$n: starting the reconciler in $D"
	local t_start
	t_start=$(date +%s)
	# shellcheck disable=SC2086 # BENCH_DAEMON_ENV is a list of assignments
	env ${DAEMON_ENV} AGENTLOAD_PPROF=${PROFILE:+127.0.0.1:$pprof_port} "$DAEMON" run --config "$D/state/reconciler.yaml" >"$D/reconciler.log" 2>&1 &
	local dpid=$!
	PIDS+=("$dpid")
	local deadline=$((t_start + 60))
	until [[ -s $CA ]] && curl -fsS --cacert "$CA" "$API/readyz" >/dev/null 2>&1; do
		alive "$dpid" || { tail -20 "$D/reconciler.log" >&2; die "N=$n: the reconciler exited"; }
		(($(date +%s) < deadline)) || die "N=$n: the reconciler is not ready after 60s (see $D/reconciler.log)"
		sleep 0.5
	done

	# Agents are bootstrapped once the reconciler holds their keys, as an
	# operator would: an enrollment before the key exists is refused.
	local setup_limit=$((120 + n / 5))
	deadline=$(($(date +%s) + setup_limit))
	say "N=$n: waiting for the reconciler to create $n RPC keys"
	while :; do
		alive "$dpid" || die "N=$n: the reconciler exited (see $D/reconciler.log)"
		probe >"$D/probe.json" 2>"$D/probe.err" && (($(field "$D/probe.json" with_key) >= n)) && break
		(($(date +%s) < deadline)) || die "N=$n: only $(field "$D/probe.json" with_key) of $n keys after ${setup_limit}s"
		sleep 2
	done

	say "N=$n: starting $n agents (heartbeat ${HEARTBEAT}s, started over ${HEARTBEAT}s)"
	local shared_flag=()
	[[ -n $SHARED ]] && shared_flag=(-shared-transport)
	"$BIN/agentload" run -n "$n" -url "https://127.0.0.1:$agents_port" -ca "$CA" -token-dir "$D/state/enrollment-tokens" \
		-work "$D/agents" -heartbeat "${HEARTBEAT}s" -ramp "${HEARTBEAT}s" -stats "$D/agents.json" "${shared_flag[@]}" \
		>"$D/agentload.log" 2>&1 &
	local gpid=$!
	PIDS+=("$gpid")

	# All in: the daemon's API says N Active, seen recently, with keys
	# (and verified, for SSL), its metrics N enrollments, and every agent
	# says it applied its desired state.
	say "N=$n: waiting until the reconciler reports all $n agents enrolled and Active"
	local want_verified=0 last=0
	[[ $SSL == enabled ]] && want_verified=$n
	while :; do
		alive "$dpid" || die "N=$n: the reconciler exited (see $D/reconciler.log)"
		alive "$gpid" || { tail -20 "$D/agentload.log" >&2; die "N=$n: agentload exited"; }
		if probe >"$D/probe.json" 2>"$D/probe.err" && [[ -s $D/agents.json ]]; then
			local active seen verified enrolled applied
			active=$(field "$D/probe.json" active) seen=$(field "$D/probe.json" seen)
			verified=$(field "$D/probe.json" ssl_verified) enrolled=$(field "$D/probe.json" enrollments_ok)
			applied=$(field "$D/agents.json" applied)
			if ((active == n && seen == n && verified >= want_verified && ${enrolled%.*} >= n && applied == n)); then
				break
			fi
			if (($(date +%s) - last >= 15)); then
				last=$(date +%s)
				say "N=$n: enrolled $enrolled, Active $active, seen $seen, verified $verified, applied by agents $applied, agent errors $(field "$D/agents.json" errors)"
			fi
		fi
		(($(date +%s) < deadline)) || die "N=$n: not all $n agents served after ${setup_limit}s (see $D/probe.json, $D/agents.json)"
		sleep 2
	done
	local setup=$(($(date +%s) - t_start))
	say "N=$n: all $n agents in after ${setup}s; warming up for ${WARMUP}s"
	sleep "$WARMUP"

	# --- The window ---
	say "N=$n: measuring for ${WINDOW}s"
	probe -metrics-only >"$D/metrics0.json"
	cp "$D/agents.json" "$D/agents0.json"
	local d0 g0 t0 d1 g1 t1 drss_max=0 grss_max=0 r
	d0=$(cpu_ticks "$dpid") g0=$(cpu_ticks "$gpid") t0=$(date +%s.%N)
	local end
	end=$(calc "\"%d\", $t0 + $WINDOW")
	while (($(date +%s) < end)); do
		alive "$dpid" || die "N=$n: the reconciler exited during the window"
		alive "$gpid" || die "N=$n: agentload exited during the window"
		r=$(status_kib "$dpid" VmRSS) && ((r > drss_max)) && drss_max=$r
		r=$(status_kib "$gpid" VmRSS) && ((r > grss_max)) && grss_max=$r
		sleep 1
	done
	d1=$(cpu_ticks "$dpid") g1=$(cpu_ticks "$gpid") t1=$(date +%s.%N)
	local drss dhwm grss ghwm
	drss=$(status_kib "$dpid" VmRSS) dhwm=$(status_kib "$dpid" VmHWM)
	grss=$(status_kib "$gpid" VmRSS) ghwm=$(status_kib "$gpid" VmHWM)
	cp "$D/agents.json" "$D/agents1.json"
	probe -metrics-only >"$D/metrics1.json"
	probe >"$D/probe-end.json"
	if [[ -n $PROFILE ]]; then
		say "N=$n: profiling the daemon for 60s (after the window)"
		local pp=http://127.0.0.1:$pprof_port/debug/pprof
		curl -fsS -o "$D/cpu.pprof" "$pp/profile?seconds=60" || die "N=$n: cannot take a CPU profile"
		curl -fsS -o "$D/heap.pprof" "$pp/heap" || die "N=$n: cannot take a heap profile"
		curl -fsS -o "$D/goroutine.txt" "$pp/goroutine?debug=1" || die "N=$n: cannot take a goroutine profile"
	fi

	# --- Checks: the window measured what it claims ---
	local elapsed dcpu gcpu polls expected ratio held held_s held_mean errs reads reconciles
	elapsed=$(calc "\"%.3f\", $t1 - $t0")
	dcpu=$(calc "\"%.4f\", ($d1 - $d0) / $TCK / $elapsed")
	gcpu=$(calc "\"%.4f\", ($g1 - $g0) / $TCK / $elapsed")
	polls=$(calc "\"%d\", $(field "$D/metrics1.json" rpc_to_reconciler_ok) - $(field "$D/metrics0.json" rpc_to_reconciler_ok)")
	expected=$(calc "\"%.0f\", $n * $elapsed / $HEARTBEAT")
	ratio=$(calc "\"%.3f\", $polls / $expected")
	held=$(calc "\"%d\", $(field "$D/agents1.json" held_polls) - $(field "$D/agents0.json" held_polls)")
	held_s=$(calc "\"%.3f\", $(field "$D/agents1.json" held_seconds) - $(field "$D/agents0.json" held_seconds)")
	held_mean=$(calc "\"%.2f\", ($held > 0 ? $held_s / $held : 0)")
	errs=$(calc "\"%d\", $(field "$D/agents1.json" errors) - $(field "$D/agents0.json" errors)")
	reads=$(calc "\"%d\", $(field "$D/metrics1.json" source_reads) - $(field "$D/metrics0.json" source_reads)")
	reconciles=$(calc "\"%d\", $(field "$D/metrics1.json" reconciles) - $(field "$D/metrics0.json" reconciles)")
	local end_active end_seen
	end_active=$(field "$D/probe-end.json" active) end_seen=$(field "$D/probe-end.json" seen)
	((end_active == n && end_seen == n)) ||
		die "N=$n: at the end of the window the reconciler reports $end_active Active and $end_seen seen of $n agents"
	(($(calc "\"%d\", ($ratio >= 0.8 && $ratio <= 1.2)"))) ||
		die "N=$n: the reconciler opened $polls polls in ${elapsed}s, ${ratio}x the $expected of one per agent per ${HEARTBEAT}s"
	(($(calc "\"%d\", ($held_mean >= $HEARTBEAT && $held_mean <= $HEARTBEAT + 2)"))) ||
		die "N=$n: held polls lasted ${held_mean}s on average, not the ${HEARTBEAT}s heartbeat"

	# --- Report ---
	local mib="/ 1024"
	{
		echo "### $n agents"
		echo
		echo "$n instances (ssl $SSL, rpcEncryption enabled), $n agents enrolled, Active and seen within" \
			"$((2 * HEARTBEAT + 5))s; all in ${setup}s after the daemon started; warm-up ${WARMUP}s;" \
			"window ${elapsed}s. reconciler $REVISION, $(nproc) CPUs, $(go env GOVERSION)${DAEMON_ENV:+; the daemon ran with $DAEMON_ENV}."
		echo
		echo "| process | CPU (cores) | RSS at end | max RSS in window | peak RSS (VmHWM, setup included) | goroutines | heap in use | stacks in use |"
		echo "|---|--:|--:|--:|--:|--:|--:|--:|"
		calc "\"| reconciler run | %.3f | %.1f MiB | %.1f MiB | %.1f MiB | %d | %.1f MiB | %.1f MiB |\\n\", $dcpu, $drss $mib, $drss_max $mib, $dhwm $mib, $(field "$D/metrics1.json" go_goroutines), $(field "$D/metrics1.json" heap_inuse_bytes) / 1048576, $(field "$D/metrics1.json" stack_inuse_bytes) / 1048576"
		calc "\"| agentload ($n agents) | %.3f | %.1f MiB | %.1f MiB | %.1f MiB | | | |\\n\", $gcpu, $grss $mib, $grss_max $mib, $ghwm $mib"
		echo
		echo "Window: $polls sealed polls opened by the reconciler (one per agent per ${HEARTBEAT}s would be $expected: ${ratio}x);" \
			"held polls lasted ${held_mean}s on average; $errs agent errors; the controller read the fleet $reads times" \
			"and ran $reconciles instance reconciles."
		echo
		local cpu_ok rss_ok
		cpu_ok=$(calc "\"%s\", ($dcpu <= $GOAL_CORES ? \"met\" : \"MISSED\")")
		rss_ok=$(calc "\"%s\", ($drss_max * 1024 <= $GOAL_MB * 1000000 ? \"met\" : \"MISSED\")")
		echo "Goal (≤ $GOAL_CORES cores, ≤ $GOAL_MB MB): CPU $(calc "\"%.3f\", $dcpu") cores [$cpu_ok]," \
			"RSS $(calc "\"%.0f\", $drss_max * 1024 / 1000000") MB [$rss_ok]"
	} >"$WORK/agents-$n.md"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$dcpu" "$drss_max" "$gcpu" "$grss_max" "$dhwm" >"$WORK/agents-$n.tsv"
	stop_all
	say "N=$n: done; logs and snapshots in $D"
}

for n in "${SIZES[@]}"; do
	run_size "$n"
done

# --- Report ----------------------------------------------------------------

report() {
	for n in "${SIZES[@]}"; do
		cat "$WORK/agents-$n.md"
		echo
	done
	if ((${#SIZES[@]} >= 2)); then
		local small=${SIZES[0]} large=${SIZES[-1]}
		# agents-N.tsv: N, daemon cores, daemon max RSS KiB, generator
		# cores, generator max RSS KiB, daemon VmHWM KiB.
		awk -F '\t' -v small="$small" -v large="$large" '
			NR == FNR { cpu = $2; rss = $3; next }
			{ printf "%s vs %s agents (%.0fx): reconciler CPU %.2fx (%.3f → %.3f cores), RSS %.2fx (%.1f → %.1f MiB)\n",
				large, small, large / small, $2 / cpu, cpu, $2, $3 / rss, rss / 1024, $3 / 1024 }
		' "$WORK/agents-$small.tsv" "$WORK/agents-$large.tsv"
	fi
}
report | tee "$WORK/agents.md"
