//! Property tests with hostile input over the identity mapping and the JWT verifier (its public API only). The
//! request-parsing properties live next to the private parser they reach (`http/props.rs`).

use proptest::prelude::*;
use ruma::{OwnedRoomAliasId, UserId};

use crate::auth::{JwtVerifier, Role};
use crate::config::JwtSecret;
use crate::identity::{Identities, RoomKind, Slug, TenantId, UserSlug};

/// Cases per property: the mapping is cheap, so many; a JWT check costs an HMAC.
const MAPPING_CASES: u32 = 2000;
const JWT_CASES: u32 = 500;

fn ids(prefix: &str) -> Identities {
    Identities::new(prefix, "chat.example.org", "openmeet").expect("valid configuration")
}

fn tenant() -> impl Strategy<Value = TenantId> {
    "[a-z0-9_-]{1,32}".prop_map(|t| TenantId::parse(&t).expect("generated within the contract"))
}

fn user() -> impl Strategy<Value = UserSlug> {
    // Separators weighted up: they are what could make two pairs meet.
    prop_oneof!["[a-z0-9._-]{1,64}", "[a._-]{1,6}"].prop_map(|u| UserSlug::parse(&u).expect("generated"))
}

fn slug() -> impl Strategy<Value = Slug> {
    prop_oneof!["[a-z0-9._-]{1,64}", "[a._-]{1,6}"].prop_map(|s| Slug::parse(&s).expect("generated"))
}

fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![Just("om_".to_owned()), Just(String::new()), "[a-z_]{1,8}"]
}

fn kind() -> impl Strategy<Value = RoomKind> {
    prop_oneof![Just(RoomKind::Group), Just(RoomKind::Event)]
}

/// Characters the Matrix spec allows in a user localpart (historical ones excluded: this mapping must not need them).
fn valid_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._=-/".contains(c))
}

/// Everything the deployment names for a tenant: its users, its rooms of both kinds, group spaces, the tenant space
/// and direct rooms. Decoding an alias back proves the mapping injective across all of these at once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    Room(TenantId, RoomKind, Slug),
    Space(TenantId, Slug),
    TenantSpace(TenantId),
    Direct(TenantId, UserSlug, UserSlug),
}

fn alias_of(ids: &Identities, named: &Named) -> OwnedRoomAliasId {
    match named {
        Named::Room(t, k, s) => ids.room_alias(t, *k, s),
        Named::Space(t, s) => ids.space_alias(t, s),
        Named::TenantSpace(t) => ids.tenant_space_alias(t),
        Named::Direct(t, a, b) => ids.direct_alias(t, a, b),
    }
}

/// The inverse of [`alias_of`], written from the documented format only.
fn decode_alias(prefix: &str, alias: &str) -> Option<Named> {
    let localpart = alias.strip_prefix('#')?.split_once(':')?.0.strip_prefix(prefix)?;
    let (tenant, rest) = localpart.split_once('.')?;
    let tenant = TenantId::parse(tenant).ok()?;
    if rest == "tenant" {
        return Some(Named::TenantSpace(tenant));
    }
    let (kind, tail) = rest.split_once('.')?;
    match kind {
        "group" => Some(Named::Room(tenant, RoomKind::Group, Slug::parse(tail).ok()?)),
        "event" => Some(Named::Room(tenant, RoomKind::Event, Slug::parse(tail).ok()?)),
        "space" => Some(Named::Space(tenant, Slug::parse(tail).ok()?)),
        "direct" => {
            let (a, b) = tail.split_once('=')?;
            Some(Named::Direct(tenant, UserSlug::parse(a).ok()?, UserSlug::parse(b).ok()?))
        }
        _ => None,
    }
}

fn named() -> impl Strategy<Value = Named> {
    prop_oneof![
        (tenant(), kind(), slug()).prop_map(|(t, k, s)| Named::Room(t, k, s)),
        (tenant(), slug()).prop_map(|(t, s)| Named::Space(t, s)),
        tenant().prop_map(Named::TenantSpace),
        // The alias is symmetric: the pair is normalised so decoding can be compared.
        (tenant(), user(), user()).prop_map(|(t, a, b)| if a <= b {
            Named::Direct(t, a, b)
        } else {
            Named::Direct(t, b, a)
        }),
    ]
}

fn tenant_of(named: &Named) -> &TenantId {
    match named {
        Named::Room(t, ..) | Named::Space(t, _) | Named::TenantSpace(t) | Named::Direct(t, ..) => t,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(MAPPING_CASES))]

    /// Users: a valid Matrix id, inside the prefix and the tenant's own namespace, and decoded back to exactly the
    /// same pair (so two pairs never share a Matrix user).
    #[test]
    fn user_ids_are_valid_namespaced_and_round_trip(prefix in prefix(), t in tenant(), u in user()) {
        let ids = ids(&prefix);
        let id = ids.matrix_user_id(&t, &u);
        prop_assert!(UserId::parse(id.as_str()).is_ok());
        prop_assert!(id.as_str().len() <= 255);
        prop_assert!(valid_localpart(id.localpart()), "{}", id);
        let namespace = format!("{prefix}{t}.");
        prop_assert!(id.localpart().starts_with(&namespace));
        prop_assert_ne!(id.localpart(), "openmeet");
        prop_assert_eq!(ids.openmeet_user(&id), Some((t, u)));
    }

    /// Two different pairs never map to the same Matrix user, and a user of one tenant never lands in another
    /// tenant's namespace, also when tenants are prefixes of each other (`a` and `a-b`).
    #[test]
    fn users_of_different_pairs_never_meet(t1 in tenant(), u1 in user(), suffix in "[a-z0-9_-]{0,4}", u2 in user()) {
        let ids = ids("om_");
        let Ok(t2) = TenantId::parse(&format!("{t1}{suffix}")) else { return Ok(()) };
        let (a, b) = (ids.matrix_user_id(&t1, &u1), ids.matrix_user_id(&t2, &u2));
        prop_assert_eq!(a == b, t1 == t2 && u1 == u2);
        if t1 != t2 {
            let (first, second) = (format!("om_{t1}."), format!("om_{t2}."));
            prop_assert!(!b.localpart().starts_with(&first), "{} is in {}'s namespace", b, t1);
            prop_assert!(!a.localpart().starts_with(&second), "{} is in {}'s namespace", a, t2);
        }
    }

    /// Aliases of every kind: valid, inside the prefix and the tenant, and decoded back to what named them, so no
    /// two rooms, spaces or direct pairs share an alias.
    #[test]
    fn aliases_are_valid_namespaced_and_round_trip(prefix in prefix(), n in named()) {
        let ids = ids(&prefix);
        let alias = alias_of(&ids, &n);
        prop_assert!(OwnedRoomAliasId::try_from(alias.as_str()).is_ok());
        prop_assert!(alias.as_str().len() <= 255);
        let tenant = tenant_of(&n);
        let localpart = alias.alias();
        let namespace = format!("{prefix}{tenant}.");
        prop_assert!(localpart.starts_with(&namespace), "{}", alias);
        prop_assert_eq!(decode_alias(&prefix, alias.as_str()), Some(n));
    }

    /// Any Matrix user id at all (hostile localparts included) is either not an OpenMeet user, or is exactly the id
    /// the mapping gives the pair it decodes to: no second Matrix id can act as an OpenMeet user.
    #[test]
    fn foreign_user_ids_never_alias_openmeet_users(localpart in "[a-z0-9._=/+-]{1,40}", server in prop_oneof![Just("chat.example.org"), Just("evil.example.org")]) {
        let ids = ids("om_");
        let Ok(id) = UserId::parse(format!("@{localpart}:{server}").as_str()) else { return Ok(()) };
        if let Some((t, u)) = ids.openmeet_user(&id) {
            prop_assert_eq!(ids.matrix_user_id(&t, &u), id);
        }
    }

    /// Hostile strings (any Unicode, path tricks, control characters) are refused by the identifier parsers unless
    /// they are within the contract's alphabet and length.
    #[test]
    fn identifier_parsers_accept_only_the_contract(raw in prop_oneof![any::<String>(), "[a-zA-Z0-9./%:@#=_\\- \\x00]{0,70}"]) {
        let slug_ok = !raw.is_empty() && raw.len() <= 64
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        let tenant_ok = !raw.is_empty() && raw.len() <= 32
            && raw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        prop_assert_eq!(UserSlug::parse(&raw).is_ok(), slug_ok);
        prop_assert_eq!(Slug::parse(&raw).is_ok(), slug_ok);
        prop_assert_eq!(TenantId::parse(&raw).is_ok(), tenant_ok);
        if let Err(error) = TenantId::parse(&raw) {
            prop_assert_eq!(crate::domain::DomainError::from(error).status(), 400);
        }
    }
}

const SECRET: &str = "hostile-input-secret-of-enough-length";

fn verifier() -> JwtVerifier {
    JwtVerifier::new(&[JwtSecret::new(SECRET)])
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn sign(claims: &serde_json::Value) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    encode(&Header::default(), claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("encodable")
}

fn valid_token() -> String {
    sign(&serde_json::json!({"sub": "jane", "tenant": "acme", "role": "user", "exp": now() + 600}))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(JWT_CASES))]

    /// Random header values never panic and are refused with 401.
    #[test]
    fn random_authorization_headers_are_refused(raw in prop_oneof![any::<String>(), "Bearer [A-Za-z0-9_.=+/-]{0,300}", "Bearer ey[A-Za-z0-9_-]{10,80}\\.ey[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{0,60}"]) {
        let error = verifier().verify(Some(&raw)).expect_err("a random token is refused");
        prop_assert_eq!(error.status(), 401);
    }

    /// A valid token with any one character replaced, or cut short, or with bytes inserted, is refused.
    #[test]
    fn garbled_tokens_are_refused(position in any::<prop::sample::Index>(), replacement in any::<char>(), cut in any::<bool>()) {
        let token = valid_token();
        let at = position.index(token.len());
        let garbled: String = if cut {
            token[..at].to_owned()
        } else {
            token.chars().enumerate().map(|(i, c)| if i == at { replacement } else { c }).collect()
        };
        // A replacement by the same character, or by trailing space that is trimmed, is no change.
        prop_assume!(garbled.trim() != token);
        let result = verifier().verify(Some(&format!("Bearer {garbled}")));
        prop_assert_eq!(result.map(|_| ()).map_err(|e| e.status()), Err(401));
    }

    /// Correctly signed tokens with hostile claims: refused with 401 unless the claims are within the contract,
    /// and then the caller is exactly what the claims say (never another tenant or user).
    #[test]
    fn hostile_claims_are_refused_or_read_exactly(
        sub in prop_oneof![any::<String>(), "[a-z0-9._-]{1,64}"],
        tenant in prop_oneof![any::<String>(), "[a-z0-9_-]{1,32}"],
        role in prop_oneof![Just("user".to_owned()), Just("service".to_owned()), any::<String>()],
        exp_offset in -100_000i64..100_000,
    ) {
        let exp = now() as i64 + exp_offset;
        let token = sign(&serde_json::json!({"sub": sub, "tenant": tenant, "role": role, "exp": exp}));
        match verifier().verify(Some(&format!("Bearer {token}"))) {
            Ok(caller) => {
                prop_assert!(exp_offset >= 0, "an expired token was accepted");
                prop_assert_eq!(caller.tenant.as_str(), tenant.as_str());
                prop_assert_eq!(&caller.subject, &sub);
                match caller.role {
                    Role::Service => prop_assert_eq!(role.as_str(), "service"),
                    Role::User(user) => {
                        prop_assert_eq!(role.as_str(), "user");
                        prop_assert_eq!(user.as_str(), sub.as_str());
                    }
                }
            }
            Err(error) => prop_assert_eq!(error.status(), 401),
        }
    }

    /// Claims of the wrong JSON types (numbers, arrays, nulls, nested objects) never panic.
    #[test]
    fn claims_of_the_wrong_type_are_refused(value in prop_oneof![
        Just(serde_json::json!(null)), any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<bool>().prop_map(|b| serde_json::json!(b)), Just(serde_json::json!([])), Just(serde_json::json!({"a": 1}))
    ], field in prop_oneof![Just("sub"), Just("tenant"), Just("role"), Just("exp"), Just("name")]) {
        let mut claims = serde_json::json!({"sub": "jane", "tenant": "acme", "role": "user", "exp": now() + 600});
        claims[field] = value;
        let result = verifier().verify(Some(&format!("Bearer {}", sign(&claims))));
        if let Err(error) = result {
            prop_assert_eq!(error.status(), 401);
        }
    }
}
