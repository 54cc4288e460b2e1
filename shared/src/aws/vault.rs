//! KMS envelope for Matrix credentials at rest. The encryption context names tenant, user, purpose and device,
//! so a ciphertext copied onto another record fails to decrypt instead of handing out someone else's token.

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;

use super::unavailable;
use crate::aws::BackendError;
use crate::token::AccessToken;

#[derive(Clone)]
pub struct Vault {
    client: Client,
    key_id: String,
}

/// Whose credential, for what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialScope {
    pub tenant: String,
    pub user: String,
    pub purpose: &'static str,
    pub device: String,
}

impl Vault {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Vault { client, key_id: key_id.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn seal(&self, scope: &CredentialScope, token: &AccessToken) -> Result<Vec<u8>, BackendError> {
        let output = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(token.expose().as_bytes()))
            .set_encryption_context(Some(context(scope)))
            .send()
            .await
            .map_err(|e| unavailable("kms", e))?;
        output
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or(BackendError::Corrupt { service: "kms", detail: "encrypt returned no ciphertext".into() })
    }

    /// `Ok(None)` when the ciphertext does not belong to this scope (or is damaged): the caller re-mints.
    pub async fn open(
        &self,
        scope: &CredentialScope,
        ciphertext: Vec<u8>,
    ) -> Result<Option<AccessToken>, BackendError> {
        let result = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(context(scope)))
            .send()
            .await;
        match result {
            Ok(output) => {
                let plaintext = output.plaintext.map(Blob::into_inner).unwrap_or_default();
                match String::from_utf8(plaintext) {
                    Ok(token) if !token.is_empty() => Ok(Some(AccessToken::new(token))),
                    _ => Ok(None),
                }
            }
            Err(error) => {
                let service_error = error.into_service_error();
                if service_error.is_invalid_ciphertext_exception() || service_error.is_incorrect_key_exception() {
                    tracing::warn!(tenant = %scope.tenant, user = %scope.user, purpose = scope.purpose, "credential ciphertext does not match its record; discarding it");
                    Ok(None)
                } else {
                    Err(unavailable("kms", service_error))
                }
            }
        }
    }
}

fn context(scope: &CredentialScope) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("tenant".to_owned(), scope.tenant.clone()),
        ("user".to_owned(), scope.user.clone()),
        ("purpose".to_owned(), scope.purpose.to_owned()),
        ("device".to_owned(), scope.device.clone()),
    ])
}
