#!/bin/bash
# SPDX-License-Identifier: MIT
# Node caches that serve each other (issue 13, docs/peers.md): one nginx
# origin behind a counting proxy, three daemons on 127.0.0.1 with one peers
# file and caches of 40% of the dataset each.  Every byte read through any
# node is right; after the first pass the origin sees at most 2% of the
# dataset per pass; a node killed with -9 mid-read costs no read and comes
# back; a peer that resets connections and corrupts bytes costs nothing and
# is marked down; requests without the secret or for anything outside the
# source are refused; a node with a seed plan prefetches what it owns of the
# shards of ranks on other nodes (cluster prefetch).
. "$(dirname "$0")/remote-lib.sh"
need_daemon
command -v curl >/dev/null || skip "curl is not installed"

NODES=3
declare -a NPID NMNT NPORT NLOG

# Every daemon and mount of this test, whatever happened.
peers_cleanup() {
	local i
	for i in "${!NMNT[@]}"; do
		mountpoint -q "${NMNT[$i]}" 2>/dev/null &&
			{ fusermount3 -u "${NMNT[$i]}" 2>/dev/null || fusermount3 -uz "${NMNT[$i]}" 2>/dev/null; }
	done
	for i in "${!NPID[@]}"; do
		kill "${NPID[$i]}" 2>/dev/null
	done
	for i in "${!NPID[@]}"; do
		wait "${NPID[$i]}" 2>/dev/null
	done
	cleanup
}
trap peers_cleanup EXIT

# start_node I ORIGIN_URL CACHE_SIZE [OPTIONS...]: daemon I, mounted on
# $T/mnt$I with its cache in $T/cache$I.
start_node() {
	local i=$1 url=$2 size=$3 k
	shift 3
	NMNT[$i]=$T/mnt$i
	NLOG[$i]=$T/node$i.log
	mkdir -p "${NMNT[$i]}" "$T/cache$i"
	"$EPOCHFS" "$url" "${NMNT[$i]}" -f --cache-dir "$T/cache$i" --cache-size "$size" \
		"$@" >>"${NLOG[$i]}" 2>&1 &
	NPID[$i]=$!
	for k in $(seq 300); do
		mountpoint -q "${NMNT[$i]}" && return 0
		kill -0 "${NPID[$i]}" 2>/dev/null || break
		sleep 0.1
	done
	cat "${NLOG[$i]}"
	fail "node $i did not mount"
}

# stop_node I: unmount; the daemon must exit 0 (a sanitizer's report
# at exit fails it).
stop_node() {
	local st=0
	fusermount3 -u "${NMNT[$1]}" || fail "cannot unmount node $1"
	wait "${NPID[$1]}" 2>/dev/null || st=$?
	unset "NPID[$1]"
	[ $st = 0 ] || { tail -30 "${NLOG[$1]}"; fail "node $1 exited with status $st"; }
}

# nstat I EXPR: a Python expression over node I's stats (as s).
nstat() {
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"${NMNT[$1]}/.epochfs/stats" "$2"
}

origin_total() {
	local i sum=0
	for i in $(seq $NODES); do
		sum=$((sum + $(nstat "$i" 's["origin_bytes"]')))
	done
	echo $sum
}

# origin_gets: GETs of dataset files the origin proxy forwarded so far.
origin_gets() {
	grep -c '^GET /data/.*[^/] [0-9]' "$T/origin.timing" 2>/dev/null || echo 0
}

log "dataset and origin"
mkdir -p "$T/www"
make_dataset "$T/www/data" 400
rm -rf "$T/www/data/deep" # names with spaces are covered elsewhere
DATA_BYTES=$(du -sb --apparent-size "$T/www/data" | cut -f1)
NFILES=$(count_files "$T/www/data")
start_nginx "$T/www"
start_proxy "$NGINX_PORT" --timing-log "$T/origin.timing"
ORIGIN=http://127.0.0.1:$PROXY_PORT/data/
# 40% of the dataset, plus what the cache's own index and files take.
CSIZE=$((DATA_BYTES * 40 / 100 + NFILES * 4096 * 40 / 100 + (2 << 20)))
echo "dataset: $NFILES files, $DATA_BYTES bytes; caches of $CSIZE bytes"

head -c 32 /dev/urandom | base64 >"$T/secret"
chmod 600 "$T/secret"
for i in $(seq $NODES); do
	NPORT[$i]=$(free_port)
	echo "127.0.0.1:${NPORT[$i]}" >>"$T/peers"
done
for i in $(seq $NODES); do
	start_node "$i" "$ORIGIN" "$CSIZE" --listen "127.0.0.1:${NPORT[$i]}" --peers "@$T/peers" \
		--peer-secret-file "$T/secret"
done
for i in $(seq $NODES); do
	[ "$(nstat "$i" '[p["state"] for p in s["peers"]].count("self")')" = 1 ] ||
		fail "node $i does not find itself in the peers file: $(nstat "$i" 's["peers"]')"
done

log "pass 1: the whole dataset through node 1"
python3 "$SRCDIR/tests/peer_read.py" "$T/www/data" "${NMNT[1]}" 1 8 || fail "pass 1 read wrong bytes"

for i in 2 3; do
	log "pass $i: through node $i, another order"
	o0=$(origin_total)
	g0=$(origin_gets)
	python3 "$SRCDIR/tests/peer_read.py" "$T/www/data" "${NMNT[$i]}" "$i" 8 ||
		fail "pass $i read wrong bytes"
	o1=$(origin_total)
	g1=$(origin_gets)
	echo "origin: $((o1 - o0)) bytes ($(((o1 - o0) * 10000 / DATA_BYTES)) per 10,000 of the dataset), $((g1 - g0)) GETs; node $i got $(nstat "$i" 's["peer_bytes_in"]') bytes from peers"
	[ $(((o1 - o0) * 100)) -le $((DATA_BYTES * 2)) ] ||
		fail "pass $i: the origin sent $((o1 - o0)) bytes, more than 2% of $DATA_BYTES"
done

# Nodes 1-3 have the dataset in their page caches: a fresh client-only
# node (no --listen) reads through the three, so that its reads reach them.
log "kill -9 node 3 in the middle of a read through a fourth node"
start_node 4 "$ORIGIN" "$((CSIZE / 4))" --peers "@$T/peers" --peer-secret-file "$T/secret"
PEER_READ_PROGRESS=$T/quarter python3 "$SRCDIR/tests/peer_read.py" "$T/www/data" "${NMNT[4]}" 11 4 \
	>"$T/read-kill.out" 2>&1 &
rpid=$!
for k in $(seq 3000); do # a quarter of the files read: the middle of the read
	[ -e "$T/quarter" ] && break
	sleep 0.01
done
kill -9 "${NPID[3]}"
wait "${NPID[3]}" 2>/dev/null
unset "NPID[3]"
wait $rpid || { cat "$T/read-kill.out"; fail "a read failed or was wrong after a peer died"; }
cat "$T/read-kill.out"
echo "node 4: $(nstat 4 's["peer_errors"]') peer errors, peers $(nstat 4 '[(p["addr"], p["state"]) for p in s["peers"]]')"
[ "$(nstat 4 's["peer_errors"]')" -gt 0 ] || fail "node 4 never found node 3 dead (the kill came too late?)"
stop_node 4
fusermount3 -u "${NMNT[3]}" 2>/dev/null || fusermount3 -uz "${NMNT[3]}"

log "node 3 comes back (its cache kept) and serves again"
start_node 3 "$ORIGIN" "$CSIZE" --listen "127.0.0.1:${NPORT[3]}" --peers "@$T/peers" \
	--peer-secret-file "$T/secret"
start_node 5 "$ORIGIN" "$((CSIZE / 4))" --peers "@$T/peers" --peer-secret-file "$T/secret"
python3 "$SRCDIR/tests/peer_read.py" "$T/www/data" "${NMNT[5]}" 12 8 100 || fail "a read through node 5 was wrong"
s1=$(nstat 3 's["peer_served"]')
echo "node 3 served $s1 requests after its restart"
[ "$s1" -gt 0 ] || fail "node 3 does not serve again after its restart"
stop_node 5

log "access: the secret, keys outside the source, ranges"
P1=${NPORT[1]}
SEC=$(cat "$T/secret")
# A file node 1 holds whole (user.epochfs.cached = SIZE/SIZE), of some size.
F=$(python3 -c '
import os, sys
d = sys.argv[1]
for n in sorted(os.listdir(os.path.join(sys.argv[2], "class00"))):
    c, _, size = os.getxattr(os.path.join(d, "class00", n), "user.epochfs.cached").decode().partition("/")
    if c == size and int(size) > 1000:
        print(n)
        break
' "${NMNT[1]}" "$T/www/data")
[ -n "$F" ] || fail "node 1 holds no file of class00 whole"
FSIZE=$(stat -c %s "$T/www/data/class00/$F")
r0=$(nstat 1 's["peer_refused"]')
# code EXPECTED CURL-ARGS...: the status must be EXPECTED and no byte of the
# dataset may come back with it.
code() {
	local want=$1 got
	shift
	got=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 5 "$@")
	[ "$got" = "$want" ] || fail "curl $*: HTTP $got, expected $want"
	if [ "$want" != 206 ] && [ "$want" != 200 ] && [ -s "$T/body" ] &&
		[ "$(stat -c %s "$T/body")" -gt 64 ]; then
		fail "curl $*: a $got answer with a body of $(stat -c %s "$T/body") bytes"
	fi
}
U="http://127.0.0.1:$P1/v1/object?key=class00/$F&size=$FSIZE&etag=&mtime=0"
code 403 "http://127.0.0.1:$P1/"
code 403 "$U"
code 403 -H "X-Epochfs-Secret: wrong" "$U"
code 403 -H "X-Epochfs-Secret: ${SEC}x" "$U"
code 403 -H "X-Epochfs-Secret: " "$U"
code 404 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/"
code 404 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object/../../etc/passwd"
code 400 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=../etc/passwd&size=1"
code 400 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=%2Fetc%2Fpasswd&size=1"
code 400 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=class00/..%2F..%2Fetc/passwd&size=1"
code 400 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=class00%00/$F&size=$FSIZE"
code 404 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=etc/passwd&size=1"
code 404 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=.epochfs/stats&size=1"
code 400 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=class00/$F"
code 400 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=class00/$F&size=-1"
code 400 -H "X-Epochfs-Secret: $SEC" -H "Range: bytes=abc" "$U"
code 400 -H "X-Epochfs-Secret: $SEC" -H "Range: bytes=5-2" "$U"
code 400 -H "X-Epochfs-Secret: $SEC" -H "Range: bytes=0-1,4-5" "$U"
code 400 -H "X-Epochfs-Secret: $SEC" -H "Range: bytes=-5" "$U"
code 400 -H "X-Epochfs-Secret: $SEC" -H "Range: items=0-1" "$U"
code 416 -H "X-Epochfs-Secret: $SEC" -H "Range: bytes=$FSIZE-$((FSIZE + 10))" "$U"
code 416 -H "X-Epochfs-Secret: $SEC" -H "Range: bytes=0-99999999999" "$U"
code 409 -H "X-Epochfs-Secret: $SEC" "http://127.0.0.1:$P1/v1/object?key=class00/$F&size=$((FSIZE + 1))"
code 405 -H "X-Epochfs-Secret: $SEC" -X DELETE "$U"
code 405 -H "X-Epochfs-Secret: $SEC" -X PUT --data-binary "x" "$U"
r1=$(nstat 1 's["peer_refused"]')
echo "node 1 refused $((r1 - r0)) requests"
[ $((r1 - r0)) -ge 22 ] || fail "node 1 counted $((r1 - r0)) refusals"
grep -q "peer server: refused a request" "${NLOG[1]}" || fail "no refusal was logged"
# The right request, for comparison (served from the cache, or fetched).
code 206 -H "X-Epochfs-Secret: $SEC" -H "Range: bytes=0-$((FSIZE - 1))" "$U"
cmp -s "$T/body" "$T/www/data/class00/$F" || fail "the peer server sent wrong bytes"
kill -0 "${NPID[1]}" && mountpoint -q "${NMNT[1]}" || fail "node 1 did not survive the requests"

log "without --peer-secret-file the server binds the loopback only (--listen 0.0.0.0 too)"
P7=$(free_port)
start_node 7 "$ORIGIN" "$((CSIZE / 4))" --listen "0.0.0.0:$P7" --peers "127.0.0.1:$P7"
grep -q "no --peer-secret-file: listening on the loopback only" "${NLOG[7]}" ||
	fail "node 7 did not say it listens on the loopback only: $(cat "${NLOG[7]}")"
code 404 "http://127.0.0.1:$P7/"
code 206 -H "Range: bytes=0-9" "http://127.0.0.1:$P7/v1/object?key=class00/$F&size=$FSIZE&etag=&mtime=0"
# the bound address itself, whatever interfaces this host has
ss -Hltn "sport = :$P7" >"$T/ss7"
grep -q "127.0.0.1:$P7 " "$T/ss7" && ! grep -vq "127.0.0.1:$P7 " "$T/ss7" ||
	fail "node 7 listens on $(cat "$T/ss7")"
for ip in $(hostname -I 2>/dev/null); do
	case $ip in 127.*|*:*) continue ;; esac
	code 000 "http://$ip:$P7/"
done
stop_node 7

log "a peer behind a proxy that resets connections and corrupts bytes"
PROXY_LOG=$T/proxy.log
start_proxy "${NPORT[2]}" --reset-rate 0.2 --corrupt-rate 0.3 --seed 5 --outage-file "$T/outage"
echo "127.0.0.1:$PROXY_PORT" >"$T/peers-bad"
start_node 6 "$ORIGIN" "$((CSIZE / 4))" --peers "@$T/peers-bad" --peer-secret-file "$T/secret"
python3 "$SRCDIR/tests/peer_read.py" "$T/www/data" "${NMNT[6]}" 21 8 || fail "a read through a bad peer was wrong or failed"
echo "node 6: $(nstat 6 's["peer_errors"]') peer errors, $(nstat 6 's["peer_bytes_in"]') bytes from the peer"
[ "$(nstat 6 's["peer_errors"]')" -gt 0 ] || fail "the faulty peer was never caught"
grep -q "down for" "${NLOG[6]}" || fail "the faulty peer was not marked down"
grep -o "peer 127.0.0.1:$PROXY_PORT: [^;]*" "${NLOG[6]}" | sort | uniq -c
# An outage after a remount (the page cache is gone with the old mount):
# every request to the peer is reset; it must show down while it lasts.
stop_node 6
touch "$T/outage"
start_node 6 "$ORIGIN" "$((CSIZE / 4))" --peers "@$T/peers-bad" --peer-secret-file "$T/secret"
python3 "$SRCDIR/tests/peer_read.py" "$T/www/data" "${NMNT[6]}" 22 4 >"$T/read-outage.out" 2>&1 &
rpid=$!
seen=
while kill -0 $rpid 2>/dev/null; do
	[ "$(nstat 6 's["peers"][0]["state"]')" = down ] && seen=1
	sleep 0.05
done
wait $rpid || { cat "$T/read-outage.out"; fail "a read during a peer outage failed"; }
cat "$T/read-outage.out"
[ -n "$seen" ] || fail "the peer in an outage never showed down: $(nstat 6 's["peers"]')"
log "epochfs-stat shows the peers within 80 columns; Prometheus has them"
COLUMNS=80 "${TOOLS:-$BUILDDIR}/epochfs-stat" "${NMNT[6]}" >"$T/stat6" || fail "epochfs-stat failed"
grep -q "^  peers     origin" "$T/stat6" || { cat "$T/stat6"; fail "no peers line in epochfs-stat"; }
grep -q "127.0.0.1:$PROXY_PORT " "$T/stat6" || { cat "$T/stat6"; fail "the peer's row is missing"; }
awk 'length > 80 { bad = 1; print "too wide: " $0 } END { exit bad }' "$T/stat6" ||
	fail "epochfs-stat passes 80 columns with peers"
"${TOOLS:-$BUILDDIR}/epochfs-stat" --prometheus "${NMNT[6]}" >"$T/prom6" || fail "epochfs-stat --prometheus failed"
grep -q '^epochfs_origin_bytes_total{' "$T/prom6" && grep -q "addr=\"127.0.0.1:$PROXY_PORT\"" "$T/prom6" ||
	fail "Prometheus output lacks the peer figures: $(grep -i peer "$T/prom6" | head -5)"
stop_node 6

log "cluster prefetch: a plan on one node prefetches what it owns of the other ranks' shards"
# Two fresh nodes, whole-dataset caches.  Node 8 plans rank 0 of a world of
# 2; node 9 plans nothing and reads nothing.  Node 8 prefetches its rank's
# shard (what node 9 owns through node 9), and, from the job's order, what it
# owns of rank 1's shard, which no rank of its own reads: about half of it.
for i in 8 9; do
	NPORT[$i]=$(free_port)
	echo "127.0.0.1:${NPORT[$i]}" >>"$T/peers89"
done
CFULL=$((DATA_BYTES + NFILES * 4096 + (4 << 20)))
for i in 8 9; do
	start_node "$i" "$ORIGIN" "$CFULL" --listen "127.0.0.1:${NPORT[$i]}" --peers "@$T/peers89" \
		--peer-secret-file "$T/secret"
done
# (the files are not images: the default ImageFolder manifest has none)
(cd "$T/www/data" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"${NMNT[8]}/.epochfs/manifest" ||
	fail "manifest refused"
echo "seed=7 sampler=distributed world=2 rank=0" >"${NMNT[8]}/.epochfs/seed" || fail "seed refused"
python3 - "$T/www/data" "${NMNT[8]}" "${NMNT[9]}" "${TOOLS:-$BUILDDIR}/epochfs-peersim" <<'PY' ||
import os, subprocess, sys, time
src, m8, m9, sim = sys.argv[1:5]
manifest = [l for l in open(m8 + "/.epochfs/manifest").read().split("\n") if l]

def shard(epoch, rank):  # the daemon's own order code (check_peersim checks it agrees)
    out = subprocess.run([sim, "--dump-order", str(epoch), str(rank), str(len(manifest)), "--nodes", "2",
                          "--ranks-per-node", "1", "--samples", str(len(manifest)), "--seed", "7"],
                         check=True, capture_output=True, text=True).stdout
    return set(manifest[int(i)] for i in out.split(":", 1)[1].split())

# Node 8's own rank prefetches its epochs 0 and 1; what only rank 1 reads
# in epoch 0 comes to node 8 only from the job's order, when node 8 owns it.
mine = shard(0, 0) | shard(1, 0)
other = [p for p in manifest if p not in mine]

def cached(m, p):
    have, size = os.getxattr(os.path.join(m, p), "user.epochfs.cached").decode().split("/")
    return int(have) == int(size)

t0, last, n8 = time.monotonic(), -1, 0
while time.monotonic() - t0 < 60:
    n8 = sum(cached(m8, p) for p in other)
    if n8 == last and n8 > 0:
        break  # settled
    last = n8
    time.sleep(1)
n9 = sum(cached(m9, p) for p in other)
print("files only rank 1 reads: %d; cached on node 8 (which plans rank 0 only): %d; on node 9: %d"
      % (len(other), n8, n9))
ok = len(other) * 0.3 <= n8 <= len(other) * 0.7 and n9 == 0
# every byte right through node 9, which asks node 8 for what node 8 owns
bad = 0
for p in other:
    with open(os.path.join(m9, p), "rb") as f, open(os.path.join(src, p), "rb") as g:
        bad += f.read() != g.read()
print("read them through node 9: %d wrong" % bad)
sys.exit(0 if ok and not bad else 1)
PY
	fail "cluster prefetch (above)"
[ "$(nstat 8 's["prefetch_issued"]')" -gt 0 ] || fail "node 8 issued no prefetch"
# node 8 opened none of those files itself: its prefetches were used by node 9
echo "node 8: prefetch used $(nstat 8 's["prefetch_used"]'), opens $(nstat 8 's["opens"]')"
[ "$(nstat 8 's["prefetch_used"]')" -gt 0 ] || fail "the prefetches node 9 read through node 8 are not counted used"
stop_node 8
stop_node 9

log "SIGHUP reads the peers file again (and does not unmount)"
grep -v ":${NPORT[3]}\$" "$T/peers" >"$T/peers.new" && mv "$T/peers.new" "$T/peers"
kill -HUP "${NPID[1]}"
for k in $(seq 50); do
	[ "$(nstat 1 'len(s["peers"])')" = 2 ] && break
	sleep 0.1
done
[ "$(nstat 1 'len(s["peers"])')" = 2 ] || fail "node 1 did not drop node 3 at SIGHUP: $(nstat 1 's["peers"]')"
python3 "$SRCDIR/tests/peer_read.py" "$T/www/data" "${NMNT[1]}" 31 8 20 || fail "a read after SIGHUP failed"

for i in $(seq $NODES); do
	kill -0 "${NPID[$i]}" || fail "node $i died"
	stop_node "$i"
done
echo "PASS"
