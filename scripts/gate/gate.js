// The public entry's checks (scripts/gate/nginx.conf.tmpl): the channels a browser's own Matrix token reaches that
// Synapse offers no module hook for. Each refusal is a Matrix error, never a log line; anything else goes on to
// Synapse unchanged (@synapse). njs 0.7 (Debian bookworm's libnginx-mod-http-js).
//
// A user's tenant: the text between the prefix (om_) and the first "." of the localpart, for users of this server
// only; the platform user is reachable by everyone (it is in every room), operators' accounts only by operators.

function json(r, status, errcode, error) {
    r.headersOut['Content-Type'] = 'application/json';
    // A browser must be able to read the refusal (Synapse's own answers carry the same CORS header).
    r.headersOut['Access-Control-Allow-Origin'] = '*';
    r.return(status, JSON.stringify({ errcode: errcode, error: error }));
}

function forbidden(r, error) {
    json(r, 403, 'M_FORBIDDEN', error);
}

function isLocal(r, userId) {
    var colon = userId.indexOf(':');
    return userId.charAt(0) === '@' && colon > 0 && userId.slice(colon + 1) === r.variables.gate_server_name;
}

function tenantOfLocalpart(r, localpart) {
    var prefix = r.variables.gate_user_prefix;
    if (localpart.indexOf(prefix) !== 0) {
        return null;
    }
    var rest = localpart.slice(prefix.length);
    var dot = rest.indexOf('.');
    return dot > 0 && dot < rest.length - 1 ? rest.slice(0, dot) : null;
}

function tenantOf(r, userId) {
    if (!isLocal(r, userId)) {
        return null;
    }
    return tenantOfLocalpart(r, userId.slice(1, userId.indexOf(':')));
}

// Whether `sender` may name `target` (send it to-device messages, query or claim its keys).
function mayReach(r, sender, target) {
    if (typeof target !== 'string' || !isLocal(r, target)) {
        return false;
    }
    if (target === r.variables.gate_platform_user || target === sender) {
        return true;
    }
    var own = tenantOf(r, sender);
    var theirs = tenantOf(r, target);
    return own === null ? theirs === null : theirs === own;
}

// The JSON body; null when it is not JSON or was not held in memory (never check less than Synapse would read).
function body(r) {
    var text = r.requestText;
    if (text === undefined || text === null || text === '') {
        var length = r.headersIn['Content-Length'];
        var unread = (length !== undefined && length !== '0') || r.headersIn['Transfer-Encoding'] !== undefined;
        return unread ? null : {};
    }
    try {
        var value = JSON.parse(text);
        return value !== null && typeof value === 'object' ? value : null;
    } catch (e) {
        return null;
    }
}

async function caller(r) {
    var reply = await r.subrequest('/_gate/whoami', { method: 'GET', args: r.variables.args || '' });
    if (reply.status !== 200) {
        return { status: reply.status, text: reply.responseText };
    }
    try {
        return { userId: JSON.parse(reply.responseText).user_id };
    } catch (e) {
        return { status: 502, text: '{"errcode":"M_UNKNOWN","error":"Bad whoami answer"}' };
    }
}

function objectKeys(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [];
}

// The users a request names, by endpoint; null when the endpoint is not one that names users.
function namedUsers(r, path, parsed) {
    if (r.method === 'PUT' && /\/sendToDevice\/[^/]+\/[^/]+$/.test(path)) {
        return objectKeys(parsed.messages);
    }
    if (r.method === 'POST' && /\/keys\/query$/.test(path)) {
        return objectKeys(parsed.device_keys);
    }
    if (r.method === 'POST' && /\/keys\/claim$/.test(path)) {
        return objectKeys(parsed.one_time_keys);
    }
    if (r.method === 'POST' && /\/keys\/signatures\/upload$/.test(path)) {
        return objectKeys(parsed);
    }
    return null;
}

function pusherProblem(r, pusher) {
    if (pusher.kind === null) {
        return null; // a deletion
    }
    var data = pusher.data !== null && typeof pusher.data === 'object' ? pusher.data : {};
    if (pusher.kind !== 'http' || data.url !== r.variables.gate_push_gateway_url) {
        return 'Pushers may only point at the OpenMeet push gateway';
    }
    if (data.format !== 'event_id_only') {
        return 'Pushers must use format event_id_only';
    }
    return null;
}

function aliasTenant(r, alias) {
    var colon = alias.indexOf(':');
    if (alias.charAt(0) !== '#' || colon < 0) {
        return null;
    }
    return tenantOfLocalpart(r, alias.slice(1, colon));
}

async function guard(r) {
    var path = r.uri;
    if (r.method === 'OPTIONS') {
        r.internalRedirect('@synapse');
        return;
    }
    if (r.method === 'PUT' && /\/profile\/[^/]+\/(displayname|avatar_url)$/.test(path)) {
        forbidden(r, 'Display names and avatars are set by OpenMeet');
        return;
    }
    var parsed = body(r);
    if (parsed === null) {
        json(r, 400, 'M_NOT_JSON', 'Content not JSON.');
        return;
    }
    if (r.method === 'POST' && /\/pushers\/set$/.test(path)) {
        var problem = pusherProblem(r, parsed);
        if (problem !== null) {
            forbidden(r, problem);
            return;
        }
        r.internalRedirect('@synapse');
        return;
    }
    var alias = r.method === 'GET' ? /\/directory\/room\/([^/]+)$/.exec(path) : null;
    var users = namedUsers(r, path, parsed);
    if (users === null && (alias === null || aliasTenant(r, alias[1]) === null)) {
        r.internalRedirect('@synapse');
        return;
    }
    var who = await caller(r);
    if (who.userId === undefined) {
        // Not authenticated (or Synapse down): Synapse's own answer.
        r.headersOut['Content-Type'] = 'application/json';
        r.return(who.status, who.text);
        return;
    }
    if (alias !== null && users === null) {
        var sender = tenantOf(r, who.userId);
        if (sender !== aliasTenant(r, alias[1])) {
            json(r, 404, 'M_NOT_FOUND', 'Room alias not found');
            return;
        }
        r.internalRedirect('@synapse');
        return;
    }
    for (var i = 0; i < users.length; i++) {
        if (!mayReach(r, who.userId, users[i])) {
            forbidden(r, 'Users of another tenant or server cannot be reached');
            return;
        }
    }
    r.internalRedirect('@synapse');
}

export default { guard };
