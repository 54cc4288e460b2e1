"""The local stack's Synapse config pointed at PostgreSQL, on its own port, media and log (scripts/bench-postgres.sh).

Usage: pg_config.py SOURCE_HOMESERVER_YAML PG_DIR PG_PORT HS_PORT — writes PG_DIR/homeserver.yaml and PG_DIR/log.yaml.
"""

import sys

import yaml

source, pg_dir, pg_port, hs_port = sys.argv[1:]
config = yaml.safe_load(open(source))
config["database"] = {"name": "psycopg2", "args": {"user": "synapse", "database": "synapse", "host": "/tmp",
                      "port": int(pg_port), "cp_min": 5, "cp_max": 10}}
config["listeners"][0]["port"] = int(hs_port)
config["public_baseurl"] = f"http://127.0.0.1:{hs_port}/"
config["media_store_path"] = f"{pg_dir}/media_store"
log = yaml.safe_load(open(config["log_config"]))
for handler in log.get("handlers", {}).values():
    if "filename" in handler:
        handler["filename"] = f"{pg_dir}/synapse.log"
open(f"{pg_dir}/log.yaml", "w").write(yaml.safe_dump(log))
config["log_config"] = f"{pg_dir}/log.yaml"
open(f"{pg_dir}/homeserver.yaml", "w").write(yaml.safe_dump(config))
