#!/usr/bin/env bash
# Runs real programs from Debian with //mm/heap:kmalloc_preload as their malloc and checks their output
# against the same programs on glibc's malloc. Each run must also report (FERRITE_HEAP_STATS=1)
# that it went through Ferrite's heap.
#   kmalloc_preload_test.sh <libkmalloc_preload.so> <kmalloc_fork_stress>
set -euo pipefail
lib="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
fork_stress="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
work="${TEST_TMPDIR:-$(mktemp -d)}"
python=/usr/bin/python3
failures=0
passes=0

check() {  # name, then the command (a bash -c string)
  local name=$1 cmd=$2
  local want got stats
  want=$(bash -c "$cmd")
  got=$(FERRITE_HEAP_STATS=1 LD_PRELOAD="$lib" bash -c "$cmd" 2>"$work/stderr") || {
    echo "FAIL $name: exit status $?"; echo "$got"; cat "$work/stderr"; failures=$((failures + 1)); return; }
  stats=$(grep -c '^ferrite-kmalloc: [1-9][0-9]* calls' "$work/stderr" || true)
  if [[ "$got" != "$want" ]]; then
    echo "FAIL $name: output differs from glibc's malloc"; diff <(echo "$want") <(echo "$got") | head -5
    failures=$((failures + 1))
  elif [[ "$stats" -lt 1 ]]; then
    echo "FAIL $name: the program did not go through Ferrite's heap"; cat "$work/stderr"
    failures=$((failures + 1))
  else
    echo "ok   $name ($(grep -m1 '^ferrite-kmalloc' "$work/stderr"))"
    passes=$((passes + 1))
  fi
}

seq 1 200000 | awk '{ print ($1 * 7919) % 100003, $1 }' > "$work/numbers.txt"

check "python3 dicts, strings, json, sha256" \
  "$python -c 'import json, hashlib
d = {str(i): [i] * (i % 37) + [\"x\" * (i % 300)] for i in range(40000)}
s = json.dumps(d, sort_keys=True)
print(len(s), hashlib.sha256(s.encode()).hexdigest())'"
check "python3 big and growing objects" \
  "$python -c 'b = bytearray()
for i in range(3000): b += bytes([i % 256]) * (i * 7)
l = [bytes(1 << k) for k in range(24)]
print(len(b), sum(b) % 1000003, sum(len(x) for x in l))'"
check "python3 threads" \
  "$python -c 'import threading
out = []
def work(n):
    out.append(sum(len(str(i) * 10) for i in range(n)))
ts = [threading.Thread(target=work, args=(50000 + k,)) for k in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sorted(out))'"
check "sort -n of 200000 lines" "LC_ALL=C sort -n '$work/numbers.txt' | md5sum"
check "sort -k2 -S 1M (merges)" "LC_ALL=C sort -S 1M -k2,2 '$work/numbers.txt' | tail -3"
check "ls -laR /usr/share/doc" "LC_ALL=C ls -laR --time-style=+ /usr/share/doc | md5sum"
check "grep -E" "grep -cE '^[0-9]*7 ' '$work/numbers.txt'"
check "awk associative arrays" "awk '{ c[\$1 % 1000]++ } END { n = 0; for (k in c) n += c[k]; print n, length(c) }' '$work/numbers.txt'"
check "tar | gzip" "tar -C /usr/share/doc -cf - . 2>/dev/null | gzip -1 | gzip -dc | wc -c"
check "hardened mode: python3" \
  "FERRITE_HEAP_HARDENED=1 $python -c 'print(sum(len(repr(list(range(i)))) for i in range(2000)))'"
# fork() while other threads are inside malloc (the pthread_atfork handlers): 200 children, each of
# which must malloc and exit within 10 s; a child stuck on a lock held at fork time is a failure.
check "200 forks amid 4 threads in malloc" "'$fork_stress' 200 4 10000"
# A real threaded program that forks. Its threads allocate holding the GIL, which os.fork() holds
# too, so it seldom forks amid a malloc (the stress above does); it checks the child heaps work.
check "python3 threads + subprocess + multiprocessing (fork)" \
  "$python -c 'import threading, subprocess, multiprocessing as mp
stop = threading.Event()
def churn():
    while not stop.is_set(): [str(i) * 50 for i in range(2000)]
def square(x): return x * x
ts = [threading.Thread(target=churn) for _ in range(3)]
[t.start() for t in ts]
out = [subprocess.run([\"/bin/echo\", str(i)], capture_output=True, text=True).stdout.strip() for i in range(20)]
with mp.get_context(\"fork\").Pool(4) as pool: squares = pool.map(square, range(200))
stop.set(); [t.join() for t in ts]
print(out[-1], sum(squares))'"

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
