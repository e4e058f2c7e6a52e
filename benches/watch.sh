#!/usr/bin/env bash
# Benchmark of `netloom watch` (issue 8's targets), in a throw-away sandbox:
#   sudo benches/watch.sh [PODS] [NETLOOM_BINARY]
# Prints: a no-op apply's time; watch's repair time of a flushed address and
# of a deleted veth in one pod, and of a bridge port taken off its bridge
# (from the drift to `ip` seeing it repaired); a no-op resync's time, beside
# the no-op apply's; edit-to-converged time of a small file; idle CPU over
# 10 s; memory before and after a soak of drift events and edits. Every
# process it starts ends with it (the sandbox goes with its holder).
set -euo pipefail
pods=${1:-1000}
bin=$(readlink -f "${2:-target/release/netloom}")
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ ${NETLOOM_BENCH_INSIDE:-} != 1 ]]; then
    exec unshare --net --mount --propagation private -- env NETLOOM_BENCH_INSIDE=1 \
        bash -c 'mount -t tmpfs none /run && mkdir -p /run/netns /run/netloom && ip link set lo up && exec "$0" "$@"' \
        "$0" "$pods" "$bin"
fi
work=$(mktemp -d)
trap 'kill $watch 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
ms() { echo $(($(date +%s%N) / 1000000)); }
# The file: one bridge, PODS pods on it.
topology() { # $1: pods
    echo "name: bench"
    echo "bridges: { bb0: { addresses: [10.200.0.1/16] } }"
    echo "pods:"
    for ((i = 0; i < $1; i++)); do
        printf '  p%d: { interfaces: { eth0: { bridge: bb0, addresses: [10.200.%d.%d/16] } } }\n' \
            "$i" $((i / 250 + 1)) $((i % 250 + 2))
    done
}
topology "$pods" > "$work/big.yaml"
t0=$(ms); "$bin" apply -q "$work/big.yaml" >/dev/null; t1=$(ms)
echo "apply of $pods pods: $((t1 - t0)) ms"
t0=$(ms); "$bin" apply -q "$work/big.yaml" >/dev/null; t1=$(ms)
noop=$((t1 - t0)); echo "no-op apply: $noop ms"

"$bin" watch "$work/big.yaml" --resync 3600 2> "$work/watch.log" & watch=$!
until grep -q "reconciled (start)" "$work/watch.log"; do sleep 0.05; done
# New veths settle for a while after the start (carrier, IPv6), and watch
# looks at what they send: wait until its log stays the same for 2 s.
quiet() { local a b; a=$(stat -c %s "$1"); while sleep 2; b=$(stat -c %s "$1"); [[ $a != "$b" ]]; do a=$b; done; }
quiet "$work/watch.log"
# Milliseconds until the check holds (at most a minute: a repair that never
# comes says so rather than hanging).
until_ok() {
    local t0; t0=$(ms)
    until eval "$1" >/dev/null 2>&1; do
        if (( $(ms) - t0 > 60000 )); then echo "more than 60000 (never repaired)"; return; fi
        sleep 0.002
    done
    echo $(( $(ms) - t0 ))
}
addr_back='ip -n p7 -4 addr show eth0 | grep -q 10.200'
ip -n p7 addr flush dev eth0
echo "repair of a flushed address: $(until_ok "$addr_back") ms (a quarter of the no-op apply: $((noop / 4)) ms)"
sleep 0.5
ip -n p7 link del eth0
echo "repair of a deleted veth: $(until_ok "$addr_back") ms"
sleep 0.5
port=$(ip -o link show master bb0 | awk -F': ' 'NR == 9 {print $2}' | cut -d@ -f1)
ip link set "$port" nomaster
echo "repair of a bridge port taken off its bridge: $(until_ok "ip -o link show $port | grep -q 'master bb0'") ms"
sleep 0.5
echo "reconciles so far (their own time, from the log):"
grep -o 'reconciled (.*): [0-9]* changes in [0-9.]* ms' "$work/watch.log" | tail -3 | sed 's/^/  /'
kill -TERM $watch; wait $watch || true

# A no-op resync: a full reconcile, as apply's, with nothing to do. Three
# of them, then a no-op apply again: on a busy machine one reading of a
# thousand namespaces varies by seconds.
"$bin" watch "$work/big.yaml" --resync 5 2> "$work/resync.log" & watch=$!
until (( $(grep -c "reconciled (resync)" "$work/resync.log") >= 3 )); do sleep 0.1; done
kill -TERM $watch; wait $watch || true
resyncs=$(grep -o 'reconciled (resync): [0-9]* changes in [0-9.]* ms' "$work/resync.log" |
    sed 's/reconciled (resync): //' | paste -sd ';' | sed 's/;/; /g')
t0=$(ms); "$bin" apply -q "$work/big.yaml" >/dev/null; t1=$(ms)
echo "no-op resyncs: $resyncs (no-op apply before them: $noop ms, after: $((t1 - t0)) ms)"

# A small file: edit-to-converged.
topology 3 > "$work/small.yaml"
"$bin" watch "$work/small.yaml" --resync 3600 2> "$work/small.log" & watch=$!
until grep -q "reconciled (start)" "$work/small.log"; do sleep 0.05; done
sleep 0.5
sed 's/10.200.1.2\//10.200.1.99\//' "$work/small.yaml" > "$work/small.new"
t0=$(ms); mv "$work/small.new" "$work/small.yaml"
until ip -n p0 -4 addr show eth0 | grep -q 10.200.1.99; do sleep 0.002; done
echo "small file: save to converged: $(( $(ms) - t0 )) ms"

# Idle CPU: clock ticks of the watch process over 10 s of nothing.
ticks() { awk '{print $14 + $15}' /proc/$watch/stat; }
sleep 5; a=$(ticks); sleep 10; b=$(ticks)
echo "idle CPU over 10 s: $((b - a)) clock ticks ($(getconf CLK_TCK)/s)"

rss() { awk '/VmRSS/ {print $2}' /proc/$watch/status; }
before=$(rss)
for ((i = 0; i < 150; i++)); do
    ip -n p$((i % 3)) addr flush dev eth0
    until ip -n p$((i % 3)) -4 addr show eth0 | grep -q 10.200; do sleep 0.002; done
    if ((i % 3 == 0)); then
        sed -i "s/^name: bench.*/name: bench # edit $i/" "$work/small.yaml"
    fi
done
sleep 1
echo "memory (VmRSS): $before kB before, $(rss) kB after 150 drift repairs and 50 edits"
kill -TERM $watch; wait $watch || true
