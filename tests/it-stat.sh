#!/bin/bash
# SPDX-License-Identifier: MIT
# epochfs-stat against a live mount: the human screen shows the hit rates
# the JSON implies (this epoch, last epoch, all time: by opens, by bytes,
# prefetch in time, stall) and a line per rank, every line of every view
# fits 80 columns (COLUMNS=80, a pseudo-terminal of 80 columns, long paths),
# --prometheus parses as the text exposition format (per epoch and per rank
# families too), --watch refreshes in place under a pseudo-terminal, the
# no-argument listing finds the mount, --help exits 0, usage errors 2 and a
# path that is not a mount 5.
. "$(dirname "$0")/lib.sh"
require_fuse
STAT=$TOOLS/epochfs-stat
[ -x "$STAT" ] || fail "not built: $STAT"
command -v python3 >/dev/null || skip "python3 missing"

# fits FILE [MAX]: no line of FILE is wider than MAX (79) columns
# (characters, not bytes: the sparklines are UTF-8)
fits() {
	python3 -c '
import sys
bad = [l for l in open(sys.argv[1], encoding="utf-8").read().split("\n") if len(l) > int(sys.argv[2])]
for l in bad:
    print("too wide (%d): %s" % (len(l), l))
sys.exit(1 if bad else 0)' "$1" "${2:-79}"
}

log "--help"
"$STAT" --help >"$T/help" || fail "--help exited $?"
grep -q "^usage: epochfs-stat" "$T/help" || fail "--help printed no usage"
fits "$T/help" || fail "--help is wider than 80 columns"
"$STAT" --bogus --help >/dev/null || fail "--help after a bad option exited $?"

gen "$T/src" 6 40 110K
mount_fs "$T/src" "$T/mnt" "$T/cache" --cache-size 12M
# two ranks of one job, so that the screen has its rank lines
echo "seed=5 sampler=distributed world=2 rank=0-1" >"$T/mnt/.epochfs/seed" || fail "seed write"
read_verify "$T/mnt" "$T/src" 8 2

log "human output carries the JSON's figures, within 80 columns"
"$STAT" --json "$T/mnt" >"$T/stats.json" || fail "--json failed"
COLUMNS=80 "$STAT" "$T/mnt" >"$T/human.txt" || fail "epochfs-stat failed"
"$STAT" --json "$T/mnt" >"$T/stats2.json" || fail "--json failed"
cat "$T/human.txt"
fits "$T/human.txt" || fail "epochfs-stat is wider than 80 columns"
python3 - "$T/stats.json" "$T/stats2.json" "$T/human.txt" <<'PY' || fail "the screen does not show the JSON's figures"
import json, re, sys
s, s2 = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
text = open(sys.argv[3]).read()
assert s["opens"] > 0 and 0 < s["open_hits"] < s["opens"], s
assert len(s["epochs"]) >= 2 and len(s["ranks"]) == 2, (s["epochs"], s["ranks"])

def pct(a, b):
    return "%.2f%%" % (100 * a / b) if b else "-"

def row(label, o, epoch, bytes_key):
    """The row the screen must show for object o (epoch None: all time)."""
    used, late = o["prefetch_used"], o["prefetch_late"]
    return [label] + (label == "all time" and ["-"] or []) + [
        "%d" % epoch if epoch is not None else None, "%d" % o["opens"], pct(o["open_hits"], o["opens"]),
        pct(o[bytes_key], o["read_bytes"]), pct(used, used + late), "%.2f" % (o["stall_ns"] / 1e9), "s"]

rows = {}
for line in text.split("\n"):
    m = re.match(r"  (this epoch|last epoch|all time) +(.*)$", line)
    if m:
        rows[m.group(1)] = [m.group(1)] + m.group(2).split()
# all time: the totals (the counters only grow between the two readings)
got = rows["all time"]
print("all time:", got)
assert got[2] == "%d" % s["opens"], got
assert got[3] == pct(s["open_hits"], s["opens"]), (got, pct(s["open_hits"], s["opens"]))
assert got[4] == pct(s["read_bytes_from_cache"], s["read_bytes"]), got
assert got[5] == pct(s["prefetch_used"], s["prefetch_used"] + s["prefetch_late"]), got
assert got[6] == "%.2f" % (s["stall_ns"] / 1e9), got
# this epoch and last epoch: the records of the current epoch and the one before
eps = {e["epoch"]: e for e in s["epochs"]}
cur, last = eps[s["epoch"]], eps.get(s["epoch"] - 1)
for label, o in (("this epoch", cur), ("last epoch", last)):
    if o is None:
        continue
    got = rows[label]
    print(label + ":", got)
    assert got[1] == "%d" % o["epoch"] and got[2] == "%d" % o["opens"], (got, o)
    assert got[3] == pct(o["open_hits"], o["opens"]), (got, o)
    if o["read_bytes"]:
        assert got[4] == pct(o["hit_bytes"], o["read_bytes"]), (got, o)
    if o["prefetch_used"] + o["prefetch_late"]:
        assert got[5] == pct(o["prefetch_used"], o["prefetch_used"] + o["prefetch_late"]), (got, o)
    assert got[6] == "%.2f" % (o["stall_ns"] / 1e9), (got, o)
assert "last epoch" in rows, "no last epoch row"
for r in s["ranks"]:
    m = re.search(r"^  rank %d +(\d+) +(\S+) +(\d+) +(\d+) +(\d+) +(\d+)$" % r["rank"], text, re.M)
    assert m, "no line for rank %d" % r["rank"]
    assert int(m.group(1)) == r["epoch"] and int(m.group(3)) == r["opens"], (m.groups(), r)
    assert int(m.group(6)) == r["plain_reads"], (m.groups(), r)
print("ok")
PY

log "every view within 80 columns: --watch on an 80-column terminal, the listing, long paths"
"$STAT" "$T/mnt" "$T/mnt" >"$T/two.txt" || fail "two mountpoints"
fits "$T/two.txt" || fail "two mountpoints: too wide"
COLUMNS=80 "$STAT" >"$T/list80.txt" || fail "listing failed"
fits "$T/list80.txt" || fail "the listing is wider than 80 columns"
if command -v script >/dev/null; then
	timeout 2.5 script -qfec "stty cols 80; $STAT --watch 0.3 $T/mnt" /dev/null >"$T/watch80.out" 2>&1
	sed 's/\x1b\[[HJ]//g; s/\r$//' "$T/watch80.out" >"$T/watch80.txt"
	fits "$T/watch80.txt" || fail "--watch is wider than its 80-column terminal"
	grep -q "this epoch" "$T/watch80.txt" || fail "--watch shows no per-epoch lines"
fi
long=$T/a-mount-point-with-a-rather-long-name/and-a-second-level-that-makes-it-longer/still
mkdir -p "$long/.epochfs"
python3 - "$T/stats.json" "$long/.epochfs/stats" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["source"] = "s3://a-bucket-with-a-long-name/" + "and/a/deep/prefix/" * 6
for k in ("opens", "open_hits", "reads", "read_bytes", "backend_requests", "evictions"):
    s[k] = s[k] * 10**9 + 12345
for r in s["ranks"]:
    r.update(position=1234567890, epoch_length=1234567891, opens=9876543210)
json.dump(s, open(sys.argv[2], "w"))
PY
COLUMNS=80 "$STAT" "$long" >"$T/long.txt" || fail "stats with long paths"
cat "$T/long.txt"
fits "$T/long.txt" || fail "long paths or numbers push a line past 80 columns"
grep -q "and/a/deep/prefix" "$T/long.txt" || fail "the source is not shown"

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
assert 'epochfs_rank_opens_total' in samples and types['epochfs_rank_opens_total'] == 'counter', types
assert 'epochfs_epoch_stall_seconds_total' in samples, types
print('%d families, %d samples: ok' % (len(types), len(samples)))
PY

log "no argument: one line per mount"
"$STAT" >"$T/list.txt" || fail "listing failed"
grep -q "^$T/mnt .*hits" "$T/list.txt" || { cat "$T/list.txt"; fail "listing lacks $T/mnt"; }

log "--watch refreshes under a pseudo-terminal"
command -v script >/dev/null || skip "script (util-linux) missing"
# the reads start once --watch has taken its first reading
timeout 3.5 script -qfec "$STAT --watch 0.5 $T/mnt" /dev/null >"$T/watch.out" 2>&1 &
wp=$!
sleep 0.7
"$TOOLS/epochfs-read" --threads 4 --epochs 3 --seed 7 "$T/mnt" >/dev/null
wait $wp
n=$(grep -o $'\033\[H' "$T/watch.out" | wc -l)
echo "$n refreshes"
[ "$n" -ge 3 ] || { cat -v "$T/watch.out" | tail -20; fail "--watch refreshed $n times"; }
grep -q "rates .*opens/s" "$T/watch.out" || fail "--watch shows no rates"
grep -q "[▁▂▃▄▅▆▇█]" "$T/watch.out" || fail "--watch shows no sparkline"
grep -q "hit rate  .*[▁▂▃▄▅▆▇█]" "$T/watch.out" || fail "no hit rate sparkline"

log "not a mount: exit 5; usage errors: exit 2"
"$STAT" "$T/src"; [ $? -eq 5 ] || fail "a plain directory did not exit 5"
"$STAT" /nonexistent 2>"$T/err"; [ $? -eq 5 ] || fail "a missing path did not exit 5"
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
grep -q "^  this epoch  *1  *4  *100.00%" "$T/fake.txt" || fail "no hit rate of this epoch"
grep -q "^  last epoch  *0  *6  *16.67%" "$T/fake.txt" || fail "no hit rate of the last epoch"
grep -q "^  all time  *-  *10  *50.00%" "$T/fake.txt" || fail "no overall hit rate"
grep -q "^  epoch  *1, position 3$" "$T/fake.txt" || fail "no epoch and position"
grep -q "^  subst  *2 served" "$T/fake.txt" || fail "no substitutions"
"$STAT" --prometheus "$T/fake" | grep -q '^epochfs_epoch_open_hits_total{mountpoint="[^"]*",epoch="1"} 4$' ||
	fail "no per-epoch metrics"
for bad in '' '{' '{"version":1,' '{"version":1,"a":[1,2}' '[1]' "$(printf '[%.0s' $(seq 5000))" \
	'{"version":1,"s":"\' '{"version":1} x' '{"version":"1"}' 'garbage'; do
	printf '%s' "$bad" >"$T/fake/.epochfs/stats"
	"$STAT" "$T/fake" >/dev/null 2>&1
	rc=$?
	[ $rc -eq 5 ] || fail "malformed stats '${bad:0:20}' gave exit $rc"
	"$STAT" --prometheus "$T/fake" >/dev/null 2>&1
	[ $? -eq 5 ] || fail "malformed stats broke --prometheus"
done

umount_fs "$T/mnt"
echo ok
