//! Data keys from AWS KMS, released only to this enclave.
//!
//! Every call carries a `Recipient`: a fresh one-shot RSA-2048 key ([`RecipientKey`]) bound
//! into an NSM attestation document. KMS evaluates the key policy's
//! `kms:RecipientAttestation:*` conditions against that document and returns the data key only
//! as `CiphertextForRecipient`, which only this enclave can open. The request is signed with
//! the host's credentials and sent over TLS that terminates here ([`crate::https`]): the host
//! can refuse to carry it, never read or forge the answer.
//!
//! * First boot: [`AwsKmsSealing::generate_data_key`] gives the data key and a
//!   [`DataKeyRecord`] (the key's ARN and KMS's `CiphertextBlob`, no secret) that the host keeps
//!   next to the sealed state.
//! * Every later boot: [`AwsKmsSealing::decrypt_data_key`] turns the record back into the data
//!   key. A record for another KMS key is refused before any call.

use crate::https::RelayedHttps;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeySpec, EncryptionAlgorithmSpec, KeyEncryptionMechanism, RecipientInfo,
};
use kms_nsm::{AttestationRequest, Nsm, NsmError};
use kms_recipient::{RecipientError, RecipientKey};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where the data key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsConfig {
    /// The AWS region (`us-east-1`).
    pub region: String,
    /// The endpoint's host name, checked against its TLS certificate
    /// (`kms.us-east-1.amazonaws.com`).
    pub endpoint_host: String,
    /// The KMS key's full ARN (KMS answers with the ARN; an alias or bare ID would not compare).
    pub key_arn: String,
    /// Whose data key it is (`party-<p>`): sent as the encryption context
    /// `{"kms-party": owner}`, which KMS binds to the ciphertext blob, so another party's record
    /// does not decrypt for this enclave even under a shared key or policy.
    pub owner: String,
}

impl KmsConfig {
    /// The regional endpoint of `region`, the key `key_arn`, the data key of `owner`. The
    /// region names the endpoint, so it must be the key's own (`arn:aws…:kms:<region>:…`) and
    /// plain (lower-case letters, digits, `-`).
    pub fn aws(region: &str, key_arn: &str, owner: &str) -> Result<Self, KmsSealingError> {
        let mut fields = key_arn.split(':');
        let partition = fields.nth(1).unwrap_or_default();
        let arn_region = fields.nth(1).unwrap_or_default();
        let plain = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !key_arn.starts_with("arn:")
            || !partition.starts_with("aws")
            || arn_region != region
            || !plain
        {
            return Err(KmsSealingError::Region {
                region: region.into(),
                key_arn: key_arn.into(),
            });
        }
        Ok(Self {
            region: region.into(),
            endpoint_host: format!("kms.{region}.amazonaws.com"),
            key_arn: key_arn.into(),
            owner: owner.into(),
        })
    }
}

/// The encryption-context key naming the data key's owner.
pub const ENCRYPTION_CONTEXT_KEY: &str = "kms-party";

/// The host's credentials, as the enclave uses them to sign requests.
pub struct Credentials {
    /// Access key ID.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What the host keeps to get the data key back: not secret (only KMS can decrypt the blob,
/// and only for an attested enclave).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKeyRecord {
    /// The KMS key that encrypted it.
    pub key_arn: String,
    /// KMS's `CiphertextBlob` of the data key.
    #[serde(with = "serde_bytes")]
    pub ciphertext_blob: Vec<u8>,
}

/// Largest encoded [`DataKeyRecord`] accepted.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

impl DataKeyRecord {
    /// CBOR.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail for this plain struct.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Reads [`DataKeyRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, KmsSealingError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(KmsSealingError::Record(format!("{} bytes", bytes.len())));
        }
        ciborium::from_reader(bytes).map_err(|e| KmsSealingError::Record(e.to_string()))
    }
}

/// Why no data key was obtained.
#[derive(Debug, thiserror::Error)]
pub enum KmsSealingError {
    /// The recipient key could not be made or the answer not unwrapped.
    #[error("recipient: {0}")]
    Recipient(#[from] RecipientError),
    /// The NSM did not attest the recipient key.
    #[error("attestation: {0}")]
    Attestation(#[from] NsmError),
    /// KMS refused or could not be reached (its error code and message, e.g. AccessDeniedException
    /// when the attestation does not satisfy the key policy).
    #[error("AWS KMS: {0}")]
    Kms(String),
    /// The answer has no `CiphertextForRecipient`.
    #[error("AWS KMS answered without CiphertextForRecipient")]
    NoCiphertextForRecipient,
    /// The answer carries the data key in the clear: refused (a `Recipient` request never gets
    /// one from AWS KMS).
    #[error("AWS KMS answered with a plaintext data key")]
    PlaintextReturned,
    /// The key is not the configured one.
    #[error("data key of KMS key {got:?}, configured {want:?}")]
    OtherKey {
        /// The configured key.
        want: String,
        /// The key named.
        got: String,
    },
    /// The record does not decode.
    #[error("data key record: {0}")]
    Record(String),
    /// The region is not the key's, or not a plain region name.
    #[error("region {region:?} is not the region of key {key_arn:?}")]
    Region {
        /// The region given.
        region: String,
        /// The key.
        key_arn: String,
    },
}

/// AWS KMS data keys for one enclave (see the module docs).
pub struct AwsKmsSealing {
    client: aws_sdk_kms::Client,
    config: KmsConfig,
    nsm: Arc<dyn Nsm>,
}

impl std::fmt::Debug for AwsKmsSealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsSealing")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn kms_error<E, R>(e: aws_sdk_kms::error::SdkError<E, R>) -> KmsSealingError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => KmsSealingError::Kms(format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or("")
        )),
        None => KmsSealingError::Kms(format!("{e:?}")),
    }
}

impl AwsKmsSealing {
    /// A client for `config`, signing with `credentials`, over `https`; recipient keys are
    /// attested by `nsm`.
    pub fn new(
        config: KmsConfig,
        credentials: Credentials,
        https: RelayedHttps,
        nsm: Arc<dyn Nsm>,
    ) -> Self {
        let credentials = aws_credential_types::Credentials::new(
            credentials.access_key_id,
            credentials.secret_access_key.to_string(),
            credentials.session_token.map(|t| t.to_string()),
            None,
            "kms-host",
        );
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .endpoint_url(format!("https://{}", config.endpoint_host))
            .http_client(https)
            .build();
        Self {
            client: aws_sdk_kms::Client::from_conf(conf),
            config,
            nsm,
        }
    }

    /// The configured key.
    pub fn config(&self) -> &KmsConfig {
        &self.config
    }

    /// A fresh recipient key and the `Recipient` parameter attesting it.
    fn recipient(&self) -> Result<(RecipientKey, RecipientInfo), KmsSealingError> {
        let key = RecipientKey::generate()?;
        let document = self.nsm.attest(&AttestationRequest {
            public_key: Some(key.public_key_der().to_vec()),
            ..Default::default()
        })?;
        let info = RecipientInfo::builder()
            .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
            .attestation_document(Blob::new(document))
            .build();
        Ok((key, info))
    }

    fn check_key(&self, got: Option<&str>) -> Result<(), KmsSealingError> {
        match got {
            Some(k) if k == self.config.key_arn => Ok(()),
            other => Err(KmsSealingError::OtherKey {
                want: self.config.key_arn.clone(),
                got: other.unwrap_or("").into(),
            }),
        }
    }

    /// The data key of an answer: from the configured key, never in the clear, unwrapped.
    fn release(
        &self,
        key: RecipientKey,
        key_id: Option<&str>,
        plaintext: Option<&Blob>,
        for_recipient: Option<&Blob>,
    ) -> Result<Zeroizing<[u8; 32]>, KmsSealingError> {
        self.check_key(key_id)?;
        if plaintext.is_some_and(|p| !p.as_ref().is_empty()) {
            return Err(KmsSealingError::PlaintextReturned);
        }
        let cms = for_recipient.ok_or(KmsSealingError::NoCiphertextForRecipient)?;
        Ok(key.unwrap_data_key(cms.as_ref())?)
    }

    /// A new 256-bit data key (first boot) and the record to keep.
    pub async fn generate_data_key(
        &self,
    ) -> Result<(Zeroizing<[u8; 32]>, DataKeyRecord), KmsSealingError> {
        let (key, recipient) = self.recipient()?;
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.config.key_arn)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(ENCRYPTION_CONTEXT_KEY, &self.config.owner)
            .recipient(recipient)
            .send()
            .await
            .map_err(kms_error)?;
        let data_key = self.release(
            key,
            out.key_id(),
            out.plaintext(),
            out.ciphertext_for_recipient(),
        )?;
        let blob = out
            .ciphertext_blob()
            .ok_or_else(|| KmsSealingError::Kms("no CiphertextBlob".into()))?;
        let record = DataKeyRecord {
            key_arn: self.config.key_arn.clone(),
            ciphertext_blob: blob.as_ref().to_vec(),
        };
        tracing::info!(key = %self.config.key_arn, "AWS KMS released a new data key to this enclave");
        Ok((data_key, record))
    }

    /// The data key of `record`.
    pub async fn decrypt_data_key(
        &self,
        record: &DataKeyRecord,
    ) -> Result<Zeroizing<[u8; 32]>, KmsSealingError> {
        self.check_key(Some(&record.key_arn))?;
        let (key, recipient) = self.recipient()?;
        let out = self
            .client
            .decrypt()
            .key_id(&self.config.key_arn)
            .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
            .ciphertext_blob(Blob::new(record.ciphertext_blob.clone()))
            .encryption_context(ENCRYPTION_CONTEXT_KEY, &self.config.owner)
            .recipient(recipient)
            .send()
            .await
            .map_err(kms_error)?;
        let data_key = self.release(
            key,
            out.key_id(),
            out.plaintext(),
            out.ciphertext_for_recipient(),
        )?;
        tracing::info!(key = %self.config.key_arn, "AWS KMS released the data key to this enclave");
        Ok(data_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_the_keys_own() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/k";
        let c = KmsConfig::aws("eu-west-1", arn, "party-1").unwrap();
        assert_eq!(c.endpoint_host, "kms.eu-west-1.amazonaws.com");
        // Another region than the key's would send the request to another endpoint; a region
        // with other characters would name another host.
        for (region, key) in [
            ("us-east-1", arn),
            ("evil.example/x", "arn:aws:kms:evil.example/x:1:key/k"),
            ("eu-west-1", "kms:eu-west-1:111122223333:key/k"),
            ("", "arn:aws:kms::1:key/k"),
        ] {
            assert!(
                matches!(
                    KmsConfig::aws(region, key, "party-1"),
                    Err(KmsSealingError::Region { .. })
                ),
                "{region} {key}"
            );
        }
    }
}
