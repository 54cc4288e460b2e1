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
    "persister1": (None, 9091),
    "persister2": (None, 9092),
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

# Client endpoints a generic worker serves (Synapse docs/workers.md, generic_worker): the room-scoped reads and writes
# (events are created on the worker and persisted by the room's persister), room creation, joins, sync. Receipts,
# typing, read markers, account data, upgrades, media, admin and registration stay on main.
ROOM = r"^/_matrix/client/(api/v1|r0|v3|unstable)/rooms/[^/]+/" \
    r"(send|state|redact|join|invite|leave|ban|unban|kick|members|joined_members|messages|context|event|aliases|initialSync)(/|$)"
V1_ROOM = r"^/_matrix/client/(v1|unstable)/rooms/[^/]+/(hierarchy|relations|threads|timestamp_to_event)(/|$)"
OTHER = r"^/_matrix/client/(api/v1|r0|v3|unstable)/(createRoom$|join/|sync$|joined_rooms$|versions$)"
workers = "\n".join(f"        server {HOST}:{c};" for c, _ in WORKERS.values() if c)
router = f"""# Rendered by scripts/synapse/workers_config.py: the workers profile's router (nginx) on {HOST}:{router_port}.
worker_processes 1;
pid {wdir}/router.pid;
error_log {log_dir}/router-error.log warn;
events {{ worker_connections 1024; }}
http {{
    # Which process served what: the room key and the upstream, to check the routing (and count calls per process).
    log_format routed '$msec $request_method $uri room=$openmeet_room upstream=$upstream_addr status=$status';
    access_log {log_dir}/router-access.log routed;
    client_max_body_size 50m;
    client_body_temp_path {wdir}/router-tmp;
    proxy_temp_path {wdir}/router-tmp;
    fastcgi_temp_path {wdir}/router-tmp;
    uwsgi_temp_path {wdir}/router-tmp;
    scgi_temp_path {wdir}/router-tmp;
    # One room's calls go to one worker (its pagination tokens and its event order); calls naming no room spread.
    map $uri $openmeet_room {{
        "~^/_matrix/client/[^/]+/rooms/(?<room>[^/]+)/" $room;
        "~^/_matrix/client/[^/]+/join/(?<room>[^/]+)" $room;
        default $request_id;
    }}
    upstream openmeet_workers {{
        hash $openmeet_room consistent;
{workers}
        keepalive 32;
    }}
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
        location ~ "{ROOM}" {{ proxy_pass http://openmeet_workers; }}
        location ~ "{V1_ROOM}" {{ proxy_pass http://openmeet_workers; }}
        location ~ "{OTHER}" {{ proxy_pass http://openmeet_workers; }}
        location / {{ proxy_pass http://openmeet_main; }}
    }}
}}
"""
open(f"{wdir}/router.conf", "w").write(router)
