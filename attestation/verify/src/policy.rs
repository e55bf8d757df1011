//! Verification policy: trusted releases, debug mode, freshness and bindings.

use crate::{AttestationDocument, AttestationError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One trusted enclave release: its measurements (hex in JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Human name, e.g. `kms-enclave v0.3.1`.
    pub name: String,
    /// Enclave image.
    #[serde(with = "hex_bytes")]
    pub pcr0: Vec<u8>,
    /// Kernel and boot ramfs.
    #[serde(with = "hex_bytes")]
    pub pcr1: Vec<u8>,
    /// Application.
    #[serde(with = "hex_bytes")]
    pub pcr2: Vec<u8>,
    /// IAM role of the parent instance, if pinned.
    #[serde(
        default,
        with = "opt_hex_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub pcr3: Option<Vec<u8>>,
    /// Parent instance ID, if pinned.
    #[serde(
        default,
        with = "opt_hex_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub pcr4: Option<Vec<u8>>,
    /// Signing certificate of the image, if pinned.
    #[serde(
        default,
        with = "opt_hex_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub pcr8: Option<Vec<u8>>,
}

impl Release {
    /// A release pinned by its image measurements PCR0, PCR1, PCR2 only.
    pub fn from_image(name: &str, pcrs: [[u8; 48]; 3]) -> Self {
        Self {
            name: name.to_string(),
            pcr0: pcrs[0].to_vec(),
            pcr1: pcrs[1].to_vec(),
            pcr2: pcrs[2].to_vec(),
            pcr3: None,
            pcr4: None,
            pcr8: None,
        }
    }

    fn matches(&self, d: &AttestationDocument) -> bool {
        let eq = |i: u8, want: &[u8]| d.pcrs.get(&i).map(Vec::as_slice) == Some(want);
        eq(0, &self.pcr0)
            && eq(1, &self.pcr1)
            && eq(2, &self.pcr2)
            && self.pcr3.as_deref().is_none_or(|v| eq(3, v))
            && self.pcr4.as_deref().is_none_or(|v| eq(4, v))
            && self.pcr8.as_deref().is_none_or(|v| eq(8, v))
    }
}

/// What a verifier accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Trusted releases; a document must match one (unless it is a debug document allowed below).
    pub releases: Vec<Release>,
    /// Accept debug-mode enclaves (PCR0/1/2 zero). Developer mode only.
    #[serde(default)]
    pub allow_debug: bool,
    /// Largest accepted document age, seconds.
    pub max_age_s: u64,
    /// Tolerated clock difference for documents from the future, seconds.
    #[serde(default = "default_skew")]
    pub max_clock_skew_s: u64,
    /// The nonce the verifier sent, if any.
    #[serde(
        default,
        with = "opt_hex_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub nonce: Option<Vec<u8>>,
    /// The public key that must be bound (e.g. the TLS key), if any.
    #[serde(
        default,
        with = "opt_hex_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key: Option<Vec<u8>>,
    /// The user data that must be bound, if any.
    #[serde(
        default,
        with = "opt_hex_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_data: Option<Vec<u8>>,
}

fn default_skew() -> u64 {
    60
}

impl Policy {
    /// A production policy: the given releases, no debug, documents at most `max_age_s` old.
    pub fn production(releases: Vec<Release>, max_age_s: u64) -> Self {
        Self {
            releases,
            allow_debug: false,
            max_age_s,
            max_clock_skew_s: default_skew(),
            nonce: None,
            public_key: None,
            user_data: None,
        }
    }

    /// A developer policy: additionally accepts debug-mode documents.
    pub fn developer(releases: Vec<Release>, max_age_s: u64) -> Self {
        Self {
            allow_debug: true,
            ..Self::production(releases, max_age_s)
        }
    }

    pub(crate) fn check(
        &self,
        d: AttestationDocument,
        now: Duration,
    ) -> Result<VerifiedDocument, AttestationError> {
        let ts = Duration::from_millis(d.timestamp_ms);
        // A policy from outside (the config contract) may name any skew: saturate, never panic.
        if ts > now.saturating_add(Duration::from_secs(self.max_clock_skew_s)) {
            return Err(AttestationError::FromTheFuture((ts - now).as_secs()));
        }
        let age = now.saturating_sub(ts);
        if age > Duration::from_secs(self.max_age_s) {
            return Err(AttestationError::TooOld {
                age_s: age.as_secs(),
                max_s: self.max_age_s,
            });
        }
        let debug = d.is_debug();
        let release = if debug {
            if !self.allow_debug {
                return Err(AttestationError::DebugMode);
            }
            tracing::warn!(
                module_id = %d.module_id,
                "ACCEPTING A DEBUG-MODE ENCLAVE (PCR0/1/2 zero): its memory is readable by the host; developer policy only"
            );
            None
        } else {
            Some(
                self.releases
                    .iter()
                    .find(|r| r.matches(&d))
                    .ok_or_else(|| {
                        AttestationError::UntrustedPcrs(
                            d.pcrs.get(&0).map(hex::encode).unwrap_or_default(),
                        )
                    })?
                    .name
                    .clone(),
            )
        };
        for (name, want, got) in [
            ("nonce", &self.nonce, &d.nonce),
            ("public_key", &self.public_key, &d.public_key),
            ("user_data", &self.user_data, &d.user_data),
        ] {
            if want.is_some() && want != got {
                return Err(AttestationError::Binding(name));
            }
        }
        Ok(VerifiedDocument {
            document: d,
            release,
            debug,
        })
    }
}

/// A document that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedDocument {
    /// The document.
    pub document: AttestationDocument,
    /// The release it matched (`None` for an accepted debug document).
    pub release: Option<String>,
    /// Whether it is a debug-mode document (accepted only under a developer policy).
    pub debug: bool,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

mod opt_hex_bytes {
    #[allow(clippy::ref_option)]
    pub fn serialize<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let s = <Option<String> as serde::Deserialize>::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
