"""What the public entry costs: p50 latency of the same calls, same browser token, through the gate and straight to
Synapse, alternating in one run (ratio against that baseline). Needs the local stack running.

    .local/venv/bin/python scripts/gate/bench_overhead.py [N]
"""
import json, os, statistics, subprocess, sys, time, urllib.request
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
jwt = subprocess.check_output(["scripts/stack.sh", "token", "benchu", "gbench", "user"], text=True).strip()
req = urllib.request.Request("http://127.0.0.1:3000/v1/me/matrix-session", data=b"{}", method="POST",
                             headers={"Authorization": "Bearer " + jwt, "Content-Type": "application/json"})
session = json.load(urllib.request.urlopen(req))
token, me = session["accessToken"], session["matrixUserId"]
def call(base, method, path, body=None):
    r = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method,
                               headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    t = time.perf_counter(); urllib.request.urlopen(r).read(); return (time.perf_counter() - t) * 1000
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
for name, method, path, body in [("whoami (proxied only)", "GET", "/_matrix/client/v3/account/whoami", None),
                                 ("keys/query (checked)", "POST", "/_matrix/client/v3/keys/query", {"device_keys": {me: []}})]:
    d, g = [], []
    for _ in range(N):
        d.append(call("http://127.0.0.1:8008", method, path, body)); g.append(call("http://127.0.0.1:8088", method, path, body))
    pd, pg = statistics.median(d), statistics.median(g)
    print(f"{name}: direct p50 {pd:.2f} ms, gate p50 {pg:.2f} ms, ratio {pg/pd:.2f}x (n={N} each)")
