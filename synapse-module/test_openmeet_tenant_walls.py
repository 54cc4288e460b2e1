"""Unit tests of the tenant-walls module against a fake ModuleApi (run by scripts/test.sh in the stack's venv:
`python -m unittest discover -s synapse-module`). The integration tests prove the same walls on a real Synapse."""

import os
import tempfile
import unittest
from types import SimpleNamespace

from synapse.module_api.errors import Codes

import openmeet_tenant_walls as walls

PLATFORM = "@openmeet:localhost"
ALICE = "@om_acme.alice:localhost"  # tenant acme
BOB = "@om_acme.bob:localhost"  # tenant acme
EVE = "@om_globex.eve:localhost"  # tenant globex
ROOT = "@root:localhost"  # an operator's own account
BOT = "@helper-bot:localhost"
LOOKALIKE = "@om_acme.mallory:evil.example"  # tenant acme's shape, another server

REGISTRATION = os.path.join(tempfile.mkdtemp(prefix="walls-test-"), "appservice.yaml")
with open(REGISTRATION, "w", encoding="utf-8") as _file:
    _file.write('id: openmeet\nnamespaces:\n  users:\n    - exclusive: false\n      regex: "@om_.*:localhost"\n')


def registration(regex):
    path = os.path.join(tempfile.mkdtemp(prefix="walls-test-"), "appservice.yaml")
    with open(path, "w", encoding="utf-8") as file:
        file.write(f'namespaces:\n  users:\n    - exclusive: true\n      regex: "{regex}"\n')
    return path


def event(sender, content=None):
    return SimpleNamespace(sender=sender, content=content or {})


class FakeApi:
    server_name = "localhost"

    def __init__(self):
        self.rooms = {}
        self.callbacks = {}
        self.media_callbacks = {}

    def register_spam_checker_callbacks(self, **callbacks):
        self.callbacks = callbacks

    def register_media_repository_callbacks(self, **callbacks):
        self.media_callbacks = callbacks

    def is_mine(self, user_id):
        return user_id.split(":", 1)[-1] == self.server_name

    def add_room(self, room_id, creator, meta=None, alias=None):
        state = {("m.room.create", ""): event(creator)}
        if meta is not None:
            state[("org.openmeet.room", "")] = event(PLATFORM, meta)
        if alias is not None:
            state[("m.room.canonical_alias", "")] = event(PLATFORM, {"alias": alias})
        self.rooms[room_id] = state

    async def get_room_state(self, room_id, event_filter=None):
        state = self.rooms.get(room_id, {})
        wanted = set(event_filter or state.keys())
        return {key: value for key, value in state.items() if key in wanted}


def module(allowed_users=()):
    api = FakeApi()
    api.add_room("!acme-group", PLATFORM, meta={"tenant": "acme", "kind": "group", "slug": "chess"})
    api.add_room("!acme-legacy", PLATFORM, alias="#om_acme.group.old:localhost")
    api.add_room("!acme-space", PLATFORM, meta={"tenant": "acme", "kind": "tenant"})
    api.add_room("!globex-event", PLATFORM, meta={"tenant": "globex", "kind": "event", "slug": "launch"})
    api.add_room("!alice-own", ALICE)
    api.add_room("!operators", ROOT)
    config = {
        "namespace_prefix": "om_",
        "platform_user": PLATFORM,
        "allowed_users": list(allowed_users),
        "appservice_registration": REGISTRATION,
    }
    return walls.TenantWalls(config, api), api


class TenancyOfIdentifiers(unittest.TestCase):
    def test_users_and_aliases_name_their_tenant(self):
        config = walls.WallsConfig("om_", PLATFORM, [])
        self.assertEqual(config.tenant_of_user(ALICE), "acme")
        self.assertEqual(config.tenant_of_user("@om_a-b.c.d:localhost"), "a-b")
        self.assertIsNone(config.tenant_of_user(PLATFORM))
        self.assertIsNone(config.tenant_of_user("@om_nodot:localhost"))
        self.assertIsNone(config.tenant_of_user("@om_.x:localhost"))
        self.assertIsNone(config.tenant_of_user("not-a-user"))
        self.assertEqual(config.tenant_of_alias("#om_acme.group.chess:localhost"), "acme")
        self.assertEqual(config.tenant_of_alias("#om_acme.tenant:localhost"), "acme")
        self.assertIsNone(config.tenant_of_alias("#general:localhost"))

    def test_bad_configuration_is_refused_at_start(self):
        with self.assertRaises(ValueError):
            walls.TenantWalls.parse_config({"platform_user": "openmeet"})
        with self.assertRaises(ValueError):
            walls.TenantWalls.parse_config({"platform_user": PLATFORM, "allowed_users": "x"})
        self.assertTrue(walls.TenantWalls.parse_config({"platform_user": PLATFORM, "appservice_registration": REGISTRATION}))

    def test_a_prefix_other_than_the_deployments_refuses_to_start(self):
        config = {"platform_user": PLATFORM, "namespace_prefix": "om_"}
        for regex in ["@openmeet_.*:localhost", "@om.*:localhost", "@.*:localhost"]:
            with self.subTest(regex=regex), self.assertRaises(ValueError):
                walls.TenantWalls.parse_config({**config, "appservice_registration": registration(regex)})
        with self.assertRaises(ValueError):
            walls.TenantWalls.parse_config(config)  # no registration: fail closed, never silently open
        with self.assertRaises(ValueError):
            walls.TenantWalls.parse_config({**config, "appservice_registration": "/nonexistent/appservice.yaml"})
        self.assertTrue(walls.TenantWalls.parse_config({**config, "appservice_registration": registration("^@om_.*")}))

    def test_users_of_other_servers_have_no_tenant(self):
        config = walls.WallsConfig("om_", PLATFORM, [], "localhost")
        self.assertIsNone(config.tenant_of_user(LOOKALIKE))
        self.assertIsNone(config.tenant_of_user("@om_acme.alice:localhost.evil.example"))
        self.assertEqual(config.tenant_of_user(ALICE), "acme")


class Joins(unittest.IsolatedAsyncioTestCase):
    async def test_same_tenant_joins_and_foreign_users_do_not(self):
        m, _ = module()
        self.assertEqual(await m.user_may_join_room(ALICE, "!acme-group", False), "NOT_SPAM")
        self.assertEqual(await m.user_may_join_room(ALICE, "!acme-legacy", False), "NOT_SPAM")
        self.assertEqual(await m.user_may_join_room(EVE, "!acme-group", False), Codes.FORBIDDEN)
        # An invite (even the platform's) never opens a wall.
        self.assertEqual(await m.user_may_join_room(EVE, "!acme-group", True), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_join_room(EVE, "!acme-legacy", True), Codes.FORBIDDEN)

    async def test_rooms_users_create_belong_to_their_creators_tenant(self):
        m, _ = module()
        self.assertEqual(await m.user_may_join_room(BOB, "!alice-own", True), "NOT_SPAM")
        self.assertEqual(await m.user_may_join_room(EVE, "!alice-own", True), Codes.FORBIDDEN)

    async def test_rooms_without_a_tenant_admit_no_tenant_user(self):
        m, _ = module()
        self.assertEqual(await m.user_may_join_room(ALICE, "!operators", True), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_join_room(ALICE, "!unknown", False), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_join_room("@ops:localhost", "!operators", True), "NOT_SPAM")

    async def test_operators_accounts_stay_out_of_tenant_rooms_unless_allowed(self):
        m, _ = module(allowed_users=[BOT])
        self.assertEqual(await m.user_may_join_room(ROOT, "!acme-group", False), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_join_room(BOT, "!acme-group", False), "NOT_SPAM")
        self.assertEqual(await m.user_may_join_room(PLATFORM, "!globex-event", False), "NOT_SPAM")


class Invites(unittest.IsolatedAsyncioTestCase):
    async def test_invites_stay_inside_the_rooms_tenant(self):
        m, _ = module()
        self.assertEqual(await m.user_may_invite(ALICE, BOB, "!alice-own"), "NOT_SPAM")
        self.assertEqual(await m.user_may_invite(ALICE, EVE, "!alice-own"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_invite(ALICE, EVE, "!acme-group"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_invite(EVE, BOB, "!acme-group"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_invite(ALICE, ROOT, "!alice-own"), Codes.FORBIDDEN)

    async def test_remote_users_are_neither_invited_nor_inviting(self):
        m, _ = module(allowed_users=[LOOKALIKE])
        # is_mine decides, whatever the localpart looks like or the allow-list says.
        self.assertEqual(await m.user_may_invite(ALICE, LOOKALIKE, "!alice-own"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_invite(ALICE, LOOKALIKE, "!acme-group"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_invite(LOOKALIKE, BOB, "!alice-own"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_invite(PLATFORM, "@someone:matrix.org", "!operators"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_join_room(LOOKALIKE, "!acme-group", True), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_create_room(ALICE, {"invite": [LOOKALIKE]}), Codes.FORBIDDEN)

    async def test_no_invites_by_email(self):
        m, _ = module()
        self.assertEqual(
            await m.user_may_send_3pid_invite(ALICE, "email", "x@example.org", "!alice-own"), Codes.FORBIDDEN
        )
        self.assertEqual(await m.user_may_send_3pid_invite(ROOT, "email", "x@example.org", "!operators"), "NOT_SPAM")


class RoomCreation(unittest.IsolatedAsyncioTestCase):
    async def test_a_private_room_with_same_tenant_invites_is_fine(self):
        m, _ = module()
        body = {"preset": "private_chat", "invite": [BOB], "is_direct": True, "name": "us"}
        self.assertEqual(await m.user_may_create_room(ALICE, body), "NOT_SPAM")

    async def test_what_would_leak_a_room_out_of_its_tenant_is_refused(self):
        m, _ = module()
        refused = [
            {"invite": [EVE]},
            {"invite": [ROOT]},
            {"invite_3pid": [{"medium": "email", "address": "x@example.org"}]},
            {"room_alias_name": "hangout"},
            {"visibility": "public"},
            {"preset": "public_chat"},
            {"creation_content": {"org.openmeet.tenant": "globex"}},
            {"initial_state": [{"type": "org.openmeet.room", "state_key": "", "content": {"tenant": "globex"}}]},
            {"initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "public"}}]},
            {"initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]},
            {"initial_state": [{"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}]},
            {"initial_state": [{"type": "m.room.guest_access", "content": {"guest_access": "can_join"}}]},
            {"initial_state": ["not an event"]},
        ]
        for body in refused:
            with self.subTest(body=body):
                self.assertEqual(await m.user_may_create_room(ALICE, body), Codes.FORBIDDEN)

    async def test_operators_create_what_they_like(self):
        m, _ = module()
        self.assertEqual(await m.user_may_create_room(ROOT, {"preset": "public_chat"}), "NOT_SPAM")


class StateDirectoryAndAliases(unittest.IsolatedAsyncioTestCase):
    async def test_tenant_users_cannot_open_their_rooms_or_forge_metadata(self):
        m, _ = module()
        for event_type, content in [
            ("m.room.join_rules", {"join_rule": "public"}),
            ("m.room.join_rules", {"join_rule": "knock_restricted"}),
            ("m.room.history_visibility", {"history_visibility": "world_readable"}),
            ("m.room.guest_access", {"guest_access": "can_join"}),
            ("org.openmeet.room", {"tenant": "globex"}),
        ]:
            with self.subTest(event_type=event_type, content=content):
                result = await m.user_may_send_state_event(ALICE, "!alice-own", event_type, "", content)
                self.assertEqual(result, Codes.FORBIDDEN)
        allowed = await m.user_may_send_state_event(ALICE, "!alice-own", "m.room.name", "", {"name": "x"})
        self.assertEqual(allowed, "NOT_SPAM")
        invite_only = await m.user_may_send_state_event(
            ALICE, "!alice-own", "m.room.join_rules", "", {"join_rule": "invite"}
        )
        self.assertEqual(invite_only, "NOT_SPAM")

    async def test_only_the_platform_publishes_and_tenant_users_make_no_aliases(self):
        m, _ = module()
        self.assertEqual(await m.user_may_publish_room(PLATFORM, "!acme-group"), "NOT_SPAM")
        self.assertEqual(await m.user_may_publish_room(ALICE, "!alice-own"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_publish_room(ROOT, "!operators"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_create_room_alias(ALICE, "#x:localhost"), Codes.FORBIDDEN)
        self.assertEqual(await m.user_may_create_room_alias(ROOT, "#x:localhost"), "NOT_SPAM")

    async def test_directory_searches_show_only_the_searchers_tenant(self):
        m, _ = module()
        self.assertFalse(await m.check_username_for_spam({"user_id": BOB}, ALICE))
        self.assertTrue(await m.check_username_for_spam({"user_id": EVE}, ALICE))
        self.assertTrue(await m.check_username_for_spam({"user_id": ROOT}, ALICE))
        self.assertFalse(await m.check_username_for_spam({"user_id": PLATFORM}, ALICE))
        self.assertFalse(await m.check_username_for_spam({"user_id": EVE}, ROOT))


class Media(unittest.IsolatedAsyncioTestCase):
    async def check(self, content, **info):
        path = os.path.join(tempfile.mkdtemp(prefix="walls-media-"), "upload")
        with open(path, "wb") as file:
            file.write(content)
        m, _ = module()
        file_info = SimpleNamespace(server_name=None, file_id="F", thumbnail=None, **info)
        return await m.check_media_file_for_spam(SimpleNamespace(path=path), file_info)

    async def test_markup_and_scripts_are_refused_by_content(self):
        for content in [
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            b"\xef\xbb\xbf  <?xml version='1.0'?><svg/>",
            b"<!DOCTYPE html><html><body>x</body></html>",
            b"\n\n<HTML><head></head>",
            b"<script>fetch('/')</script>",
            b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'/>",
            b"'use strict'; fetch('/')",
        ]:
            with self.subTest(content=content):
                self.assertEqual(await self.check(content), Codes.FORBIDDEN)

    async def test_images_and_text_pass(self):
        for content in [b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"\xff\xd8\xff\xe0JFIF", b"GIF89a", b"hello, world", b"%PDF-1.7"]:
            with self.subTest(content=content):
                self.assertEqual(await self.check(content), "NOT_SPAM")

    async def test_url_preview_downloads_are_the_homeservers_own(self):
        self.assertEqual(await self.check(b"<!DOCTYPE html><html></html>", url_cache=True), "NOT_SPAM")

    async def test_chunked_wrappers_are_read_too(self):
        m, _ = module()

        class Chunks:
            async def write_chunks_to(self, callback):
                for chunk in [b"  <s", b"vg>", b"x" * 5000]:
                    callback(chunk)

        info = SimpleNamespace(server_name=None, file_id="F", thumbnail=None)
        self.assertEqual(await m.check_media_file_for_spam(Chunks(), info), Codes.FORBIDDEN)

    async def test_the_platform_has_no_user_quota(self):
        m, _ = module()
        self.assertEqual(await m.get_media_upload_limits_for_user(PLATFORM), [])
        self.assertIsNone(await m.get_media_upload_limits_for_user(ALICE))


class Registration(unittest.TestCase):
    def test_every_callback_is_registered(self):
        _, api = module()
        self.assertEqual(
            set(api.callbacks),
            {
                "user_may_join_room",
                "user_may_invite",
                "user_may_send_3pid_invite",
                "user_may_create_room",
                "user_may_create_room_alias",
                "user_may_publish_room",
                "user_may_send_state_event",
                "check_username_for_spam",
                "check_registration_for_spam",
                "check_login_for_spam",
                "check_media_file_for_spam",
            },
        )
        self.assertEqual(set(api.media_callbacks), {"get_media_upload_limits_for_user"})


class FakeStore:
    def __init__(self, hashes):
        self.hashes = hashes

    async def get_users_by_id_case_insensitive(self, user_id):
        return {u: h for u, h in self.hashes.items() if u.lower() == user_id.lower()}


class NamespaceIsTheAppservices(unittest.IsolatedAsyncioTestCase):
    async def test_nobody_registers_an_openmeet_user(self):
        from synapse.spam_checker_api import RegistrationBehaviour

        m, _ = module()
        for name in ("om_acme.mallory", "OM_acme.x", "om_"):
            self.assertEqual(await m.check_registration_for_spam(None, name, []), RegistrationBehaviour.DENY)
        self.assertEqual(await m.check_registration_for_spam(None, "root2", []), RegistrationBehaviour.ALLOW)
        self.assertEqual(await m.check_registration_for_spam(None, None, []), RegistrationBehaviour.ALLOW)

    async def test_openmeet_users_log_in_only_without_password_or_identity_provider(self):
        m, api = module()
        api._store = FakeStore({ALICE: "", EVE: "$2b$12$hash", ROOT: "$2b$12$hash"})
        self.assertEqual(await m.check_login_for_spam(ALICE, "D", None, []), "NOT_SPAM")
        self.assertEqual(await m.check_login_for_spam(EVE, "D", None, []), Codes.FORBIDDEN)
        self.assertEqual(await m.check_login_for_spam(ALICE, "D", None, [], "oidc"), Codes.FORBIDDEN)
        self.assertEqual(await m.check_login_for_spam(ROOT, "D", None, []), "NOT_SPAM")
        self.assertEqual(await m.check_login_for_spam(PLATFORM, None, None, []), "NOT_SPAM")

    async def test_without_a_store_logins_fail_closed(self):
        m, _ = module()
        self.assertEqual(await m.check_login_for_spam(ALICE, "D", None, []), Codes.FORBIDDEN)


if __name__ == "__main__":
    unittest.main()
