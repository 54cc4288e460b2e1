"""Make the appservice sender (the platform user) a Synapse server admin. Idempotent.

Used by `openmeet-local stack start` (step 6). Synapse does not create the appservice sender's
user row at start-up (the appservice registers it here), and an appservice token carries no
admin rights of its own: the grant goes through a bootstrap admin registered with the shared
secret (POST /_synapse/admin/v1/register, HMAC-SHA1 over nonce/user/password/admin).

Standard library only. Exits non-zero, with the homeserver's answer, on any failure.
"""

import argparse
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


# Loopback only: never go through an HTTP(S)_PROXY from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with OPENER.open(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"{}")
        except ValueError:
            return err.code, {"raw": raw.decode(errors="replace")}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--homeserver", required=True)
    p.add_argument("--shared-secret", required=True)
    p.add_argument("--admin-user", required=True)
    p.add_argument("--admin-password", required=True)
    p.add_argument("--platform-user", required=True)
    p.add_argument("--as-token", required=True)
    p.add_argument("--prefix", default="")
    a = p.parse_args()
    hs = a.homeserver.rstrip("/")

    def say(msg):
        print(f"{a.prefix} {msg}".strip(), flush=True)

    def fail(msg, status, body):
        sys.exit(f"{a.prefix} ERROR: {msg}: HTTP {status} {json.dumps(body)}".strip())

    quoted = urllib.parse.quote(a.platform_user)

    # Already done (e.g. the stamp was deleted but the database kept)?
    status, body = call(hs, "GET", f"/_synapse/admin/v1/users/{quoted}/admin", token=a.as_token)
    if status == 200 and body.get("admin") is True:
        say(f"{a.platform_user} is already a server admin")
        return

    # 1. The bootstrap admin: shared-secret registration, or log in if it exists already.
    status, body = call(hs, "GET", "/_synapse/admin/v1/register")
    if status != 200:
        fail("fetching a registration nonce failed", status, body)
    nonce = body["nonce"]
    # HMAC-SHA1 of nonce NUL user NUL password NUL "admin", keyed with the shared secret.
    mac = hmac.new(
        a.shared_secret.encode(),
        b"\x00".join(x.encode() for x in (nonce, a.admin_user, a.admin_password, "admin")),
        digestmod=hashlib.sha1,
    )
    status, body = call(
        hs,
        "POST",
        "/_synapse/admin/v1/register",
        {
            "nonce": nonce,
            "username": a.admin_user,
            "password": a.admin_password,
            "admin": True,
            "mac": mac.hexdigest(),
        },
    )
    if status == 200:
        token = body["access_token"]
        say(f"registered the bootstrap admin {body['user_id']}")
    elif body.get("errcode") == "M_USER_IN_USE":
        status, body = call(
            hs,
            "POST",
            "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": a.admin_user},
                "password": a.admin_password,
            },
        )
        if status != 200:
            fail("logging in as the bootstrap admin failed", status, body)
        token = body["access_token"]
        say(f"logged in as the existing bootstrap admin {body['user_id']}")
    else:
        fail("registering the bootstrap admin failed", status, body)

    # 2. The sender's user row. Synapse does not create it at start-up, and the admin API refuses
    #    to create a user the appservice is interested in (400 M_EXCLUSIVE), the sender included:
    #    the appservice registers it itself (400 M_USER_IN_USE when it exists already).
    localpart = a.platform_user[1:].split(":", 1)[0]
    status, body = call(
        hs,
        "POST",
        "/_matrix/client/v3/register",
        {"type": "m.login.application_service", "username": localpart, "inhibit_login": True},
        token=a.as_token,
    )
    if status == 200:
        say(f"registered {a.platform_user} through the appservice")
    elif body.get("errcode") != "M_USER_IN_USE":
        fail(f"registering {a.platform_user} through the appservice failed", status, body)

    # 3. The grant.
    status, body = call(hs, "PUT", f"/_synapse/admin/v2/users/{quoted}", {"admin": True}, token=token)
    if status not in (200, 201):
        fail(f"PUT /_synapse/admin/v2/users/{a.platform_user} failed", status, body)
    say(f"granted server admin to {a.platform_user} (HTTP {status})")

    # 4. Log the bootstrap admin's session out again; it is not needed any more.
    call(hs, "POST", "/_matrix/client/v3/logout", {}, token=token)

    # 5. Verify with the appservice token itself.
    status, body = call(hs, "GET", f"/_synapse/admin/v1/users/{quoted}/admin", token=a.as_token)
    if status != 200 or body.get("admin") is not True:
        fail("the appservice token is still not a server admin", status, body)
    say("verified: the appservice token passes the admin API")


if __name__ == "__main__":
    main()
