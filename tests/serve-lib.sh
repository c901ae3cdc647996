# SPDX-License-Identifier: MIT
# Sourced by the remote tests and benchmarks: what serving a dataset on
# 127.0.0.1 takes, written once.

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait until 127.0.0.1:$1 accepts connections (10 s); 1 (and a line on
# stderr) when nothing does.
wait_port() {
	local i
	for i in $(seq 100); do
		python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on 127.0.0.1:$1" >&2
	return 1
}

# nginx_conf DIR WORKERS PORT ROOT [PORT ROOT ...] writes
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
