"""Tenant walls for an OpenMeet homeserver: a Synapse module (spam-checker callbacks).

Every browser holds a real Matrix token, so the homeserver itself must refuse what OpenMeet's API refuses. Matrix
expresses most of it (restricted join rules on a per-tenant space, power levels that give the platform alone the
managed state; see docs/adr/0003-tenant-walls.md). This module holds the rest:

- a user of tenant A never joins, or is invited to, a room of tenant B (by alias or room id, admin joins included);
- nobody invites across tenants, by Matrix id or by e-mail (3pid);
- rooms that users create themselves stay in their creator's tenant: no foreign invites, never public, knockable,
  world-readable or guest-joinable, no OpenMeet metadata, no aliases;
- only the platform user publishes rooms to the server-wide directory;
- user-directory searches never show another tenant's users;
- nobody but the appservice registers an OpenMeet user or logs in as one (the user namespace is not exclusive, so
  that push rules are evaluated for these users: docs/adr/0008-notifications.md);
- users of other servers are nobody's tenant: no invite from or to a remote user, no remote join (federation is off
  as well, scripts/synapse/homeserver.yaml.tmpl);
- uploads whose content is markup a browser would render (SVG, HTML, XHTML, XML) or a script are refused (the public
  entry, scripts/gate/, refuses them by declared type too: this callback does not see the declared type);
- the platform user is not held to the per-user media quota (`media_upload_limits`), everybody else is.

A user's tenant is the text between the namespace prefix and the first "." of their localpart (tenant ids contain
no "."), for users of this server only: `@om_acme.x:evil.example` is nobody's tenant user. A room's tenant is its creator's tenant when a tenant user created it; for rooms the platform created it is
the `tenant` of the `org.openmeet.room` (or tenant space) state, else the tenant of its `#<prefix><tenant>.…`
canonical alias. A room without a tenant admits no tenant user.

Install: put this file on Synapse's Python path (or `pip install ./synapse-module`) and add to homeserver.yaml:

    modules:
      - module: openmeet_tenant_walls.TenantWalls
        config:
          namespace_prefix: "om_"          # = MATRIX_USER_PREFIX of the functions
          platform_user: "@openmeet:example.org"
          allowed_users: []                # e.g. bots that may be in every tenant's rooms
          appservice_registration: /path/to/openmeet-appservice.yaml

`appservice_registration` is the platform's appservice registration (the file listed in `app_service_config_files`):
the module refuses to start unless every user namespace regex in it begins with `@<namespace_prefix>`, so a prefix
that differs from the deployment's fails at start-up instead of silently walling nobody.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable, Optional

logger = logging.getLogger(__name__)

META_EVENT = "org.openmeet.room"
# The state that carries a room's tenant and that only the platform may ever write.
PLATFORM_ONLY_PREFIX = "org.openmeet."
SAFE_JOIN_RULES = ("invite", "restricted")
# How much of an upload is sniffed for markup.
SNIFF_BYTES = 1024
# Markup a browser runs or renders as a document when it opens the file (HTML, SVG, XML with stylesheets).
MARKUP_SIGNS = (b"<svg", b"<html", b"<!doctype", b"<?xml", b"<script", b"<head", b"<body", b"<iframe", b"<object",
                b"<embed", b"<xsl", b"<meta", b"<img", b"<style", b"<title", b"<!--", b"<a ", b"<p>", b"<div")

__all__ = ["TenantWalls", "WallsConfig"]


class WallsConfig:
    def __init__(
        self, namespace_prefix: str, platform_user: str, allowed_users: Iterable[str], server_name: Optional[str] = None
    ):
        self.namespace_prefix = namespace_prefix
        self.platform_user = platform_user
        self.allowed_users = frozenset(allowed_users)
        # This homeserver's name (the module API's): only its users have a tenant.
        self.server_name = server_name if server_name is not None else platform_user.split(":", 1)[-1]

    @staticmethod
    def parse(config: dict[str, Any]) -> "WallsConfig":
        prefix = config.get("namespace_prefix", "om_")
        platform = config.get("platform_user")
        allowed = config.get("allowed_users", [])
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("openmeet_tenant_walls: namespace_prefix must be a non-empty string")
        if not isinstance(platform, str) or not platform.startswith("@") or ":" not in platform:
            raise ValueError("openmeet_tenant_walls: platform_user must be a Matrix user id")
        if not isinstance(allowed, list) or not all(isinstance(u, str) for u in allowed):
            raise ValueError("openmeet_tenant_walls: allowed_users must be a list of Matrix user ids")
        check_namespace(prefix, config.get("appservice_registration"))
        return WallsConfig(prefix, platform, allowed)

    def is_local(self, user_id: str) -> bool:
        return user_id.startswith("@") and user_id.split(":", 1)[-1] == self.server_name

    def tenant_of_user(self, user_id: str) -> Optional[str]:
        """The tenant of a user of OpenMeet's namespace on this server; None for anyone else."""
        if not user_id.startswith("@") or ":" not in user_id or not self.is_local(user_id):
            return None
        localpart = user_id[1:].split(":", 1)[0]
        if not localpart.startswith(self.namespace_prefix):
            return None
        tenant, dot, rest = localpart[len(self.namespace_prefix) :].partition(".")
        return tenant if tenant and dot and rest else None

    def tenant_of_alias(self, alias: str) -> Optional[str]:
        """`#<prefix><tenant>.<kind>…:server` → tenant."""
        if not alias.startswith("#" + self.namespace_prefix) or ":" not in alias:
            return None
        localpart = alias[1:].split(":", 1)[0][len(self.namespace_prefix) :]
        tenant, dot, rest = localpart.partition(".")
        return tenant if tenant and dot and rest else None


def check_namespace(prefix: str, registration: Any) -> None:
    """Raises unless every user namespace of the appservice registration begins with `@<prefix>`."""
    if not isinstance(registration, str) or not registration:
        raise ValueError("openmeet_tenant_walls: appservice_registration (the platform's registration file) is required")
    import yaml

    try:
        with open(registration, encoding="utf-8") as file:
            document = yaml.safe_load(file)
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"openmeet_tenant_walls: cannot read {registration}: {error}") from error
    namespaces = (document or {}).get("namespaces") if isinstance(document, dict) else None
    users = (namespaces or {}).get("users") or []
    regexes = [str(n.get("regex")) for n in users if isinstance(n, dict)]
    if not regexes:
        raise ValueError(f"openmeet_tenant_walls: {registration} has no user namespace")
    for regex in regexes:
        # The literal text the regex starts with: "@om_" for "@om_.*:localhost".
        literal = re.match(r"[^.*+?()\[\]{}|\\^$]*", regex.lstrip("^"))
        if literal is None or literal.group(0) != "@" + prefix:
            raise ValueError(
                f"openmeet_tenant_walls: namespace_prefix {prefix!r} differs from the appservice namespace {regex!r}"
            )


def looks_like_markup(head: bytes) -> bool:
    """Whether the first bytes of a file are markup a browser would render (HTML, SVG, XML) or a script."""
    text = head.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n\x0c").replace(b"\x00", b"").lower()
    if text.startswith(b"<"):
        return any(sign in text for sign in MARKUP_SIGNS)
    return text.startswith((b"#!", b'"use strict', b"'use strict", b"function", b"var ", b"const ", b"let "))


class TenantWalls:
    def __init__(self, config: dict[str, Any], api: Any):
        parsed = WallsConfig.parse(config)
        self._config = WallsConfig(parsed.namespace_prefix, parsed.platform_user, parsed.allowed_users, api.server_name)
        self._api = api
        api.register_spam_checker_callbacks(
            user_may_join_room=self.user_may_join_room,
            user_may_invite=self.user_may_invite,
            user_may_send_3pid_invite=self.user_may_send_3pid_invite,
            user_may_create_room=self.user_may_create_room,
            user_may_create_room_alias=self.user_may_create_room_alias,
            user_may_publish_room=self.user_may_publish_room,
            user_may_send_state_event=self.user_may_send_state_event,
            check_username_for_spam=self.check_username_for_spam,
            check_media_file_for_spam=self.check_media_file_for_spam,
            check_registration_for_spam=self.check_registration_for_spam,
            check_login_for_spam=self.check_login_for_spam,
        )
        api.register_media_repository_callbacks(
            get_media_upload_limits_for_user=self.get_media_upload_limits_for_user,
        )

    @staticmethod
    def parse_config(config: dict[str, Any]) -> dict[str, Any]:
        WallsConfig.parse(config)
        return config

    # ---------------------------------------------------------------------------------------------------------
    # Where a room belongs

    async def room_tenant(self, room_id: str) -> Optional[str]:
        state = await self._api.get_room_state(
            room_id,
            [("m.room.create", ""), (META_EVENT, ""), ("m.room.canonical_alias", "")],
        )
        create = state.get(("m.room.create", ""))
        if create is None:
            return None
        creator = create.sender
        creator_tenant = self._config.tenant_of_user(creator)
        if creator_tenant is not None:
            return creator_tenant
        if creator != self._config.platform_user:
            return None
        meta = state.get((META_EVENT, ""))
        tenant = meta.content.get("tenant") if meta is not None else None
        if isinstance(tenant, str) and tenant:
            return tenant
        alias_event = state.get(("m.room.canonical_alias", ""))
        alias = alias_event.content.get("alias") if alias_event is not None else None
        return self._config.tenant_of_alias(alias) if isinstance(alias, str) else None

    def _may_be_in(self, user_id: str, room_tenant: Optional[str]) -> bool:
        if not self._api.is_mine(user_id):
            # Federation is off; should it ever be on, a remote user is nobody's tenant user nor an operator.
            return False
        if user_id == self._config.platform_user or user_id in self._config.allowed_users:
            return True
        user_tenant = self._config.tenant_of_user(user_id)
        if room_tenant is None:
            # Operators' own rooms: their own accounts may be there, tenant users never.
            return user_tenant is None
        return user_tenant == room_tenant

    def _forbidden(self, reason: str) -> Any:
        from synapse.module_api.errors import Codes

        logger.info("tenant wall: %s", reason)
        return Codes.FORBIDDEN

    # ---------------------------------------------------------------------------------------------------------
    # Callbacks

    async def user_may_join_room(self, user_id: str, room_id: str, is_invited: bool) -> Any:
        # Called with the joining user, also for admin joins made for them; an invite never opens a wall.
        if self._may_be_in(user_id, await self.room_tenant(room_id)):
            return "NOT_SPAM"
        return self._forbidden(f"join of {user_id} into {room_id} refused")

    async def user_may_invite(self, inviter: str, invitee: str, room_id: str) -> Any:
        if not (self._api.is_mine(inviter) and self._api.is_mine(invitee)):
            return self._forbidden(f"federated invite of {invitee} by {inviter} into {room_id} refused")
        room_tenant = await self.room_tenant(room_id)
        if self._may_be_in(inviter, room_tenant) and self._may_be_in(invitee, room_tenant):
            return "NOT_SPAM"
        return self._forbidden(f"invite of {invitee} by {inviter} into {room_id} refused")

    async def user_may_send_3pid_invite(self, inviter: str, medium: str, address: str, room_id: str) -> Any:
        if self._config.tenant_of_user(inviter) is None:
            return "NOT_SPAM"
        return self._forbidden(f"3pid invite by {inviter} refused")

    async def user_may_create_room(self, user_id: str, room_config: dict[str, Any]) -> Any:
        tenant = self._config.tenant_of_user(user_id)
        if tenant is None:
            return "NOT_SPAM"
        problem = self._room_config_problem(tenant, room_config)
        if problem is None:
            return "NOT_SPAM"
        return self._forbidden(f"createRoom by {user_id} refused: {problem}")

    def _room_config_problem(self, tenant: str, room_config: dict[str, Any]) -> Optional[str]:
        for invitee in room_config.get("invite") or []:
            if not isinstance(invitee, str) or not self._may_be_in(invitee, tenant):
                return "invites a user of another tenant"
        if room_config.get("invite_3pid"):
            return "invites by e-mail"
        if room_config.get("room_alias_name"):
            return "aliases are the platform's"
        if room_config.get("visibility") == "public" or room_config.get("preset") == "public_chat":
            return "rooms users create are never public"
        creation_content = room_config.get("creation_content") or {}
        if isinstance(creation_content, dict) and any(str(k).startswith(PLATFORM_ONLY_PREFIX) for k in creation_content):
            return "OpenMeet metadata is the platform's"
        for event in room_config.get("initial_state") or []:
            if not isinstance(event, dict):
                return "malformed initial_state"
            problem = self._state_problem(str(event.get("type", "")), event.get("content") or {})
            if problem is not None:
                return problem
        return None

    def _state_problem(self, event_type: str, content: Any) -> Optional[str]:
        if event_type.startswith(PLATFORM_ONLY_PREFIX):
            return "OpenMeet metadata is the platform's"
        if not isinstance(content, dict):
            return None
        if event_type == "m.room.join_rules" and content.get("join_rule") not in SAFE_JOIN_RULES:
            return "join rules other than invite and restricted"
        if event_type == "m.room.history_visibility" and content.get("history_visibility") == "world_readable":
            return "world-readable history"
        if event_type == "m.room.guest_access" and content.get("guest_access") == "can_join":
            return "guest access"
        return None

    async def user_may_create_room_alias(self, user_id: str, room_alias: Any) -> Any:
        if self._config.tenant_of_user(user_id) is None:
            return "NOT_SPAM"
        # Aliases are server-wide names: a tenant user's would be visible to every tenant.
        return self._forbidden(f"alias {room_alias} by {user_id} refused")

    async def user_may_publish_room(self, user_id: str, room_id: str) -> Any:
        if user_id == self._config.platform_user:
            return "NOT_SPAM"
        return self._forbidden(f"publication of {room_id} by {user_id} refused")

    async def user_may_send_state_event(
        self, user_id: str, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> Any:
        if self._config.tenant_of_user(user_id) is None:
            return "NOT_SPAM"
        problem = self._state_problem(event_type, content)
        if problem is None:
            return "NOT_SPAM"
        return self._forbidden(f"state {event_type} by {user_id} in {room_id} refused: {problem}")

    async def check_username_for_spam(self, user_profile: dict[str, Any], requester_id: str) -> bool:
        requester_tenant = self._config.tenant_of_user(requester_id)
        if requester_tenant is None:
            return False
        found = user_profile.get("user_id", "")
        # True hides the user from the requester's user-directory results.
        return not (found == self._config.platform_user or self._config.tenant_of_user(found) == requester_tenant)

    # ---------------------------------------------------------------------------------------------------------
    # The namespace is not exclusive (push rules must run for OpenMeet users), so Synapse no longer reserves it.
    # The appservice's own registration (m.login.application_service) never calls these callbacks.

    async def check_registration_for_spam(
        self, email_threepid: Any, username: Optional[str], request_info: Any, auth_provider_id: Optional[str] = None
    ) -> Any:
        from synapse.spam_checker_api import RegistrationBehaviour

        # Self-registration, shared-secret registration, the admin API's user creation and SSO/JWT auto-creation.
        if isinstance(username, str) and username.lower().startswith(self._config.namespace_prefix):
            logger.info("tenant wall: registration of %s refused: the namespace is the appservice's", username)
            return RegistrationBehaviour.DENY
        return RegistrationBehaviour.ALLOW

    async def check_login_for_spam(
        self,
        user_id: str,
        device_id: Optional[str],
        initial_display_name: Optional[str],
        request_info: Any,
        auth_provider_id: Optional[str] = None,
    ) -> Any:
        if not user_id.lower().startswith("@" + self._config.namespace_prefix):
            return "NOT_SPAM"
        # OpenMeet users log in only through the appservice, and never have a password: a login through an identity
        # provider, or of a user someone gave a password (an operator's admin call), is not the platform's.
        if auth_provider_id is not None:
            return self._forbidden(f"login of {user_id} through {auth_provider_id} refused")
        if await self._has_password(user_id):
            return self._forbidden(f"login of {user_id} refused: OpenMeet users have no password")
        return "NOT_SPAM"

    async def _has_password(self, user_id: str) -> bool:
        # The module API exposes no password hash: read it from the store (the lookup Synapse's own login uses).
        # Without that lookup, fail closed: a platform session then fails loudly in the integration tests.
        store = getattr(self._api, "_store", None)
        lookup = getattr(store, "get_users_by_id_case_insensitive", None)
        if lookup is None:
            return True
        hashes = await lookup(user_id)
        return any(bool(password_hash) for password_hash in hashes.values())

    # ---------------------------------------------------------------------------------------------------------
    # Media

    async def check_media_file_for_spam(self, file_wrapper: Any, file_info: Any) -> Any:
        if getattr(file_info, "thumbnail", None) is not None or getattr(file_info, "server_name", None):
            return "NOT_SPAM"  # thumbnails Synapse made itself; remote media never arrives (federation is off)
        if getattr(file_info, "url_cache", False):
            # URL previews: the homeserver's own download of a page it must parse (HTML by nature), never a user's
            # upload; what it serves from there carries Synapse's sandboxing CSP and attachment disposition.
            return "NOT_SPAM"
        if looks_like_markup(await read_head(file_wrapper)):
            return self._forbidden(f"upload {getattr(file_info, 'file_id', '?')} refused: markup or script")
        return "NOT_SPAM"

    async def get_media_upload_limits_for_user(self, user_id: str) -> Any:
        # The platform (avatars, uploads as itself) is not held to a user's quota; None = the configured limits.
        if user_id == self._config.platform_user or user_id in self._config.allowed_users:
            return []
        return None


async def read_head(file_wrapper: Any) -> bytes:
    """The first SNIFF_BYTES of an upload (the wrapper's file, else its chunks)."""
    path = getattr(file_wrapper, "path", None)
    if isinstance(path, str):
        with open(path, "rb") as file:
            return file.read(SNIFF_BYTES)
    chunks: list[bytes] = []

    def keep(chunk: bytes) -> None:
        if sum(map(len, chunks)) < SNIFF_BYTES:
            chunks.append(chunk)

    await file_wrapper.write_chunks_to(keep)
    return b"".join(chunks)[:SNIFF_BYTES]
