#!/bin/bash
# SPDX-License-Identifier: MIT
# epochfs-stat against a live mount: the human screen shows the hit rate the
# JSON implies, --prometheus parses as the text exposition format, --watch
# refreshes in place under a pseudo-terminal, the no-argument listing finds
# the mount, and a path that is not a mount exits 1.
. "$(dirname "$0")/lib.sh"
require_fuse
STAT=$TOOLS/epochfs-stat
[ -x "$STAT" ] || fail "not built: $STAT"
command -v python3 >/dev/null || skip "python3 missing"

gen "$T/src" 6 40 110K
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 12M
read_verify "$T/mnt" "$T/src" 8 2

log "human output carries the JSON's hit rate"
"$STAT" --json "$T/mnt" >"$T/stats.json" || fail "--json failed"
"$STAT" "$T/mnt" >"$T/human.txt" || fail "epochfs-stat failed"
cat "$T/human.txt"
want=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["opens"] > 0 and 0 < s["open_hits"] < s["opens"], s
print("%.2f%% of opens (%d of %d)" % (100 * s["open_hits"] / s["opens"], s["open_hits"], s["opens"]))
print("%.2f%% of bytes" % (100 * s["read_bytes_from_cache"] / s["read_bytes"]))
' "$T/stats.json") || fail "the JSON is not what was expected"
while read -r line; do
	grep -qF "$line" "$T/human.txt" || fail "human output lacks '$line'"
done <<<"$want"

log "--prometheus parses as the text exposition format"
"$STAT" --prometheus "$T/mnt" >"$T/prom.txt" || fail "--prometheus failed"
python3 - "$T/prom.txt" "$T/mnt" "$T/stats.json" <<'PY' || fail "bad exposition format"
import json, re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
lname = r'[a-zA-Z_][a-zA-Z0-9_]*'
lval = r'"(?:[^"\\\n]|\\[\\"n])*"'
labels = r'\{(?:%s=%s(?:,%s=%s)*,?)?\}' % (lname, lval, lname, lval)
value = r'(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)'
sample = re.compile(r'^(%s)(%s)? (%s)(?: -?\d+)?$' % (name, labels, value))
help_ = re.compile(r'^# HELP (%s) (?:[^\\\n]|\\[\\n])*$' % name)
type_ = re.compile(r'^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$' % name)
types, helps, done, cur, samples = {}, set(), set(), None, {}
for n, line in enumerate(open(sys.argv[1]).read().split('\n')[:-1], 1):
    m = help_.match(line) or type_.match(line)
    if m:
        fam = m.group(1)
        assert fam.startswith('epochfs_'), (n, line)
        assert fam not in done or fam == cur, ('family split', n, line)
        if line.startswith('# TYPE'):
            assert fam not in types, ('second TYPE', n, line)
            assert fam not in samples, ('TYPE after samples', n, line)
            types[fam] = m.group(2)
        else:
            assert fam not in helps, ('second HELP', n, line)
            helps.add(fam)
        cur = fam
        done.add(fam)
        continue
    assert not line.startswith('#') or line.startswith('# '), (n, line)
    if line.startswith('#') or not line:
        continue
    m = sample.match(line)
    assert m, ('not a sample', n, line)
    fam = m.group(1)
    assert fam == cur, ('sample outside its family', n, line)
    assert fam in types and fam in helps, ('no HELP/TYPE', n, line)
    if types[fam] == 'counter':
        assert fam.endswith('_total'), ('counter without _total', n, line)
    assert 'mountpoint="%s"' % sys.argv[2] in (m.group(2) or ''), ('no mountpoint label', n, line)
    samples[fam] = float(m.group(3))
s = json.load(open(sys.argv[3]))
assert samples['epochfs_opens_total'] == s['opens'], samples
assert samples['epochfs_backend_bytes_total'] >= s['backend_bytes']
assert abs(samples['epochfs_stall_seconds_total'] - s['stall_ns'] / 1e9) < 1
assert samples['epochfs_cache_capacity_bytes'] == s['cache_capacity']
print('%d families, %d samples: ok' % (len(types), len(samples)))
PY

log "no argument: one line per mount"
"$STAT" >"$T/list.txt" || fail "listing failed"
grep -q "^$T/mnt .*hits" "$T/list.txt" || { cat "$T/list.txt"; fail "listing lacks $T/mnt"; }

log "--watch refreshes under a pseudo-terminal"
command -v script >/dev/null || skip "script (util-linux) missing"
("$TOOLS/epochfs-read" --threads 4 --epochs 3 --seed 7 "$T/mnt" >/dev/null) &
rd=$!
timeout 3.5 script -qfec "$STAT --watch 0.5 $T/mnt" /dev/null >"$T/watch.out" 2>&1
wait $rd
n=$(grep -o $'\033\[H' "$T/watch.out" | wc -l)
echo "$n refreshes"
[ "$n" -ge 3 ] || { cat -v "$T/watch.out" | tail -20; fail "--watch refreshed $n times"; }
grep -q "rates .*opens/s" "$T/watch.out" || fail "--watch shows no rates"
grep -q "[▁▂▃▄▅▆▇█]" "$T/watch.out" || fail "--watch shows no sparkline"
grep -q "hit rate  .*[▁▂▃▄▅▆▇█]" "$T/watch.out" || fail "no hit rate sparkline"

log "not a mount: exit 1; usage errors: exit 2"
"$STAT" "$T/src"; [ $? -eq 1 ] || fail "a plain directory did not exit 1"
"$STAT" /nonexistent 2>"$T/err"; [ $? -eq 1 ] || fail "a missing path did not exit 1"
grep -q "not an epochfs mount" "$T/err" || fail "no clear message: $(cat "$T/err")"
"$STAT" --bogus "$T/mnt" 2>/dev/null; [ $? -eq 2 ] || fail "a bad option did not exit 2"
"$STAT" --watch x "$T/mnt" 2>/dev/null; [ $? -eq 2 ] || fail "a bad --watch did not exit 2"

log "per-epoch counters and malformed stats (a directory with a stats file)"
mkdir -p "$T/fake/.epochfs"
echo '{"version":1,"source":"s3://b/p","opens":10,"open_hits":5,"epoch":1,"position":3,
 "substitutions":2,"substitution_debt":1,"prefetch_issued":4,"prefetch_used":3,"prefetch_late":1,
 "epochs":[{"epoch":0,"opens":6,"open_hits":1,"backend_bytes":9},{"epoch":1,"opens":4,"open_hits":4,"backend_bytes":0}],
 "future":{"x":[1,2,{"y":"z\\"}]}}' >"$T/fake/.epochfs/stats"
"$STAT" "$T/fake" >"$T/fake.txt" || fail "per-epoch stats not shown"
cat "$T/fake.txt"
grep -q "hit rate now  100.00% of opens (4 of 4)" "$T/fake.txt" || fail "no hit rate of this epoch"
grep -q "hit rate all   50.00% of opens (5 of 10)" "$T/fake.txt" || fail "no overall hit rate"
grep -q "epoch         1, position 3" "$T/fake.txt" || fail "no epoch and position"
grep -q "substitution  2 served" "$T/fake.txt" || fail "no substitutions"
"$STAT" --prometheus "$T/fake" | grep -q '^epochfs_epoch_open_hits_total{mountpoint="[^"]*",epoch="1"} 4$' ||
	fail "no per-epoch metrics"
for bad in '' '{' '{"version":1,' '{"version":1,"a":[1,2}' '[1]' "$(printf '[%.0s' $(seq 5000))" \
	'{"version":1,"s":"\' '{"version":1} x' '{"version":"1"}' 'garbage'; do
	printf '%s' "$bad" >"$T/fake/.epochfs/stats"
	"$STAT" "$T/fake" >/dev/null 2>&1
	rc=$?
	[ $rc -eq 1 ] || fail "malformed stats '${bad:0:20}' gave exit $rc"
	"$STAT" --prometheus "$T/fake" >/dev/null 2>&1
	[ $? -eq 1 ] || fail "malformed stats broke --prometheus"
done

umount_fs "$T/mnt"
echo ok
