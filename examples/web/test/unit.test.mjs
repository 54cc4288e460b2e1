// The page's logic that needs no browser: room identities from aliases, and the outbox's exactly-once sending.
// Run with the end-to-end test by scripts/web.sh test.

import assert from "node:assert/strict";
import { test } from "node:test";
import { localSlug, parseAlias } from "../src/identity.js";
import "../client/test/outbox.test.mjs";
import "../client/test/session.test.mjs";

test("aliases name tenant, kind and slug; others are not OpenMeet rooms", () => {
  assert.deepEqual(parseAlias("#om_acme.group.riverside-hikers:localhost"), { tenant: "acme", kind: "group", slug: "riverside-hikers" });
  assert.deepEqual(parseAlias("#om_a-b.event.walk.2030:example.org"), { tenant: "a-b", kind: "event", slug: "walk.2030" });
  assert.deepEqual(parseAlias("#om_acme.space.riverside-hikers:localhost"), { tenant: "acme", kind: "space", slug: "riverside-hikers" });
  assert.deepEqual(parseAlias("#om_acme.direct.alice=bob:localhost"), { tenant: "acme", kind: "direct", slug: "alice=bob" });
  assert.equal(localSlug("@om_acme.bob.b:localhost"), "bob.b");
  assert.equal(localSlug("@someone:localhost"), null);
  for (const other of [null, "", "#random:localhost", "#om_acme.group.:localhost", "#om_acme:localhost"]) {
    assert.equal(parseAlias(other), null, String(other));
  }
});
