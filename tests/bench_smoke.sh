#!/usr/bin/env bash
# Smoke test of mpreg-bench (correctness of the tool, not speed):
#   bench_smoke.sh MPREG_BENCH SERVER [SERVER ARGS...]
# starts SERVER (which must print "... listening on ws://H:P" on stdout), runs
# every workload briefly and checks that each run validates every answer.
set -euo pipefail

BENCH=$1
shift
WORK=$(mktemp -d /tmp/bench-smoke.XXXXXX)
SERVER_TPID=""
cleanup() {
  [ -n "$SERVER_TPID" ] && kill -KILL "$SERVER_TPID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [ -f "$WORK/server.err" ] && tail -5 "$WORK/server.err" >&2
  exit 1
}

timeout -s KILL 120 "$@" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_TPID=$!
URL=""
for _ in $(seq 100); do
  URL=$(sed -n 's/^.* listening on \(ws:\/\/[^ ]*\)$/\1/p' "$WORK/server.out" | head -1)
  [ -n "$URL" ] && break
  kill -0 "$SERVER_TPID" 2>/dev/null || fail "server exited: $(cat "$WORK/server.err")"
  sleep 0.1
done
[ -n "$URL" ] || fail "no listening line within 10 s"
SERVER_PID=$(pgrep -P "$SERVER_TPID" | head -1)
echo "server at $URL"

# expect_ok NAME ARGS...: mpreg-bench exits 0 with -n answers and no failure.
expect_ok() {
  local name=$1 out
  shift
  out=$(timeout -s KILL 60 "$BENCH" --url "$URL" --json -q "$@" 2>"$WORK/bench.err") ||
    fail "$name: exit $?: $(head -5 "$WORK/bench.err")"
  grep -q '"failures":0[,}]' <<<"$out" || fail "$name: $out"
  echo "ok: $name: $out"
}

for w in echo echo1k chain3 fan10 fan:1 fan:7 chain:1 chain:5; do
  expect_ok "$w" -w "$w" -n 200 -c 2 -P 4
done
out=$(timeout -s KILL 60 "$BENCH" --url "$URL" --json -q -w fan10 -n 300 -c 3 -P 7)
grep -q '"requests":300,' <<<"$out" || fail "-n 300 did not measure 300 answers: $out"
expect_ok "two client threads" -w chain3 -n 500 -c 4 -P 8 --threads 2
expect_ok "duration" -w echo -d 0.3 --warmup 0.1 -c 2 -P 2
# --pause-us: every request still answered once; 200 answers over 2 slots at
# a 2 ms pause each take at least 0.2 s (a floor, never a speed check).
out=$(timeout -s KILL 60 "$BENCH" --url "$URL" --json -q -w chain3 -n 200 -c 1 -P 2 --pause-us 2000)
grep -q '"requests":200,"failures":0,' <<<"$out" || fail "--pause-us: $out"
awk -v s="$(sed 's/.*"seconds":\([0-9.e+-]*\).*/\1/' <<<"$out")" 'BEGIN {exit !(s >= 0.19)}' ||
  fail "--pause-us 2000 did not pause: $out"
echo "ok: --pause-us: $out"

# The README request from a file: checks u and error only.
cat >"$WORK/readme.json" <<'EOF'
{"role": "rpc", "u": "ignored", "cmds": [
  {"name": "|first", "fun": "echo", "args": ["hi there!"]},
  {"name": "|second", "fun": "echo", "args": ["|first"]},
  {"name": "|third", "fun": "echos", "args": ["|first", "AND ME TOO"]}]}
EOF
expect_ok "--request" --request "$WORK/readme.json" -n 100 -P 4

# Error answers are failures, counted, and make the exit status non-zero.
cat >"$WORK/unknown.json" <<'EOF'
{"role": "rpc", "u": "x", "cmds": [{"name": "a", "fun": "no-such-function", "args": []}]}
EOF
rc=0
out=$(timeout -s KILL 60 "$BENCH" --url "$URL" --json -q --request "$WORK/unknown.json" \
      -n 20 -P 2 2>/dev/null) || rc=$?
[ "$rc" = 1 ] || fail "error answers: exit $rc, expected 1"
grep -q '"failures":20,' <<<"$out" || fail "error answers not all counted: $out"
echo "ok: error answers are failures"

# Nothing listening: a clear error, exit 2.
rc=0
timeout -s KILL 30 "$BENCH" --url ws://127.0.0.1:1 -n 5 -q >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unreachable url: exit $rc, expected 2"
echo "ok: unreachable url"

# --idle: all sessions open, then a clean exit at stdin EOF.
out=$(sleep 0.5 | timeout -s KILL 30 "$BENCH" --url "$URL" --idle 50) ||
  fail "--idle exit $?"
grep -q "50 idle connections open" <<<"$out" || fail "--idle: $out"
echo "ok: --idle"

# The server still works after all of that, and stops cleanly on SIGTERM.
expect_ok "after" -w chain3 -n 50
kill -TERM "$SERVER_PID"
for _ in $(seq 100); do
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$SERVER_PID" 2>/dev/null && fail "server still running 10 s after SIGTERM"
rc=0
wait "$SERVER_TPID" || rc=$?
SERVER_TPID=""
[ "$rc" = 0 ] || fail "server exit status $rc after SIGTERM"
echo "ok: server exited 0 on SIGTERM"
