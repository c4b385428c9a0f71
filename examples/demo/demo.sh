#!/usr/bin/env bash
# make demo: the reconciler, one agent per instance of examples/fleet, a
# private PostgreSQL and MariaDB where their server binaries are installed,
# and SSL turned on through `reconciler ssl enable` and a merge. Everything
# lives in .demo/ at the repository root (wiped at start); every process it
# starts is stopped when it ends, however it ends.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
D=$ROOT/.demo
BIN=$ROOT/bin/reconciler
PG_INSTANCE=${DEMO_PG_INSTANCE:-payments-db-staging}   # ssl: disabled; the one the demo flips
MARIA_INSTANCE=${DEMO_MARIA_INSTANCE:-ledger-db}       # ssl: enabled
START=$(date +%s)

PIDS=()
MARIA_PIDFILE= PG_PIDFILE=
# stop_pidfile FILE SIGNAL: stop the server whose pid is FILE's first line.
stop_pidfile() {
	[[ -n $1 && -s $1 ]] || return 0
	local pid; pid=$(head -n 1 "$1")
	kill "-$2" "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
}
cleanup() {
	local rc=$?
	set +e
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	stop_pidfile "$PG_PIDFILE" INT      # fast shutdown; runuser does not pass the signal on
	stop_pidfile "$MARIA_PIDFILE" TERM  # started by restart.sh, detached
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if ((rc != 0)); then
		echo "demo: FAILED (exit $rc); logs in $D/reconciler.log and $D/agents/*/agent.log" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# free_ports N: N distinct free TCP ports on 127.0.0.1.
free_ports() {
	local n=$1 found=() p
	while ((${#found[@]} < n)); do
		p=$((20000 + RANDOM % 30000))
		[[ " ${found[*]} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then found+=("$p"); fi
	done
	echo "${found[@]}"
}

# wait_until SECONDS WHAT COMMAND...: retry COMMAND every half second.
wait_until() {
	local secs=$1 what=$2; shift 2
	local deadline=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		(($(date +%s) < deadline)) || die "timed out after ${secs}s waiting for $what"
		sleep 0.5
	done
}

[[ -x $BIN ]] || die "$BIN is missing: run make build"
if [[ -d $D ]]; then
	# Servers a killed earlier run left behind.
	stop_pidfile "$D/postgresql/data/postmaster.pid" INT
	stop_pidfile "$D/mariadb/run/mysqld.pid" TERM
	rm -rf "$D"
fi
mkdir -p "$D"

# 1. The fleet, as a git repository. Every instance gets its own loopback
# address (the fleet's policy denies two instances sharing a host): the
# real PostgreSQL serves on 127.0.0.1, the real MariaDB on 127.0.0.2.
say "1. the fleet: examples/fleet as a git repository in .demo/fleet"
cp -r examples/fleet "$D/fleet"
: >"$D/index"
for f in $(cd "$D/fleet" && find instances -name '*.yaml' | sort); do
	awk -v pg="$PG_INSTANCE" -v maria="$MARIA_INSTANCE" -v file="$f" -v index_file="$D/index" -v base="$(wc -l <"$D/index")" '
		/^  name: / { name = $2 }
		/^  datastore: / { t = $0; sub(/.*type: */, "", t); sub(/[,}].*/, "", t)
			v = $0; sub(/.*version: *"?/, "", v); sub(/"?[,}].*/, "", v) }
		/^  hosts: / {
			n++
			host = (name == pg) ? "127.0.0.1" : (name == maria) ? "127.0.0.2" : "127.0.0." (9 + base + n)
			sub(/hosts: .*/, "hosts: [" host "]")
		}
		/^  rpcEncryption: / { rpc = $2 }
		/^---/ { emit() }
		{ print }
		END { emit() }
		function emit() { if (name != "") print name, t, v, host, (rpc == "" ? "disabled" : rpc), file >> index_file; name = ""; rpc = "" }' "$D/fleet/$f" >"$D/tmp.yaml"
	mv "$D/tmp.yaml" "$D/fleet/$f"
done
grep -q "^$PG_INSTANCE postgresql " "$D/index" || die "no postgresql instance $PG_INSTANCE in examples/fleet"
grep -q "^$MARIA_INSTANCE mariadb " "$D/index" || die "no mariadb instance $MARIA_INSTANCE in examples/fleet"
git -C "$D/fleet" init -q -b main
git -C "$D/fleet" config user.name demo
git -C "$D/fleet" config user.email demo@example.com
git -C "$D/fleet" add -A
git -C "$D/fleet" commit -q -m "the fleet, on loopback addresses"
rc=0; "$BIN" diff "$D/fleet" >"$D/diff.txt" 2>&1 || rc=$?
((rc == 2)) || { cat "$D/diff.txt"; die "reconciler diff exited $rc (2 means changes, 3 denials)"; }
tail -n 1 "$D/diff.txt"

# 2. The reconciler: local key provider, SQLite, the git source.
say "2. the reconciler"
read -r API_PORT AGENTS_PORT PG_PORT MARIA_PORT <<<"$(free_ports 4)"
API=127.0.0.1:$API_PORT
AGENTS=127.0.0.1:$AGENTS_PORT
mkdir -p "$D/state"
(umask 077; head -c 32 /dev/urandom | base64 >"$D/state/kek"; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/state/admin.token")
cat >"$D/state/reconciler.yaml" <<EOF
source:
  git: {url: "file://$D/fleet", branch: main, pollInterval: 2s, cacheDir: git-cache}
keyProvider:
  local: {kekFile: kek}
listen: {api: "$API", agents: "$AGENTS"}
agents: {allowPlaintext: true}   # for the rpcEncryption: disabled instances (dev, legacy-reports)
tokens:
  - {name: demo, role: admin, file: admin.token}
EOF
"$BIN" run --config "$D/state/reconciler.yaml" >"$D/reconciler.log" 2>&1 &
PIDS+=($!)
CA=$D/state/reconciler-ca.pem
wait_until 30 "the reconciler's CA" test -s "$CA"
wait_until 30 "https://$API/readyz" curl -fsS --cacert "$CA" "https://$API/readyz"
echo "ready: API https://$API, agents https://$AGENTS"
export RECONCILER_TOKEN RECONCILER_SERVER=https://$API RECONCILER_CA_FILE=$CA
RECONCILER_TOKEN=$(cat "$D/state/admin.token")
cli() { "$BIN" "$@" --server "https://$API" --ca-file "$CA"; }

# 3. The datastores and their agents.
say "3. the datastores and one agent per instance"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
HAVE_PG=false HAVE_MARIA=false
if [[ -n $PG_BIN && -x $PG_BIN/initdb && -x $PG_BIN/postgres ]] && id postgres >/dev/null 2>&1; then HAVE_PG=true; fi
MARIADBD=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true)
if [[ -n $MARIADBD ]] && command -v mariadb-install-db >/dev/null && id mysql >/dev/null 2>&1; then HAVE_MARIA=true; fi
if [[ -n ${DEMO_NO_SERVERS:-} ]]; then HAVE_PG=false HAVE_MARIA=false; fi  # to try the file-only path
as() { local u=$1; shift; if [[ $(id -un) == "$u" ]]; then "$@"; else runuser -u "$u" -- "$@"; fi; }

if $HAVE_PG; then
	P=$D/postgresql
	mkdir -p "$P/data" "$P/conf.d" "$P/run"
	chown -R postgres: "$P"; chmod 700 "$P/data"
	as postgres "$PG_BIN/initdb" -D "$P/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync --no-instructions >"$P/initdb.log" 2>&1
	cat >>"$P/data/postgresql.conf" <<EOF

# make demo
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$P/run'
fsync = off
shared_buffers = 16MB
max_connections = 30
include_dir = '$P/conf.d'
EOF
	PG_PIDFILE=$P/data/postmaster.pid
	as postgres "$PG_BIN/postgres" -D "$P/data" >"$P/postgres.log" 2>&1 &
	PIDS+=($!)
	wait_until 30 "PostgreSQL" as postgres "$PG_BIN/pg_isready" -q -h "$P/run" -p "$PG_PORT"
	echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT for $PG_INSTANCE"
fi
if $HAVE_MARIA; then
	M=$D/mariadb
	mkdir -p "$M/data" "$M/conf.d" "$M/run"
	MARIA_PIDFILE=$M/run/mysqld.pid
	cat >"$M/my.cnf" <<EOF
[mysqld]
datadir = $M/data
socket = $M/run/mysqld.sock
pid-file = $MARIA_PIDFILE
port = $MARIA_PORT
bind-address = 127.0.0.2
skip-name-resolve
skip-log-bin
innodb_buffer_pool_size = 16M
innodb_flush_log_at_trx_commit = 0
max_connections = 30

!includedir $M/conf.d
EOF
	chown -R mysql: "$M"
	mariadb-install-db --defaults-file="$M/my.cnf" --user=mysql --auth-root-authentication-method=normal --skip-test-db >"$M/install.log" 2>&1
	# MariaDB reads TLS settings only at start: the agent may restart it
	# with this script (detached, so it outlives the agent's command).
	cat >"$M/restart.sh" <<EOF
#!/usr/bin/env bash
set -eu
if [[ -s $MARIA_PIDFILE ]]; then
	pid=\$(cat $MARIA_PIDFILE); kill "\$pid" 2>/dev/null || true
	for _ in \$(seq 300); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
fi
setsid $MARIADBD --defaults-file=$M/my.cnf --user=mysql >>$M/mariadbd.log 2>&1 </dev/null &
for _ in \$(seq 300); do
	mariadb-admin --socket=$M/run/mysqld.sock -uroot ping >/dev/null 2>&1 && exit 0
	kill -0 \$! 2>/dev/null || exit 1
	sleep 0.1
done
exit 1
EOF
	chmod 755 "$M/restart.sh"
	"$M/restart.sh" || die "MariaDB did not start: $M/mariadbd.log"
	echo "MariaDB $("$MARIADBD" --version | awk '{print $3}') on 127.0.0.2:$MARIA_PORT for $MARIA_INSTANCE"
fi

UNVERIFIABLE=()
agent() { # agent NAME TYPE VERSION HOST RPC [bootstrap flags]
	local name=$1 type=$2 version=$3 host=$4 rpc=$5; shift 5
	local a=$D/agents/$name
	mkdir -p "$a/etc"
	"$BIN" agent bootstrap "$name" --datastore "$type" --version "$version" --url "https://$AGENTS" \
		--ca "$CA" --token-dir "$D/state/enrollment-tokens" --out "$a/etc" --host-dir "$a/etc" \
		--state-dir "$a/state" --host "$host" "$@" >"$a/bootstrap.log" 2>&1 ||
		{ cat "$a/bootstrap.log"; die "bootstrap $name failed"; }
	echo "heartbeat: 1s" >>"$a/etc/agent.yaml"
	if [[ $rpc != enabled ]]; then
		# rpcEncryption: disabled: Trove's plaintext upgrade path, an agent
		# with no key and no token (so it is never sent a private key).
		rm -f "$a/etc/enrollment-token" "$D/state/enrollment-tokens/$name"*
		echo "allowPlaintext: true" >>"$a/etc/agent.yaml"
	fi
	"$BIN" agent --config "$a/etc/agent.yaml" >"$a/agent.log" 2>&1 &
	PIDS+=($!)
}
while read -r name type version host rpc file; do
	if [[ $name == "$PG_INSTANCE" ]] && $HAVE_PG; then
		agent "$name" postgresql "$("$PG_BIN/postgres" --version | awk '{split($3, v, "."); print v[1]}')" "$host" "$rpc" \
			--config-dir "$P/conf.d" --data-dir "$P/data" --port "$PG_PORT" --user postgres \
			--admin-dsn "host=$P/run port=$PG_PORT user=postgres dbname=postgres sslmode=disable"
		echo "  $name: agent for the real PostgreSQL"
		continue
	fi
	if [[ $name == "$MARIA_INSTANCE" ]] && $HAVE_MARIA; then
		agent "$name" mariadb "$version" "$host" "$rpc" --config-dir "$M/conf.d" --port "$MARIA_PORT" --user mysql \
			--admin-dsn "root@unix($M/run/mysqld.sock)/mysql" --allow-restart --restart-command "$M/restart.sh"
		echo "  $name: agent for the real MariaDB (it may restart it)"
		continue
	fi
	# A file-only agent: the datastore's configuration, no server.
	conf=$D/agents/$name/conf
	mkdir -p "$conf"
	case $type in
	mongodb) printf 'storage:\n  dbPath: /var/lib/mongodb\nnet:\n  port: 27017\n  bindIp: 127.0.0.1\n' >"$conf/mongod.conf" ;;
	cassandra) cp agent/installers/cassandra/testdata/cassandra.yaml "$conf/" ;;
	manticore) cp agent/installers/manticore/testdata/manticore.conf "$conf/" ;;
	esac
	# Never the host's own servers: the Debian default admin sockets are
	# replaced with ones in .demo that nothing listens on.
	extra=()
	case $type in
	postgresql) extra=(--data-dir "$conf" --admin-dsn "host=$conf port=5432 user=postgres dbname=postgres sslmode=disable") ;;
	mysql | mariadb) extra=(--admin-dsn "root@unix($conf/no-server.sock)/mysql") ;;
	esac
	agent "$name" "$type" "$version" "$host" "$rpc" --config-dir "$conf" --user "" "${extra[@]}"
	UNVERIFIABLE+=("$name ($type)")
	echo "  $name: file-only $type agent (no server: it cannot be verified)"
done <"$D/index"
if ! $HAVE_PG; then echo "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): $PG_INSTANCE is configured but cannot be verified"; fi
if ! $HAVE_MARIA; then echo "MariaDB is not installed (mariadb-install-db, mariadbd): $MARIA_INSTANCE is configured but cannot be verified"; fi

phase_of() { # phase_of NAME -> "PHASE VERIFIED"
	curl -fsS --cacert "$CA" -H "Authorization: Bearer $RECONCILER_TOKEN" "https://$API/v1/instances/$1" |
		tr -d ' \n' | sed -n 's/.*"phase":"\([A-Za-z]*\)".*"ssl_verified":\(true\|false\).*/\1 \2/p'
}
settled() {
	local list
	list=$(cli instance list 2>/dev/null) || return 1
	! grep -Eq 'Applying|Pending|Unknown' <<<"$list"
}
show() {
	cli instance list
	echo
	curl -fsS --cacert "$CA" "https://$API/metrics" | grep '^reconciler_encryption_coverage_ratio' || echo "(no coverage series yet)"
}

wait_until 60 "the fleet to settle (no instance Applying)" settled
say "4. the fleet, settled (before)"
show
echo
echo "File-only agents have no server to prove TLS with: they report RestartRequired (MongoDB,"
echo "Cassandra, Manticore wait for a restart) or Error (MySQL, MariaDB, PostgreSQL: no server to reach);"
echo "coverage counts only what an agent verified with a handshake. payments-db asks for the
vault key provider (spec.tls.provider), which this demo does not run; payments-db-dev
wants SSL with rpcEncryption disabled, and a private key only travels sealed."

# 5. SSL on through a merge request.
FLIP=$PG_INSTANCE
if ! grep -q 'ssl: disabled' <(awk -v n="$FLIP" '/^---/{p=0} $0 ~ "name: "n"$"{p=1} p' "$D/fleet/$(awk -v n="$FLIP" '$1==n{print $6}' "$D/index")"); then
	die "$FLIP does not have ssl: disabled in its file"
fi
say "5. reconciler ssl enable $FLIP, and the merge"
"$BIN" ssl enable "$FLIP" --repo "$D/fleet"
git -C "$D/fleet" checkout -q main
git -C "$D/fleet" merge -q --no-ff "ssl-enable-$FLIP" -m "Merge branch 'ssl-enable-$FLIP'"
git -C "$D/fleet" log --oneline -n 3
t0=$(date +%s)
is_verified() { [[ $(phase_of "$1") == "Active true" ]]; }
if $HAVE_PG; then
	wait_until 60 "$FLIP Active with ssl_verified true" is_verified "$FLIP"
	echo "$FLIP: Active, ssl_verified true, $(($(date +%s) - t0))s after the merge (the daemon polls git every 2s)"
	CHAIN=$P/conf.d/reconciler-ca.crt
	if command -v psql >/dev/null; then
		echo "the client side: psql sslmode=verify-full, sslrootcert=$CHAIN"
		psql "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$CHAIN" -Atc \
			"SELECT 'ssl=' || ssl || ' ' || version || ' ' || cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
	else
		echo "psql is not installed: the agent's handshake is the only proof"
	fi
	if $HAVE_MARIA && command -v mariadb >/dev/null; then
		echo "and MariaDB ($MARIA_INSTANCE): mariadb --ssl-verify-server-cert, --ssl-ca=$M/conf.d/reconciler-ca.pem"
		mariadb -h 127.0.0.2 -P "$MARIA_PORT" -uroot --ssl --ssl-verify-server-cert --ssl-ca="$M/conf.d/reconciler-ca.pem" \
			-Nse "SHOW SESSION STATUS LIKE 'Ssl_cipher'" 2>&1 || true
	fi
else
	is_applied() { [[ $(cli instance list 2>/dev/null | awk -v n="$1" '$1==n') != *Applying* ]]; }
	sleep 3; wait_until 60 "$FLIP to be applied" is_applied "$FLIP"
	echo "$FLIP: its agent has no server, so SSL is asked for but cannot be verified"
fi

say "after"
show

# 6. Where everything was.
say "done in $(($(date +%s) - START))s"
echo "API      https://$API   (CA $CA, token $D/state/admin.token)"
echo "metrics  https://$API/metrics"
echo "logs     $D/reconciler.log, $D/agents/NAME/agent.log"
if $HAVE_PG; then echo "         $P/postgres.log"; fi
if $HAVE_MARIA; then echo "         $M/mariadbd.log"; fi
if ((${#UNVERIFIABLE[@]})); then echo "configured but not verifiable here (file-only agents): ${UNVERIFIABLE[*]}"; fi
echo "Stopping the reconciler, the agents and the datastores; .demo/ stays for reading."
