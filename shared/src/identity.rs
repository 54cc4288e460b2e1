//! OpenMeet identifiers, validated once at the edge, and their deterministic, injective mapping to Matrix ids.
//!
//! A user's localpart is `{prefix}{tenant}.{user}`: a tenant id never contains `.`, so the first `.` after the
//! prefix always separates tenant from user, whatever hyphens, underscores or dots either contains. Room aliases
//! use the same rule: `#{prefix}{tenant}.{kind}.{slug}:{server}`.

use std::fmt;

use ruma::{OwnedRoomAliasId, OwnedUserId, UserId};

use crate::settings::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// OpenMeet's backend, acting for a whole tenant.
    Service,
    /// A browser, acting only as its own user.
    User(UserSlug),
}

/// The verified caller of a request (`crate::auth` verifies the token that names it).
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub role: Role,
    /// The `sub` claim: the user's slug, or the service's name.
    pub subject: String,
    pub display_name: Option<String>,
}

impl Caller {
    pub fn is_service(&self) -> bool {
        self.role == Role::Service
    }

    /// The user a `user` token acts as.
    pub fn user(&self) -> Option<&UserSlug> {
        match &self.role {
            Role::User(user) => Some(user),
            Role::Service => None,
        }
    }
}

/// A path or body value that is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Invalid(String),
    /// A `{kind}` path segment that names no kind of room: the path leads nowhere.
    #[error("{0}")]
    UnknownKind(String),
}

macro_rules! identifier {
    ($name:ident, $what:literal, $max:literal, $chars:literal, $allowed:expr) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, IdentityError> {
                let allowed: fn(char) -> bool = $allowed;
                if value.is_empty() || value.len() > $max || !value.chars().all(allowed) {
                    return Err(IdentityError::Invalid(format!(
                        "{} must be 1-{} characters of {}",
                        $what, $max, $chars
                    )));
                }
                Ok($name(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

fn slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
}

fn tenant_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')
}

identifier!(TenantId, "a tenant id", 32, "[a-z0-9_-]", tenant_char);
identifier!(UserSlug, "a user id", 64, "[a-z0-9._-]", slug_char);
identifier!(Slug, "a slug", 64, "[a-z0-9._-]", slug_char);

/// What a room belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomKind {
    Group,
    Event,
}

impl RoomKind {
    /// From the `{kind}` path segment.
    pub fn from_path(kind: &str) -> Result<Self, IdentityError> {
        match kind {
            "groups" => Ok(RoomKind::Group),
            "events" => Ok(RoomKind::Event),
            _ => Err(IdentityError::UnknownKind(format!("unknown kind {kind:?}: use groups or events"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Group => "group",
            RoomKind::Event => "event",
        }
    }

    pub fn path_segment(self) -> &'static str {
        match self {
            RoomKind::Group => "groups",
            RoomKind::Event => "events",
        }
    }
}

/// The mapping between OpenMeet and Matrix identities of one deployment.
#[derive(Debug, Clone)]
pub struct Identities {
    prefix: String,
    server_name: String,
    platform_localpart: String,
}

impl Identities {
    /// Checks the configuration once, so that every mapping below is infallible.
    pub fn new(prefix: &str, server_name: &str, platform_localpart: &str) -> Result<Self, ConfigError> {
        let identities = Identities {
            prefix: prefix.to_owned(),
            server_name: server_name.to_owned(),
            platform_localpart: platform_localpart.to_owned(),
        };
        let longest = format!("@{prefix}{}.{}:{server_name}", "a".repeat(32), "a".repeat(64));
        let alias = format!("#{prefix}{}.event.{}:{server_name}", "a".repeat(32), "a".repeat(64));
        let platform = format!("@{platform_localpart}:{server_name}");
        if UserId::parse(longest.as_str()).is_err() || UserId::parse(platform.as_str()).is_err() {
            return Err(ConfigError::Invalid {
                name: "MATRIX_SERVER_NAME",
                reason: "user ids built from it and the prefixes are not valid Matrix ids".into(),
            });
        }
        if OwnedRoomAliasId::try_from(alias).is_err() {
            return Err(ConfigError::Invalid {
                name: "MATRIX_SERVER_NAME",
                reason: "room aliases would be invalid".into(),
            });
        }
        Ok(identities)
    }

    pub fn localpart(&self, tenant: &TenantId, user: &UserSlug) -> String {
        format!("{}{}.{}", self.prefix, tenant, user)
    }

    pub fn matrix_user_id(&self, tenant: &TenantId, user: &UserSlug) -> OwnedUserId {
        // `new` checked the configuration and both halves are validated identifiers, so this cannot fail.
        let raw = format!("@{}:{}", self.localpart(tenant, user), self.server_name);
        UserId::parse(raw.as_str()).unwrap_or_else(|_| panic!("identity mapping produced an invalid user id"))
    }

    pub fn platform_user_id(&self) -> OwnedUserId {
        let raw = format!("@{}:{}", self.platform_localpart, self.server_name);
        UserId::parse(raw.as_str()).unwrap_or_else(|_| panic!("MATRIX_PLATFORM_LOCALPART is not a valid localpart"))
    }

    /// The OpenMeet user behind a Matrix user of this deployment's namespace, if it is one.
    pub fn openmeet_user(&self, user_id: &UserId) -> Option<(TenantId, UserSlug)> {
        if user_id.server_name().as_str() != self.server_name {
            return None;
        }
        let rest = user_id.localpart().strip_prefix(&self.prefix)?;
        let (tenant, user) = rest.split_once('.')?;
        Some((TenantId::parse(tenant).ok()?, UserSlug::parse(user).ok()?))
    }

    pub fn room_alias_localpart(&self, tenant: &TenantId, kind: RoomKind, slug: &Slug) -> String {
        format!("{}{}.{}.{}", self.prefix, tenant, kind.as_str(), slug)
    }

    /// The alias of a group's space (the chat room of the group has [`Identities::room_alias`]).
    pub fn space_alias(&self, tenant: &TenantId, slug: &Slug) -> OwnedRoomAliasId {
        self.alias(&format!("{}{}.space.{}", self.prefix, tenant, slug))
    }

    /// The alias of a tenant's space: every provisioned user of the tenant is in it, and the tenant's public rooms
    /// admit its members (`restricted` join rules). No kind is called `tenant` with a slug after it, so it collides
    /// with no other alias.
    pub fn tenant_space_alias(&self, tenant: &TenantId) -> OwnedRoomAliasId {
        self.alias(&format!("{}{}.tenant", self.prefix, tenant))
    }

    /// The alias of the one direct-message room of two users; the same whichever of them asks.
    pub fn direct_alias(&self, tenant: &TenantId, a: &UserSlug, b: &UserSlug) -> OwnedRoomAliasId {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        // `=` never occurs in a user id, so the pair is recoverable and distinct pairs never share an alias.
        self.alias(&format!("{}{}.direct.{}={}", self.prefix, tenant, first, second))
    }

    fn alias(&self, localpart: &str) -> OwnedRoomAliasId {
        let raw = format!("#{localpart}:{}", self.server_name);
        OwnedRoomAliasId::try_from(raw).unwrap_or_else(|_| panic!("identity mapping produced an invalid alias"))
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn room_alias(&self, tenant: &TenantId, kind: RoomKind, slug: &Slug) -> OwnedRoomAliasId {
        let raw = format!("#{}:{}", self.room_alias_localpart(tenant, kind, slug), self.server_name);
        OwnedRoomAliasId::try_from(raw).unwrap_or_else(|_| panic!("identity mapping produced an invalid alias"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Identities {
        Identities::new("om_", "localhost", "openmeet").expect("valid configuration")
    }

    fn user(tenant: &str, user: &str) -> OwnedUserId {
        ids().matrix_user_id(&TenantId::parse(tenant).expect("tenant"), &UserSlug::parse(user).expect("user"))
    }

    #[test]
    fn hyphens_and_dots_cannot_collide() {
        // Each pair would collide under a naive `{tenant}-{user}` or `{tenant}_{user}` join.
        assert_ne!(user("a-b", "c"), user("a", "b-c"));
        assert_ne!(user("a_b", "c"), user("a", "b_c"));
        assert_ne!(user("a", "b.c"), user("a", "b-c"));
        assert_eq!(user("acme", "jane.doe").as_str(), "@om_acme.jane.doe:localhost");
    }

    #[test]
    fn mapping_round_trips_exhaustively_on_a_small_alphabet() {
        let alphabet = ["a", "-", "_", "."];
        let mut words = std::collections::BTreeSet::from([String::new()]);
        for _ in 0..3 {
            let longer: Vec<String> =
                words.iter().flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}"))).collect();
            words.extend(longer);
        }
        let mut seen = std::collections::HashMap::new();
        for tenant in words.iter().filter_map(|w| TenantId::parse(w).ok()) {
            for slug in words.iter().filter_map(|w| UserSlug::parse(w).ok()) {
                let id = ids().matrix_user_id(&tenant, &slug);
                assert_eq!(ids().openmeet_user(&id), Some((tenant.clone(), slug.clone())));
                assert!(seen.insert(id, (tenant.clone(), slug)).is_none(), "collision");
            }
        }
        assert!(seen.len() > 1000);
    }

    #[test]
    fn foreign_users_are_not_openmeet_users() {
        let foreign = UserId::parse("@om_a.b:elsewhere").expect("valid");
        assert_eq!(ids().openmeet_user(&foreign), None);
        let platform = ids().platform_user_id();
        assert_eq!(ids().openmeet_user(&platform), None);
    }

    #[test]
    fn identifiers_reject_what_the_contract_forbids() {
        assert!(TenantId::parse("a.b").is_err());
        assert!(TenantId::parse(&"a".repeat(33)).is_err());
        assert!(UserSlug::parse("Jane").is_err());
        assert!(UserSlug::parse("").is_err());
        assert!(Slug::parse(&"a".repeat(64)).is_ok());
        assert!(Slug::parse("a/b").is_err());
    }

    #[test]
    fn aliases_separate_kinds() {
        let tenant = TenantId::parse("t").expect("tenant");
        let slug = Slug::parse("x").expect("slug");
        assert_ne!(
            ids().room_alias(&tenant, RoomKind::Group, &slug),
            ids().room_alias(&tenant, RoomKind::Event, &slug)
        );
        assert_eq!(ids().room_alias(&tenant, RoomKind::Group, &slug).as_str(), "#om_t.group.x:localhost");
        assert_eq!(ids().space_alias(&tenant, &slug).as_str(), "#om_t.space.x:localhost");
    }

    #[test]
    fn direct_aliases_are_symmetric_and_injective() {
        let tenant = TenantId::parse("t").expect("tenant");
        let user = |u: &str| UserSlug::parse(u).expect("user");
        assert_eq!(
            ids().direct_alias(&tenant, &user("a"), &user("b")),
            ids().direct_alias(&tenant, &user("b"), &user("a"))
        );
        assert_ne!(
            ids().direct_alias(&tenant, &user("a.b"), &user("c")),
            ids().direct_alias(&tenant, &user("a"), &user("b.c"))
        );
        assert_eq!(ids().direct_alias(&tenant, &user("b"), &user("a")).as_str(), "#om_t.direct.a=b:localhost");
    }
}
