# SPDX-License-Identifier: MIT
# Sourced by the remote tests and benchmarks: one nginx configuration for
# them all.  nginx_conf DIR WORKERS PORT ROOT [PORT ROOT ...] writes
# DIR/nginx.conf (and the directories it names): one server per PORT ROOT
# pair on 127.0.0.1, serving ROOT with a JSON autoindex.  Start nginx with
# -p DIR -c DIR/nginx.conf -g 'daemon off;'.
nginx_conf() {
	local dir=$1 workers=$2
	shift 2
	mkdir -p "$dir/logs" "$dir/tmp"
	{
		echo "worker_processes $workers;"
		[ "$(id -u)" = 0 ] && echo "user root;"
		echo "pid $dir/nginx.pid;"
		echo "error_log $dir/logs/error.log warn;"
		echo "events { worker_connections 1024; }"
		echo "http {"
		echo "	access_log off;"
		for t in body proxy fastcgi uwsgi scgi; do
			echo "	${t/body/client_body}_temp_path $dir/tmp/$t;"
		done
		echo "	keepalive_requests 100000;"
		while [ $# -ge 2 ]; do
			echo "	server {"
			echo "		listen 127.0.0.1:$1;"
			echo "		root $2;"
			echo "		location / { autoindex on; autoindex_format json; }"
			echo "	}"
			shift 2
		done
		echo "}"
	} >"$dir/nginx.conf"
}
