#!/bin/bash
# SPDX-License-Identifier: MIT
# The HTTP backend on the HTML directory listings people already have
# (issue 15, item 8): python3 -m http.server (no sizes in its pages: every
# size comes from a HEAD, and it ignores Range), nginx's default autoindex
# (exact sizes) and nginx with autoindex_exact_size off (sizes over 9999
# bytes as "12K": those get a HEAD).  Each is mounted and every file read
# by 8 threads in random order and compared byte for byte.  Then a slow
# JSON listing logs its progress, and a page that is no listing fails the
# mount with a message that names the servers that work.  All servers
# listen on 127.0.0.1 only and are stopped by the EXIT trap.
source "$(dirname "$0")/remote-lib.sh"
need_daemon

mkdir -p "$T/www/ds"
make_dataset "$T/www/ds" 120
# names a listing page has to escape one way or another
mkdir -p "$T/www/ds/odd dir"
for n in 'space name.bin' 'amp&x.bin' 'pct%20x.bin' "unicod$(printf '\xc3\xa9').bin" \
	'colon:x.bin' 'quote"x<y>.bin' "apos'x.bin" 'plus+x.bin' 'odd dir/inner #1.bin'; do
	head -c $((RANDOM * 3)) /dev/urandom >"$T/www/ds/$n"
done
: >"$T/www/ds/empty"
want=$(count_files "$T/www/ds")

# check_mount URL NAME [OPTIONS]: mount, count, compare every byte, unmount.
check_mount() {
	local url=$1 name=$2
	shift 2
	log "$name"
	CACHE_DIR=$T/cache-$name mount_epochfs "$url" "$@" || fail "$name: mount failed: $(cat "$T/epochfs.log")"
	got=$(count_files "$MNT")
	[ "$got" = "$want" ] || { cat "$T/epochfs.log"; fail "$name: listed $got files, want $want"; }
	compare_tree "$T/www/ds" "$MNT" 8 || { tail -20 "$T/epochfs.log"; fail "$name: bytes differ"; }
	[ "$(stat_field backend_errors)" = 0 ] || fail "$name: backend errors: $(cat "$MNT/.epochfs/stats")"
	[ "$(stat_field skipped_keys)" = 0 ] || fail "$name: skipped keys: $(grep skipping "$T/epochfs.log")"
	grep "HEAD\|HTML" "$T/epochfs.log" || true
	umount_epochfs || fail "$name: unmount failed"
	cp "$T/epochfs.log" "$T/epochfs-$name.log"
}

# python3 -m http.server
PY_PORT=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$PY_PORT" >"$T/python.log" 2>&1 &
PIDS+=($!)
wait_port "$PY_PORT" || fail "python3 -m http.server did not start: $(cat "$T/python.log")"
check_mount "http://127.0.0.1:$PY_PORT/ds/" python
heads=$(grep -o "[0-9]* sizes were asked for with HEAD" "$T/epochfs-python.log" | cut -d' ' -f1)
[ "$heads" = "$want" ] || fail "python: $heads HEADs, want one per file ($want)"

# nginx with its default HTML autoindex, and with approximate sizes
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || skip "nginx is not installed"
NG1=$(free_port)
NG2=$(free_port)
mkdir -p "$T/nginx/logs" "$T/nginx/tmp"
{
	echo "worker_processes 2;"
	[ "$(id -u)" = 0 ] && echo "user root;"
	echo "pid $T/nginx/nginx.pid;"
	echo "error_log $T/nginx/logs/error.log warn;"
	echo "events { worker_connections 1024; }"
	echo "http {"
	echo "	access_log off;"
	for t in client_body proxy fastcgi uwsgi scgi; do
		echo "	${t}_temp_path $T/nginx/tmp/$t;"
	done
	echo "	server { listen 127.0.0.1:$NG1; root $T/www; location / { autoindex on; } }"
	echo "	server { listen 127.0.0.1:$NG2; root $T/www;"
	echo "		location / { autoindex on; autoindex_exact_size off; } }"
	echo "}"
} >"$T/nginx/nginx.conf"
${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)} -p "$T/nginx" -c "$T/nginx/nginx.conf" \
	-g 'daemon off;' 2>"$T/nginx/logs/stderr" &
PIDS+=($!)
wait_port "$NG1" || fail "nginx did not start: $(cat "$T/nginx/logs/"*)"

check_mount "http://127.0.0.1:$NG1/ds/" nginx-html
! grep -q "sizes were asked for with HEAD" "$T/epochfs-nginx-html.log" ||
	fail "nginx-html: HEADs although every size is exact"
check_mount "http://127.0.0.1:$NG2/ds/" nginx-approx
big=$(find "$T/www/ds" -type f -size +9999c | wc -l)
heads=$(grep -o "[0-9]* sizes were asked for with HEAD" "$T/epochfs-nginx-approx.log" | cut -d' ' -f1)
[ "$heads" = "$big" ] || fail "nginx-approx: $heads HEADs, want one per file over 9999 bytes ($big)"

log "a slow listing says how far it got (issue 15, item 7)"
# 40 directories of 1,000 files, each page 0.5 s late: about 2.5 s with 8
# pages in flight, past the 2 s between progress lines
SLOW_PORT=$(free_port)
python3 - "$SLOW_PORT" <<'PY' >"$T/slow.log" 2>&1 &
import http.server, json, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/":
            body = [{"name": "d%02d" % i, "type": "directory", "mtime": "Fri, 01 Mar 2024 10:20:30 GMT"} for i in range(40)]
        else:
            time.sleep(0.5)
            body = [{"name": "f%04d" % i, "type": "file", "mtime": "Fri, 01 Mar 2024 10:20:30 GMT", "size": i} for i in range(1000)]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PIDS+=($!)
wait_port "$SLOW_PORT" || fail "the slow server did not start: $(cat "$T/slow.log")"
CACHE_DIR=$T/cache-slow mount_epochfs "http://127.0.0.1:$SLOW_PORT/" || fail "slow: mount failed: $(cat "$T/epochfs.log")"
[ "$(count_files "$MNT")" = 40000 ] || fail "slow: listed $(count_files "$MNT") files, want 40000"
grep -E "listing http://127.0.0.1:$SLOW_PORT/: listed [0-9]{1,3}(,[0-9]{3})* objects, [0-9]+\.[0-9] s" \
	"$T/epochfs.log" || fail "slow: no progress line: $(cat "$T/epochfs.log")"
umount_epochfs || fail "slow: unmount failed"

log "a page that is not a directory listing"
echo "<html><title>Welcome</title><body>hello</body></html>" >"$T/www/index.html"
MNT=
if "$EPOCHFS" "http://127.0.0.1:$PY_PORT/" "$T/mnt" -f --cache-dir "$T/cache-none" \
	>"$T/none.log" 2>&1; then
	fail "mounting a page that is not a listing succeeded"
fi
grep "is not a directory listing" "$T/none.log" || fail "no clear message: $(cat "$T/none.log")"
echo "PASS: remote-listing"
