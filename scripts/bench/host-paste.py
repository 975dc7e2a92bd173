#!/usr/bin/env python3
"""The host's own flow control on loopback (Docs/BENCHMARKS.md, "Bulk input"): N lines piped into
the host's input while one member watches. Prints how many of them reached the member and how long
that took. Starts its own host and member on 127.0.0.1 with --peer and stops them by pid. Set
LEVCHAT_SEND_BACKLOG_BYTES in the environment to try a smaller per-member backlog.

Usage: python3 scripts/bench/host-paste.py BINARY N"""
import json, os, subprocess, sys, threading, time
if len(sys.argv) != 3 or not sys.argv[2].isdigit() or int(sys.argv[2]) < 1 or not os.access(sys.argv[1], os.X_OK):
    sys.exit('usage: host-paste.py BINARY N (a levchat-peer binary and a number of lines)')
BIN, N = sys.argv[1], int(sys.argv[2])
host = subprocess.Popen([BIN, 'create', '--name', 'alice', '--no-mdns', '--port', '0', '--bind', '127.0.0.1', '--json'],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
room = json.loads(host.stdout.readline())
drops = [0]
threading.Thread(target=lambda: [None for _ in host.stdout], daemon=True).start()
threading.Thread(target=lambda: [drops.__setitem__(0, drops[0] + ('dropping connection' in l)) for l in host.stderr], daemon=True).start()
member = subprocess.Popen([BIN, 'join', room['code'], '--name', 'bob', '--peer', f"127.0.0.1:{room['port']}", '--bind', '127.0.0.1', '--json'],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
seen, entered, last = set(), threading.Event(), [time.monotonic()]
def read_member():
    for l in member.stdout:
        d = json.loads(l)
        if d.get('type') == 'entered': entered.set()
        if d.get('type') == 'message' and d['from'] == 'alice': seen.add(d['text']); last[0] = time.monotonic()
threading.Thread(target=read_member, daemon=True).start()
try:
    if not entered.wait(10): sys.exit('the member did not get into the room')
    start = time.monotonic()
    for i in range(N):
        host.stdin.write(f'line {i:06d} of a pasted file, some text to make it about ninety bytes long .......\n')
    host.stdin.flush()
    while time.monotonic() - last[0] < 5 and len(seen) < N: time.sleep(0.2)
    print(f'{len(seen)} of {N} host lines reached the member in {last[0] - start:.1f} s; the host dropped it {drops[0]} times')
finally:
    for p in (host, member): p.kill()
