#!/usr/bin/env bash
# Runs the benchmark matrix of docs/benchmarks.md and prints its table.
#
#   scripts/bench-matrix.sh [--devices N] [--runs R] [--concurrency C] [--only ROWS]
#
# Rows: sqlite-https, sqlite-mqtt, sqlite-https-keepalive, pg-https,
# pg-mqtt, pg2-https (two nodes on one PostgreSQL), and sqlite-https-80:
# first a run at full speed to find the peak, then one offered at 80 % of
# it (--rate) on the same server, whose server-side latency comes from the
# server's own histogram (--metrics-addr): the p99 of the register request
# (usher_registration_duration_seconds), interpolated within its bucket. Each row is measured R
# times; every run starts a fresh server (a fresh data directory or
# database), registers N devices at concurrency C with retry-after not
# honoured, and measures bare TLS handshakes in the same run (--baseline),
# so every run has its own ratio. The table gives medians over the runs.
# Two-node rows run one load generator per node (N/2 devices each) at once
# and sum their rates; their baseline comes from a third, single generator
# run afterwards against node a alone (its own registrations are not used).
#
# Needs root (the servers listen on 127.0.0.9/127.0.0.10 port 443 and 8883,
# where the Azure SDKs dial), jq, and for the pg rows PostgreSQL on
# 127.0.0.1:5432 (USHER_BENCH_PG_URL overrides; trust auth, a database the
# script may drop and create, usher_bench). JSON reports are kept in
# bench-results/ (or $USHER_BENCH_OUT).
set -euo pipefail

devices=5000 runs=3 concurrency=64 only=""
while [ $# -gt 0 ]; do
	case "$1" in
	--devices) devices=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--concurrency) concurrency=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	-h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done

cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "bench-matrix: needs jq" >&2; exit 1; }
out=${USHER_BENCH_OUT:-bench-results}
mkdir -p "$out"
work=$(mktemp -d)
bin=$work/usher
pgadmin=${USHER_BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
pgurl=${USHER_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/usher_bench?sslmode=disable}
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$bin" ./cmd/usher

# start_node NAME IP STORE → sets node_pid; waits until it serves.
start_node() {
	local name=$1 ip=$2 store=$3
	local dir=$work/$name
	rm -rf "$dir" && mkdir -p "$dir"
	local args=(serve --data-dir "$dir" --https-addr "$ip:443" --mqtt-addr "$ip:8883" --hostname usher.bench.test)
	if [ "$store" = pg ]; then args+=(--store postgres --postgres-url "$pgurl"); fi
	args+=(--metrics-addr "$ip:9464")
	"$bin" "${args[@]}" >"$dir/stdout" 2>"$dir/stderr" &
	node_pid=$!
	pids+=("$node_pid")
	for _ in $(seq 100); do
		grep -q "SharedAccessKeyName=" "$dir/stdout" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-matrix: node $name did not start:" >&2
	cat "$dir/stderr" >&2
	exit 1
}

stop_nodes() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
}

fresh_db() {
	psql "$pgadmin" -qc "DROP DATABASE IF EXISTS usher_bench" -c "CREATE DATABASE usher_bench" >/dev/null
}

# bench NODE_NAME IP TRANSPORT STORE PID N PREFIX [extra…] → JSON on stdout
bench() {
	local name=$1 ip=$2 transport=$3 store=$4 pid=$5 n=$6 prefix=$7
	shift 7
	local args=(bench --data-dir "$work/$name" --transport "$transport" --devices "$n" --concurrency "$concurrency"
		--retry-after-cap 0 --json --pid "$pid" --prefix "$prefix")
	if [ "$store" = pg ]; then args+=(--store postgres --postgres-url "$pgurl"); fi
	# Nodes on one database share the recorded address (the first node's);
	# --address sends this generator to its own node.
	if [ "$transport" = https ]; then args+=(--address "$ip:443"); fi
	"$bin" "${args[@]}" "$@"
}

# server_p99 BEFORE AFTER SERIES → the p99 in ms of the observations a
# Prometheus histogram gained between two scrapes, interpolated linearly
# within the bucket that holds it.
server_p99() {
	local series=$3
	paste <(grep -F "$series" "$1") <(grep -F "$series" "$2") | awk '
		{ match($1, /le="[^"]+"/); le = substr($1, RSTART + 4, RLENGTH - 5)
		  n++; bound[n] = (le == "+Inf") ? -1 : le + 0; count[n] = $4 - $2 }
		END {
			total = count[n]; want = 0.99 * total; prev_b = 0; prev_c = 0
			for (i = 1; i <= n; i++) {
				if (count[i] >= want) {
					if (bound[i] < 0) { printf "%.1f\n", prev_b * 1000; exit }
					f = (count[i] == prev_c) ? 0 : (want - prev_c) / (count[i] - prev_c)
					printf "%.1f\n", (prev_b + f * (bound[i] - prev_b)) * 1000; exit
				}
				prev_b = bound[i]; prev_c = count[i]
			}
		}'
}

run_row() {
	local row=$1 run=$2 file=$out/$row-$run.json
	case "$row" in
	sqlite-https | sqlite-mqtt | sqlite-https-keepalive)
		local transport=https extra=()
		[ "$row" = sqlite-mqtt ] && transport=mqtt
		[ "$row" = sqlite-https-keepalive ] && extra=(--keep-alive)
		start_node a 127.0.0.9 sqlite
		bench a 127.0.0.9 "$transport" sqlite "$node_pid" "$devices" "r$run-" --baseline "${extra[@]}" >"$file"
		;;
	pg-https | pg-mqtt)
		local transport=https
		[ "$row" = pg-mqtt ] && transport=mqtt
		fresh_db
		start_node a 127.0.0.9 pg
		bench a 127.0.0.9 "$transport" pg "$node_pid" "$devices" "r$run-" --baseline >"$file"
		;;
	pg2-https)
		fresh_db
		start_node a 127.0.0.9 pg
		local pa=$node_pid
		start_node b 127.0.0.10 pg
		local pb=$node_pid
		bench a 127.0.0.9 https pg "$pa" $((devices / 2)) "a$run-" >"$file.a" &
		local ja=$!
		bench b 127.0.0.10 https pg "$pb" $((devices / 2)) "b$run-" >"$file.b"
		wait "$ja"
		bench a 127.0.0.9 https pg "$pa" $((devices / 2)) "c$run-" --baseline >"$file.c"
		jq -s '{transport: .[0].transport, nodes: 2, registrations: (.[0].registrations + .[1].registrations),
			errors: (.[0].errors + .[1].errors),
			registrationsPerSecond: (.[0].registrationsPerSecond + .[1].registrationsPerSecond),
			latencyMs: {p50: ([.[0,1].latencyMs.p50] | max), p95: ([.[0,1].latencyMs.p95] | max), p99: ([.[0,1].latencyMs.p99] | max), max: ([.[0,1].latencyMs.max] | max)},
			server: {cpuPerRegistrationMs: ((.[0].server.cpuSeconds + .[1].server.cpuSeconds) * 1000 / (.[0].registrations + .[1].registrations)),
				peakRssBytes: ([.[0].server.peakRssBytes, .[1].server.peakRssBytes] | max)},
			baseline: {handshakesPerSecond: .[2].baseline.handshakesPerSecond},
			ratio: ((.[0].registrationsPerSecond + .[1].registrationsPerSecond) / .[2].baseline.handshakesPerSecond)}' \
			"$file.a" "$file.b" "$file.c" >"$file"
		rm -f "$file.a" "$file.b" "$file.c"
		;;
	sqlite-https-80)
		start_node a 127.0.0.9 sqlite
		bench a 127.0.0.9 https sqlite "$node_pid" "$devices" "p$run-" >"$file.peak"
		local rate
		rate=$(jq '.registrationsPerSecond * 0.8 | floor' "$file.peak")
		local before=$work/metrics-before after=$work/metrics-after
		curl -fsS "http://127.0.0.9:9464/metrics" >"$before"
		bench a 127.0.0.9 https sqlite "$node_pid" "$devices" "r$run-" --baseline --rate "$rate" >"$file.run"
		curl -fsS "http://127.0.0.9:9464/metrics" >"$after"
		local p99
		p99=$(server_p99 "$before" "$after" 'usher_registration_duration_seconds_bucket{transport="https"')
		jq --argjson peak "$(jq .registrationsPerSecond "$file.peak")" --argjson p99 "$p99" \
			'. + {peakRegistrationsPerSecond: $peak, serverP99Ms: $p99}' "$file.run" >"$file"
		rm -f "$file.peak" "$file.run"
		;;
	*) echo "unknown row $row" >&2; exit 2 ;;
	esac
	stop_nodes
	jq -r --arg row "$row" --arg run "$run" \
		'"\($row) #\($run): \(.registrationsPerSecond | floor) reg/s, ratio \(.ratio * 100 | round / 100), server CPU \(.server.cpuPerRegistrationMs * 100 | round / 100) ms/reg, errors \(.errors)"' "$file" >&2
}

rows=(sqlite-https sqlite-mqtt sqlite-https-keepalive pg-https pg-mqtt pg2-https sqlite-https-80)
[ -n "$only" ] && IFS=, read -r -a rows <<<"$only"
for row in "${rows[@]}"; do
	for run in $(seq "$runs"); do run_row "$row" "$run"; done
done

echo
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $devices devices per run, concurrency $concurrency, median of $runs runs"
echo
echo "| row | reg/s | p50 / p99 ms | server CPU / reg | peak RSS | bare TLS handshakes/s | ratio | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for row in "${rows[@]}"; do
	jq -rs --arg row "$row" 'def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		"| \($row) | \([.[].registrationsPerSecond] | median | floor) | \([.[].latencyMs.p50] | median | floor) / \([.[].latencyMs.p99] | median | floor) | \([.[].server.cpuPerRegistrationMs] | median * 100 | round / 100) ms | \([.[].server.peakRssBytes] | max / 1048576 | floor) MiB | \([.[].baseline.handshakesPerSecond] | median | floor) | \([.[].ratio] | median * 100 | round / 100) | \([.[].errors] | add) |"' \
		"$out/$row"-*.json
done
if ls "$out"/sqlite-https-80-*.json >/dev/null 2>&1; then
	echo
	jq -rs 'def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		"At 80 % of peak (sqlite-https-80): peak \([.[].peakRegistrationsPerSecond] | median | floor)/s, offered \([.[].offeredRate] | median | floor)/s, served \([.[].registrationsPerSecond] | median | floor)/s; server-side p99 of the register request \([.[].serverP99Ms] | median) ms (runs: \([.[].serverP99Ms] | map(tostring) | join(", ")) ms); client-side p50/p99 (fresh TLS + register + poll) \([.[].latencyMs.p50] | median | floor)/\([.[].latencyMs.p99] | median | floor) ms"' \
		"$out"/sqlite-https-80-*.json
fi
