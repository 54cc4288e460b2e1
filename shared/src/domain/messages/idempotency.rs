//! Exactly-once sends: transaction ids and the `Idempotency-Key` record.
//!
//! Synapse deduplicates a transaction id per (user, device) for the server device we act on, so one transaction id
//! per use of a key makes retries, takeovers and replays from the retry queue land on one event. Synapse forgets
//! after 24 h and the key must also stop a repeat from sending at all, so a DynamoDB record, first writer wins,
//! holds the first answer for 24 h. The record also holds the transaction id: a new use of the key (after its 24 h
//! window) gets a new one, and with it a new operation id, so it is never mistaken for the earlier message — not by
//! the homeserver, and not by the operation records, which outlive the key by days.
//! The record:
//! `pk = T#{tenant}#IDEM#{sha256(actor, key)}`, `sk = IDEM`, with the request's fingerprint, the transaction id,
//! `state` (`pending` | `done` | `queued`), the `eventId` once sent (or the `operationId` once deferred to the retry
//! queue) and `expiresAt`.

use sha2::{Digest, Sha256};

use crate::app::App;
use crate::aws::idempotency::{Idempotency, IdempotencyRecord, IdempotencyState};
use crate::aws::keys;
use crate::aws::store;
use crate::domain::DomainError;
use crate::identity::TenantId;

/// How long a key holds its first answer.
pub const KEY_LIFETIME_SECS: u64 = 24 * 60 * 60;
/// A `pending` record older than this belongs to an attempt that died: the next attempt takes over, with the same
/// transaction id, so the homeserver still sends at most once. Longer than any request's time limit.
pub const STALE_PENDING_SECS: u64 = 60;
const MAX_KEY_LENGTH: usize = 128;

/// A validated `Idempotency-Key` header value: 1-128 printable ASCII characters.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        if value.is_empty() || value.len() > MAX_KEY_LENGTH || !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(DomainError::invalid(
                "invalid_parameter",
                "Idempotency-Key must be 1-128 printable ASCII characters",
            ));
        }
        Ok(IdempotencyKey(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// Keys are chosen by callers and may be guessable; they are no secret, but they stay out of logs all the same.
impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyKey(..)")
    }
}

/// SHA-256 over length-prefixed parts, so that no two different part lists hash alike (`("ab","c")` vs `("a","bc")`).
pub fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// A transaction id derived from what makes an operation unique (tenant, actor, purpose, key...): the same parts
/// give the same id in every attempt, different parts never collide in practice. `om` + 32 hex digits.
pub fn derived_txn_id(parts: &[&str]) -> String {
    format!("om{}", &hex::encode(digest(parts))[..32])
}

/// A transaction id for a send that is allowed to happen twice when asked twice.
pub fn random_txn_id() -> String {
    format!("om{}", uuid::Uuid::new_v4().simple())
}

/// Where the record of `key`, used by `actor`, lives.
pub fn record_key(tenant: &TenantId, actor: &str, key: &IdempotencyKey) -> (String, String) {
    let record = keys::idempotency(tenant, &hex::encode(digest(&["idempotency-record", actor, key.as_str()])));
    (record.pk, record.sk)
}

/// What the record says about a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request is the first (or takes over from a dead attempt): send under this transaction id (the dead
    /// attempt's, on a takeover), then [`complete`].
    Proceed { txn_id: String },
    /// Already sent: answer with this event id and send nothing.
    Done { event_id: String },
    /// Deferred to the retry queue: answer with this operation again.
    Queued { operation_id: String },
    /// The first request with this key is still running.
    InFlight,
}

/// Claims `key` for a request with `fingerprint`, proposing a fresh `txn_id`. A different fingerprint under the same
/// key is a `409 conflict`.
pub async fn claim(app: &App, pk: &str, sk: &str, fingerprint: &str, txn_id: &str) -> Result<Claim, DomainError> {
    let now = store::now_secs();
    let record = IdempotencyRecord {
        state: Some(IdempotencyState::Pending),
        fingerprint: Some(fingerprint.to_owned()),
        txn_id: Some(txn_id.to_owned()),
        created_at: Some(now),
        expires_at: Some(now + KEY_LIFETIME_SECS),
        ..IdempotencyRecord::default()
    };
    match Idempotency(&app.store).claim(&key_of(pk, sk), &record).await? {
        None => Ok(Claim::Proceed { txn_id: txn_id.to_owned() }),
        Some(existing) => decide(existing, fingerprint, now),
    }
}

fn key_of(pk: &str, sk: &str) -> keys::Key {
    keys::Key { pk: pk.to_owned(), sk: sk.to_owned() }
}

fn decide(existing: IdempotencyRecord, fingerprint: &str, now: u64) -> Result<Claim, DomainError> {
    if existing.fingerprint.as_deref() != Some(fingerprint) {
        return Err(DomainError::conflict(
            "conflict",
            "this Idempotency-Key was used for a different request in the last 24 hours",
        ));
    }
    if let Some(event_id) = existing.event_id {
        return Ok(Claim::Done { event_id });
    }
    if let Some(operation_id) = existing.operation_id {
        return Ok(Claim::Queued { operation_id });
    }
    let created_at = existing.created_at.unwrap_or(0);
    match existing.txn_id {
        Some(txn_id) if now.saturating_sub(created_at) >= STALE_PENDING_SECS => Ok(Claim::Proceed { txn_id }),
        // A record without its transaction id cannot be taken over safely; it expires with its key.
        _ => Ok(Claim::InFlight),
    }
}

/// What the first request with a key answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    Sent { event_id: &'a str },
    Queued { operation_id: &'a str },
}

/// Records the answer: repeats within 24 h of the first attempt answer the same.
pub async fn complete(
    app: &App,
    pk: &str,
    sk: &str,
    fingerprint: &str,
    txn_id: &str,
    answer: Answer<'_>,
) -> Result<(), DomainError> {
    let now = store::now_secs();
    let (state, event_id, operation_id) = match answer {
        Answer::Sent { event_id } => (IdempotencyState::Done, Some(event_id.to_owned()), None),
        Answer::Queued { operation_id } => (IdempotencyState::Queued, None, Some(operation_id.to_owned())),
    };
    let record = IdempotencyRecord {
        state: Some(state),
        fingerprint: Some(fingerprint.to_owned()),
        txn_id: Some(txn_id.to_owned()),
        event_id,
        operation_id,
        created_at: Some(now),
        expires_at: Some(now + KEY_LIFETIME_SECS),
    };
    Idempotency(&app.store).put(&key_of(pk, sk), &record).await?;
    Ok(())
}

/// Forgets a claim whose request failed for good, so the caller may retry with the same key.
pub async fn release(app: &App, pk: &str, sk: &str) -> Result<(), DomainError> {
    Idempotency(&app.store).release(&key_of(pk, sk)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse(" ~ spaces and tildes ~ ").is_ok());
        for bad in [String::new(), "k".repeat(129), "tab\there".into(), "é".into(), "nul\0".into()] {
            assert_eq!(IdempotencyKey::parse(&bad).expect_err("invalid").status(), 400, "{bad:?}");
        }
        assert!(!format!("{:?}", IdempotencyKey::parse("secret-ish").expect("valid")).contains("secret"));
    }

    #[test]
    fn transaction_ids_are_stable_and_separate_their_parts() {
        let id = derived_txn_id(&["t", "u:jane", "k1"]);
        assert_eq!(id, derived_txn_id(&["t", "u:jane", "k1"]));
        assert_eq!(id.len(), 34);
        assert!(id.starts_with("om") && id[2..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, derived_txn_id(&["t", "u:jane", "k2"]));
        assert_ne!(derived_txn_id(&["ab", "c"]), derived_txn_id(&["a", "bc"]));
        assert_ne!(random_txn_id(), random_txn_id());
    }

    #[test]
    fn records_are_per_tenant_and_actor() {
        let key = IdempotencyKey::parse("k").expect("valid");
        let tenant = TenantId::parse("acme").expect("tenant");
        let (pk, sk) = record_key(&tenant, "u:jane", &key);
        assert!(pk.starts_with("T#acme#IDEM#") && pk.len() == "T#acme#IDEM#".len() + 64);
        assert_eq!(sk, "IDEM");
        assert_ne!(pk, record_key(&tenant, "u:john", &key).0);
        assert_ne!(pk, record_key(&TenantId::parse("other").expect("tenant"), "u:jane", &key).0);
    }

    #[test]
    fn an_existing_record_decides_the_answer() {
        let mut record = IdempotencyRecord {
            fingerprint: Some("f1".into()),
            created_at: Some(1000),
            txn_id: Some("omfirst".into()),
            ..IdempotencyRecord::default()
        };
        assert_eq!(decide(record.clone(), "f2", 1001).expect_err("other body").status(), 409);
        assert_eq!(decide(record.clone(), "f1", 1001).ok(), Some(Claim::InFlight));
        let takeover = Some(Claim::Proceed { txn_id: "omfirst".into() });
        let stale = 1000 + STALE_PENDING_SECS;
        assert_eq!(decide(record.clone(), "f1", stale).ok(), takeover, "the dead attempt's transaction id");
        record.operation_id = Some("op1".into());
        assert_eq!(decide(record.clone(), "f1", 1001).ok(), Some(Claim::Queued { operation_id: "op1".into() }));
        record.event_id = Some("$e".into());
        assert_eq!(decide(record, "f1", 1001).ok(), Some(Claim::Done { event_id: "$e".into() }));
    }
}
