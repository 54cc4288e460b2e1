//! `stack token SUB TENANT [service|user] [DISPLAY NAME]`: a token for the local API, minted by the project's own
//! JWT code (`shared::auth::mint`) with the secret of `$OPENMEET_JWT_SECRET`, else stack.env, else the default.

use shared::auth::{Caller, Role, mint};
use shared::config::JwtSecret;
use shared::identity::{TenantId, UserSlug};

use super::Layout;

/// The caller the arguments describe; the error says which argument is wrong.
pub fn caller(args: &[String]) -> Result<Caller, String> {
    let [sub, tenant, rest @ ..] = args else {
        return Err("usage: scripts/stack.sh token SUB TENANT [service|user] [DISPLAY NAME]".to_owned());
    };
    let tenant = TenantId::parse(tenant).map_err(|_| format!("{tenant:?} is not a tenant id"))?;
    let role = match rest.first().map(String::as_str).unwrap_or("service") {
        "service" => Role::Service,
        "user" => Role::User(UserSlug::parse(sub).map_err(|_| format!("{sub:?} is not a user slug"))?),
        other => return Err(format!("role must be service or user, not {other:?}")),
    };
    if sub.is_empty() || sub.len() > 128 {
        return Err("SUB must be 1 to 128 characters".to_owned());
    }
    let display_name = rest.get(1).filter(|name| !name.trim().is_empty()).cloned();
    Ok(Caller { tenant, role, subject: sub.clone(), display_name })
}

pub fn run(layout: &Layout, args: &[String]) -> i32 {
    let caller = match caller(args) {
        Ok(caller) => caller,
        Err(error) => {
            eprintln!("[token] {error}");
            return 2;
        }
    };
    let ttl = match std::env::var("TOKEN_TTL").map(|v| v.parse::<u64>()) {
        Err(_) => 3600,
        Ok(Ok(ttl)) => ttl,
        Ok(Err(_)) => {
            eprintln!("[token] TOKEN_TTL must be a number of seconds");
            return 2;
        }
    };
    match mint_for(layout, &caller, ttl) {
        Ok(token) => {
            println!("{token}");
            0
        }
        Err(error) => {
            eprintln!("[token] {error}");
            1
        }
    }
}

/// A token for `caller`, valid `ttl` seconds, signed with the secret the local gateway checks.
pub fn mint_for(layout: &Layout, caller: &Caller, ttl: u64) -> Result<String, String> {
    let secret = std::env::var("OPENMEET_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| super::env_file::read_value(&layout.env_file, "OPENMEET_JWT_SECRET"))
        .unwrap_or_else(|| super::DEFAULT_JWT_SECRET.to_owned());
    mint(&JwtSecret::new(secret), caller, ttl).map_err(|error| format!("minting failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_become_a_caller() {
        let service = caller(&args(&["openmeet-api", "acme"])).expect("service");
        assert!(service.is_service() && service.subject == "openmeet-api" && service.tenant.as_str() == "acme");
        let user = caller(&args(&["alice", "acme", "user", "Alice A"])).expect("user");
        assert_eq!(user.user().map(UserSlug::as_str), Some("alice"));
        assert_eq!(user.display_name.as_deref(), Some("Alice A"));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(caller(&args(&["alice"])).is_err());
        assert!(caller(&args(&["alice", "Not A Tenant"])).is_err());
        assert!(caller(&args(&["alice", "acme", "admin"])).is_err());
        assert!(caller(&args(&["Alice!", "acme", "user"])).is_err());
    }
}
