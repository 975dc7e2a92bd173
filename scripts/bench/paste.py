#!/usr/bin/env python3
"""Flow control on loopback (Docs/BENCHMARKS.md, "Bulk input"): one member pipes N lines into
`join` while another chats a line every 100 ms. Prints the paste's rate, how many of its lines the
chatter saw, and the chatter's own delay (sent -> its echo). Starts its own host and members on
127.0.0.1 with --peer and stops them by pid.

Usage: python3 scripts/bench/paste.py BINARY N"""
import json, os, subprocess, sys, tempfile, threading, time, statistics
if len(sys.argv) != 3 or not sys.argv[2].isdigit() or int(sys.argv[2]) < 1 or not os.access(sys.argv[1], os.X_OK):
    sys.exit('usage: paste.py BINARY N (a levchat-peer binary and a number of lines)')
BIN, N = sys.argv[1], int(sys.argv[2])
lines = [f'line {i:06d} of a pasted file, some text to make it about ninety bytes long .......' for i in range(1, N + 1)]
paste = os.path.join(tempfile.mkdtemp(prefix='levchat-paste-'), 'paste.txt')
open(paste, 'w').write('\n'.join(lines) + '\n')
host = subprocess.Popen([BIN, 'create', '--name', 'alice', '--no-mdns', '--port', '0', '--bind', '127.0.0.1', '--json'],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
room = json.loads(host.stdout.readline())
peer = f"127.0.0.1:{room['port']}"
threading.Thread(target=lambda: [None for _ in host.stdout], daemon=True).start()
chatter = subprocess.Popen([BIN, 'join', room['code'], '--name', 'chatter', '--peer', peer, '--bind', '127.0.0.1', '--json'],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
echoed = {}
paste_seen = [0]
entered = threading.Event()
def read_chatter():
    for l in chatter.stdout:
        d = json.loads(l)
        if d.get('type') == 'entered': entered.set()
        if d.get('type') == 'message':
            if d['from'] == 'chatter': echoed[d['text']] = time.monotonic()
            elif d['from'] == 'paster': paste_seen[0] += 1
threading.Thread(target=read_chatter, daemon=True).start()
entered.wait(10)
start = time.monotonic()
paster = subprocess.Popen([BIN, 'join', room['code'], '--name', 'paster', '--peer', peer, '--bind', '127.0.0.1', '--json'],
                          stdin=open(paste), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sent = {}
i = 0
while paster.poll() is None:
    i += 1
    text = f'chatter line {i}'
    sent[text] = time.monotonic()
    chatter.stdin.write(text + '\n'); chatter.stdin.flush()
    time.sleep(0.1)
rc = paster.wait()
elapsed = time.monotonic() - start
time.sleep(1)
delays = sorted((echoed[t] - sent[t]) * 1000 for t in sent if t in echoed)
print(f'paster exit {rc}; {N} lines in {elapsed:.1f} s ({N/elapsed:.0f} lines/s); chatter saw {paste_seen[0]} of them')
print(f'chatter: {len(delays)} of {len(sent)} lines echoed; delay ms p50 {statistics.median(delays):.1f} p99 {delays[int(len(delays)*0.99)-1]:.1f} max {delays[-1]:.1f}')
for p in (chatter, host): p.terminate()
for p in (chatter, host): p.wait()
os.remove(paste)
