"""The workers profile's Synapse configuration (scripts/stack.sh workers start, functions/local/src/stack/workers.rs).

Usage: workers_config.py SOURCE_HOMESERVER_YAML WORKERS_DIR LOG_DIR PG_PORT REDIS_PORT ROUTER_PORT

From the local stack's rendered homeserver.yaml (same server name, secrets, appservice, signing key and tenant-walls
module) it writes into WORKERS_DIR: homeserver.yaml (main on PostgreSQL, Redis replication, two event persisters
sharded by room), one <worker>.yaml per worker, their log configs, and router.conf: the nginx that sends the client
endpoints generic workers serve to the two generic workers, hashed by room so one room's calls reach one worker, and
everything else (admin API, registration, receipts, media...) to main. Synapse docs/workers.md lists the endpoints.
"""

import sys

import yaml

source, wdir, log_dir, pg_port, redis_port, router_port = sys.argv[1:]
HOST = "127.0.0.1"
MAIN_CLIENT, MAIN_REPLICATION = 8090, 9090
# name -> (client port or None, replication port or None)
WORKERS = {
    "persister1": (8093, 9091),
    "persister2": (8094, 9092),
    "worker1": (8091, None),
    "worker2": (8092, None),
}

config = yaml.safe_load(open(source))
log = yaml.safe_load(open(config["log_config"]))


def write_log_config(name):
    own = yaml.safe_load(yaml.safe_dump(log))
    for handler in own.get("handlers", {}).values():
        if "filename" in handler:
            handler["filename"] = f"{log_dir}/{name}.log"
    path = f"{wdir}/log-{name}.yaml"
    open(path, "w").write(yaml.safe_dump(own))
    return path


def listener(port, names):
    return {"port": port, "bind_addresses": [HOST], "type": "http", "tls": False, "x_forwarded": True,
            "resources": [{"names": names, "compress": False}]}


config["database"] = {"name": "psycopg2", "args": {"user": "synapse", "database": "synapse", "host": f"{wdir}/pg",
                      "port": int(pg_port), "cp_min": 5, "cp_max": 10}}
config["listeners"] = [listener(MAIN_CLIENT, ["client"]), listener(MAIN_REPLICATION, ["replication"])]
config["public_baseurl"] = f"http://{HOST}:{router_port}/"
config["media_store_path"] = f"{wdir}/media_store"
config["log_config"] = write_log_config("main")
config["redis"] = {"enabled": True, "host": HOST, "port": int(redis_port)}
config["worker_replication_secret"] = config["macaroon_secret_key"]
config["instance_map"] = {"main": {"host": HOST, "port": MAIN_REPLICATION}}
for name, (_, replication) in WORKERS.items():
    if replication:
        config["instance_map"][name] = {"host": HOST, "port": replication}
config["stream_writers"] = {"events": [n for n, (_, r) in WORKERS.items() if r]}
# Main's per-event work goes to the generic workers (Synapse docs/workers.md): pushers (push rules were evaluated when
# the event was created; this is the sending), the appservice stream and the user directory. Measured with them on
# main: ~20 CPU-ms of main per imported message, main being the one process that does not scale out.
config["pusher_instances"] = ["worker1"]
config["notify_appservices_from_worker"] = "worker2"
config["update_user_directory_from_worker"] = "worker2"
open(f"{wdir}/homeserver.yaml", "w").write(yaml.safe_dump(config))

for name, (client, replication) in WORKERS.items():
    listeners = []
    if client:
        listeners.append(listener(client, ["client"]))
    if replication:
        listeners.append(listener(replication, ["replication"]))
    worker = {"worker_app": "synapse.app.generic_worker", "worker_name": name, "worker_listeners": listeners,
              "worker_log_config": write_log_config(name)}
    open(f"{wdir}/{name}.yaml", "w").write(yaml.safe_dump(worker))

# Client endpoints a generic worker serves (Synapse docs/workers.md, generic_worker). Room-scoped ones (sends, state,
# joins, invites, kicks, members, /messages...) go to the room's own event persister, computed as Synapse shards the
# events stream (sha256 of the room id, little-endian, modulo the writers: synapse/config/_base.py): the process that
# persists the room creates its events (no replication hop) and reads what it just wrote. A room's reads on another
# process lag its writes (measured: a generic worker re-read the power levels it had just written, stale, five
# times in a row). Room creation, sync and joins by alias go to the generic workers; receipts, typing, read markers,
# account data, upgrades, media, admin and registration stay on main.
ROOM = r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/" \
    r"(send|state|redact|join|invite|leave|ban|unban|kick|members|joined_members|messages|context|event|aliases|initialSync)(/|$)"
V1_ROOM = r"^/_matrix/client/(v1|unstable)/rooms/[^/]+/(hierarchy|relations|threads|timestamp_to_event)(/|$)"
JOIN = r"^/_matrix/client/(api/v1|r0|v3|unstable)/join/"
OTHER = r"^/_matrix/client/(api/v1|r0|v3|unstable)/(createRoom$|sync$|joined_rooms$|versions$)"
writers = [n for n, (_, r) in WORKERS.items() if r]
generic = [c for n, (c, r) in WORKERS.items() if c and not r]
router_js = f"""// Rendered by scripts/synapse/workers_config.py: the room's event persister, as Synapse shards the events stream.
const crypto = require('crypto');
const WRITERS = {writers!r};

function writer(r) {{
    const m = r.uri.match(/^\\/_matrix\\/client\\/[^\\/]+\\/(?:v1\\/)?(?:rooms|join)\\/(![^\\/]+)/);
    if (!m) {{
        return 'openmeet_workers';
    }}
    const digest = crypto.createHash('sha256').update(m[1]).digest();
    let remainder = 0;
    for (let i = digest.length - 1; i >= 0; i--) {{
        remainder = (remainder * 256 + digest[i]) % WRITERS.length;
    }}
    return WRITERS[remainder];
}}

export default {{ writer }};
"""
open(f"{wdir}/router.js", "w").write(router_js)
workers = "\n".join(f"        server {HOST}:{c};" for c in generic)
persisters = "\n".join(
    f"    upstream {n} {{\n        server {HOST}:{c};\n        keepalive 16;\n    }}" for n, (c, r) in WORKERS.items() if c and r)
router = f"""# Rendered by scripts/synapse/workers_config.py: the workers profile's router (nginx) on {HOST}:{router_port}.
load_module /usr/lib/nginx/modules/ngx_http_js_module.so;
worker_processes 1;
pid {wdir}/router.pid;
error_log {log_dir}/router-error.log warn;
events {{ worker_connections 1024; }}
http {{
    # Which process served what (the room's writer, the upstream): to check the routing and count calls per process.
    log_format routed '$msec $request_method $uri writer=$openmeet_writer upstream=$upstream_addr status=$status';
    access_log {log_dir}/router-access.log routed;
    client_max_body_size 50m;
    client_body_temp_path {wdir}/router-tmp;
    proxy_temp_path {wdir}/router-tmp;
    fastcgi_temp_path {wdir}/router-tmp;
    uwsgi_temp_path {wdir}/router-tmp;
    scgi_temp_path {wdir}/router-tmp;
    js_path {wdir};
    js_import router from router.js;
    js_set $openmeet_writer router.writer;
    upstream openmeet_workers {{
{workers}
        keepalive 32;
    }}
{persisters}
    upstream openmeet_main {{
        server {HOST}:{MAIN_CLIENT};
        keepalive 32;
    }}
    server {{
        listen {HOST}:{router_port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto http;
        proxy_read_timeout 600s;
        location ~ "{ROOM}" {{ proxy_pass http://$openmeet_writer; }}
        location ~ "{V1_ROOM}" {{ proxy_pass http://$openmeet_writer; }}
        location ~ "{JOIN}" {{ proxy_pass http://$openmeet_writer; }}
        location ~ "{OTHER}" {{ proxy_pass http://openmeet_workers; }}
        location / {{ proxy_pass http://openmeet_main; }}
    }}
}}
"""
open(f"{wdir}/router.conf", "w").write(router)
