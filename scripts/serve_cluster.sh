#!/usr/bin/env bash
# Scale-out on one machine: N `vkllm serve` instances on loopback ports behind nginx, which
# sends every request of a session (the X-Session-Id header) to the same instance by
# consistent hashing, so a conversation's growing prompt meets its own prefix cache, and fails
# over to another instance when one is down. docs/scale-out.md explains the configuration.
# nginx runs as this user with a generated configuration in a temporary folder (no root, no
# system configuration, nothing left behind). Prints each instance, nginx and the front URL on
# stdout, then runs until Ctrl-C (SIGINT) or SIGTERM, which stop everything (exit 0). An
# instance that exits is reported and the others go on serving; nginx exiting stops everything
# (exit 1).
# Usage: scripts/serve_cluster.sh [-n N] [--host ADDR] [--port PORT] [-- SERVE_OPTIONS...]
#        -n N         instances (default 2)
#        --host ADDR  the address nginx listens on (default 127.0.0.1)
#        --port PORT  nginx's port (default 8080)
#        SERVE_OPTIONS go to every `vkllm serve` (-m, -t, --parallel, --api-key ...; not --host
#        or --port: the instances listen on loopback ports of their own). On one machine, give
#        each instance its share of the cores (-t).
# Env:   VKLLM_BIN (default build/vkllm)
# Example: scripts/serve_cluster.sh -n 2 --port 8080 -- -m model.gguf -t 1 --parallel 4
set -euo pipefail
me=serve_cluster
. "$(dirname "$0")/lib.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"
vkllm="${VKLLM_BIN:-$root/build/vkllm}"

n=2 host=127.0.0.1 port=8080 serve_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) [ $# -ge 2 ] || die "-n needs a number"; n="$2"; shift ;;
        --host) [ $# -ge 2 ] || die "--host needs an address"; host="$2"; shift ;;
        --port) [ $# -ge 2 ] || die "--port needs a number"; port="$2"; shift ;;
        --) shift; serve_args=("$@"); break ;;
        -h|--help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help; vkllm serve's options go after --)" ;;
    esac
    shift
done
[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "-n: '$n' is not a positive integer"
[[ "$port" =~ ^[1-9][0-9]*$ ]] && [ "$port" -le 65535 ] || die "--port: '$port' is not a port"
for a in "${serve_args[@]}"; do
    case "$a" in
        --host|--host=*|--port|--port=*)
            die "vkllm serve's $a: the instances listen on loopback ports this script picks" ;;
    esac
done
nginx=$(command -v nginx || true)
# Debian puts nginx in /usr/sbin, which is not on every user's PATH
[ -n "$nginx" ] || { [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx; } ||
    die "nginx not found (Debian: apt-get install nginx; scripts/deps.sh installs it)"
[ -x "$vkllm" ] || die "$vkllm not found (build it: cmake --build build; or set VKLLM_BIN)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-cluster.XXXXXX")
pids=() ports=() gone=() nginx_pid="" stopped=0

# Stops what is still running (SIGTERM: vkllm serve and nginx both stop cleanly on it; a
# process still there after 30 s is killed) and removes the temporary folder.
stop_all() {
    [ "$stopped" -eq 0 ] || return 0
    stopped=1
    local p t
    for p in "$nginx_pid" "${pids[@]}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "$nginx_pid" "${pids[@]}"; do
        [ -n "$p" ] || continue
        for ((t = 0; t < 300; t++)); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap stop_all EXIT
trap 'say "stopping"; stop_all; exit 0' INT TERM

# ---- the instances ----
for ((i = 0; i < n; i++)); do
    "$vkllm" serve --host 127.0.0.1 --port 0 "${serve_args[@]}" \
        >/dev/null 2>"$tmp/instance-$i.log" &
    pids+=("$!")
    ports+=("")
    gone+=(0)
done
# Each prints the port it got when it listens, and "ready" once its model is loaded; nginx
# starts when all are ready, so that its first requests meet no 503.
for ((i = 0; i < n; i++)); do
    for ((t = 0; ; t++)); do
        kill -0 "${pids[$i]}" 2>/dev/null ||
            die "instance $i exited while starting: $(tail -n 5 "$tmp/instance-$i.log")"
        if [ -z "${ports[$i]}" ]; then
            ports[i]=$(sed -nE 's|^vkllm serve: listening on http://127\.0\.0\.1:([0-9]+)/.*|\1|p' \
                           "$tmp/instance-$i.log" | head -n 1)
        fi
        grep -q '^vkllm serve: ready' "$tmp/instance-$i.log" && [ -n "${ports[$i]}" ] && break
        [ "$t" -lt 3000 ] ||
            die "instance $i not ready after 300 s: $(tail -n 5 "$tmp/instance-$i.log")"
        sleep 0.1
    done
done

# ---- nginx ----
# Why each setting is there: docs/scale-out.md.
upstreams=""
for ((i = 0; i < n; i++)); do
    upstreams+="        server 127.0.0.1:${ports[$i]} max_fails=1 fail_timeout=10s;"$'\n'
done
user_line=""
# nginx started by root hands its workers to another user (nobody), who could not read this
# folder; started by anyone else it runs as that user and the directive would only warn
[ "$(id -u)" -ne 0 ] || user_line="user root;"
mkdir -p "$tmp/temp"
cat >"$tmp/nginx.conf" <<EOF
# generated by scripts/serve_cluster.sh: $n vkllm serve instances behind one front
$user_line
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $tmp/temp/body;
    proxy_temp_path $tmp/temp/proxy;
    fastcgi_temp_path $tmp/temp/fastcgi;
    uwsgi_temp_path $tmp/temp/uwsgi;
    scgi_temp_path $tmp/temp/scgi;
    log_format upstream '\$remote_addr [\$time_local] "\$request" \$status '
                        'session="\$http_x_session_id" upstream=\$upstream_addr '
                        'upstream_status=\$upstream_status time=\$request_time';
    access_log $tmp/access.log upstream;

    # the session key: the client's X-Session-Id; a request without one gets a key of its
    # own (a random id), so unkeyed requests spread over the instances
    map \$http_x_session_id \$session_key {
        ""      \$request_id;
        default \$http_x_session_id;
    }
    upstream vkllm {
        hash \$session_key consistent;
$upstreams        keepalive 16;
    }
    server {
        listen $host:$port;
        # vkllm serve checks the body's size itself (--max-body) and answers in OpenAI's shape
        client_max_body_size 0;
        location / {
            proxy_pass http://vkllm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            # Server-Sent Events reach the client as they are made
            proxy_buffering off;
            proxy_cache off;
            # an answer may take minutes (vkllm serve's own --timeout is 600 s)
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
            proxy_connect_timeout 5s;
            # failover: an instance that refuses, drops the connection, times out, or
            # answers 502/503 (loading, stopping) has the request sent to the next one;
            # non_idempotent because a POST already sent is still safe to repeat (a
            # completion changes nothing on the server)
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries $n;
            # which instance answered (the last one tried), for clients and tests
            add_header X-Vkllm-Upstream \$upstream_addr always;
        }
    }
}
EOF
"$nginx" -t -q -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/error.log" 2>"$tmp/nginx-t.log" ||
    die "nginx rejected the configuration: $(cat "$tmp/nginx-t.log")"
"$nginx" -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/error.log" 2>"$tmp/nginx.stderr" &
nginx_pid=$!
for ((t = 0; ; t++)); do
    kill -0 "$nginx_pid" 2>/dev/null ||
        die "nginx exited while starting: $(tail -n 5 "$tmp/error.log" "$tmp/nginx.stderr")"
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
    [ "$t" -lt 100 ] || die "nginx does not listen on $host:$port after 10 s"
    sleep 0.1
done

for ((i = 0; i < n; i++)); do
    echo "instance $i: http://127.0.0.1:${ports[$i]} pid ${pids[$i]}"
done
echo "nginx: pid $nginx_pid, configuration $tmp/nginx.conf, access log $tmp/access.log"
echo "front: http://$host:$port"
say "serving on http://$host:$port/v1 ($n instances); Ctrl-C stops everything"

# ---- until stopped ----
while :; do
    wait -n || true # returns when any of them exits (or a signal's trap ran)
    kill -0 "$nginx_pid" 2>/dev/null || die "nginx exited: $(tail -n 5 "$tmp/error.log")"
    left=0
    for ((i = 0; i < n; i++)); do
        if [ "${gone[$i]}" -eq 0 ] && ! kill -0 "${pids[$i]}" 2>/dev/null; then
            gone[i]=1
            say "instance $i (port ${ports[$i]}) exited; nginx sends its sessions to the others"
        fi
        [ "${gone[$i]}" -eq 1 ] || left=$((left + 1))
    done
    [ "$left" -gt 0 ] || die "every instance exited"
done
