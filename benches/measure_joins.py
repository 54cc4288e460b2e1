# Per-membership cost of join sequences on the local stack (ADR 0011): ROOMS rooms at once, one change in flight per room.
# Usage: python3 benches/measure_joins.py ROOMS MEMBERS   (reads .local/stack.env; run under flock /tmp/openmeet-stack.lock)
import os, sys, time, uuid, json, threading, requests
from concurrent.futures import ThreadPoolExecutor
env = dict(l.strip().split('=',1) for l in open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '.local', 'stack.env')) if '=' in l and not l.startswith('#'))
HS = env['MATRIX_HOMESERVER_URL']; TOK = env['MATRIX_AS_TOKEN']; SRV = env['MATRIX_SERVER_NAME']
PFX = env.get('MATRIX_USER_PREFIX','om_'); PLAT='@%s:%s' % (env.get('MATRIX_PLATFORM_LOCALPART','openmeet'), SRV)
S = requests.Session(); S.headers['Authorization'] = 'Bearer ' + TOK
a = requests.adapters.HTTPAdapter(pool_maxsize=64); S.mount('http://', a)
def call(m, p, body=None, **q):
    for _ in range(20):
        r = S.request(m, HS + p, json=body, params=q)
        if r.status_code == 429: time.sleep(r.json().get('retry_after_ms', 500)/1000); continue
        return r
    return r
q = requests.utils.quote
ROOMS, MEMBERS = int(sys.argv[1]), int(sys.argv[2])
t = 'ms' + uuid.uuid4().hex[:6]
uids = []
def reg(i):
    lp = '%s%s.u%d' % (PFX, t, i)
    call('POST', '/_matrix/client/v3/register', {'type': 'm.login.application_service', 'username': lp, 'inhibit_login': True})
    return '@%s:%s' % (lp, SRV)
with ThreadPoolExecutor(8) as ex: uids = list(ex.map(reg, range(MEMBERS)))
space = call('POST', '/_matrix/client/v3/createRoom', {'room_alias_name': '%s%s.tenant' % (PFX, t), 'preset': 'private_chat', 'creation_content': {'type': 'm.space'}, 'room_version': '12'}).json()['room_id']
n = [0]
def mk(kind, invite=None):
    n[0] += 1
    jr = {'join_rule': 'invite'} if kind == 'invite' else {'join_rule': 'restricted', 'allow': [{'type': 'm.room_membership', 'room_id': space}]}
    body = {'room_alias_name': '%s%s.group.r%d' % (PFX, t, n[0]), 'preset': 'private_chat', 'room_version': '12',
            'initial_state': [{'type': 'm.room.join_rules', 'state_key': '', 'content': jr}]}
    if invite: body['invite'] = invite
    r = call('POST', '/_matrix/client/v3/createRoom', body)
    return r.json()['room_id']
def per_room(rooms, fn):
    t0 = time.time(); errs = []
    def one(room):
        for u in uids:
            e = fn(room, u)
            if e: errs.append(e)
    with ThreadPoolExecutor(len(rooms)) as ex: list(ex.map(one, rooms))
    return len(rooms)*len(uids)/(time.time()-t0), errs[:3], len(errs)
def admin_join(room, u):
    r = call('POST', '/_synapse/admin/v1/join/' + q(room), {'user_id': u}); return None if r.ok else r.text
def mjoin(room, u, dev=None):
    params = {'user_id': u}
    r = call('POST', '/_matrix/client/v3/rooms/%s/join' % q(room), {}, **params); return None if r.ok else r.text
def invite_join(room, u):
    r = call('POST', '/_matrix/client/v3/rooms/%s/invite' % q(room), {'user_id': u})
    if not r.ok: return r.text
    return mjoin(room, u)
res = {}
res['admin join, restricted, not in space'] = per_room([mk('restricted') for _ in range(ROOMS)], admin_join)
res['admin join, invite-only'] = per_room([mk('invite') for _ in range(ROOMS)], admin_join)
res['invite + masquerade join, invite-only'] = per_room([mk('invite') for _ in range(ROOMS)], invite_join)
t0 = time.time(); rooms = [mk('invite', invite=uids) for _ in range(ROOMS)]; ct = time.time()-t0
res['createRoom invite list, then masquerade join (create incl.)'] = (lambda r: (ROOMS*MEMBERS/(ROOMS*MEMBERS/r[0]+ct), r[1], r[2]))(per_room(rooms, mjoin))
# space join once per user (one room: sequential), then masquerade joins into restricted rooms
t0 = time.time()
for u in uids: admin_join(space, u)
st = time.time()-t0
r = per_room([mk('restricted') for _ in range(ROOMS)], mjoin)
res['masquerade join, restricted, user in space (space join excl.)'] = r
res['space admin join, one room sequential'] = (MEMBERS/st, [], 0)
r = per_room([mk('restricted') for _ in range(ROOMS)], lambda room, u: None if call('POST', '/_matrix/client/v3/rooms/%s/join' % q(room), {}, user_id=u, device_id='NODEV').ok else 'dev')
res['masquerade join with unknown device_id'] = r
for k, v in res.items(): print('%-62s %6.1f memberships/s  errors %d %s' % (k, v[0], v[2], v[1][:1]))
