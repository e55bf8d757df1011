//! Certificate-chain verification from a pinned root.

use crate::AttestationError;
use der::{Decode, Encode};
use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{DerSignature, VerifyingKey};
use sha2::{Digest, Sha256};
use std::time::Duration;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

/// The AWS Nitro Enclaves root CA (G1), as AWS publishes it.
pub const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("aws_nitro_root_g1.pem");
/// SHA-256 fingerprint of its DER.
pub const AWS_NITRO_ROOT_G1_SHA256: &str =
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_SECP384R1: &str = "1.3.132.0.34";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";

/// The root a verifier trusts: the AWS root in production, the mock NSM's root in developer mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedRoot {
    der: Vec<u8>,
    fingerprint: [u8; 32],
}

impl PinnedRoot {
    /// The AWS Nitro Enclaves root G1.
    pub fn aws() -> Self {
        // The embedded PEM is a constant checked by a test; failing here is a build defect.
        Self::from_pem(AWS_NITRO_ROOT_G1_PEM)
            .unwrap_or_else(|_| unreachable!("embedded AWS root parses"))
    }

    /// A root from DER.
    pub fn from_der(der: &[u8]) -> Result<Self, AttestationError> {
        Certificate::from_der(der).map_err(|e| AttestationError::Certificate {
            index: 0,
            reason: e.to_string(),
        })?;
        Ok(Self {
            der: der.to_vec(),
            fingerprint: Sha256::digest(der).into(),
        })
    }

    /// A root from PEM.
    pub fn from_pem(pem: &str) -> Result<Self, AttestationError> {
        let (label, der) =
            der::pem::decode_vec(pem.as_bytes()).map_err(|e| AttestationError::Certificate {
                index: 0,
                reason: format!("PEM: {e}"),
            })?;
        if label != "CERTIFICATE" {
            return Err(AttestationError::Certificate {
                index: 0,
                reason: format!("PEM label {label}, expected CERTIFICATE"),
            });
        }
        Self::from_der(&der)
    }

    /// SHA-256 of the root's DER, hex.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint)
    }

    /// The DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

fn parse(index: usize, der: &[u8]) -> Result<Certificate, AttestationError> {
    Certificate::from_der(der).map_err(|e| AttestationError::Certificate {
        index,
        reason: e.to_string(),
    })
}

fn p384_key(index: usize, cert: &Certificate) -> Result<VerifyingKey, AttestationError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != OID_EC_PUBLIC_KEY {
        return Err(AttestationError::Algorithm(format!(
            "certificate {index}: key is not an EC key"
        )));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
    if curve.map(|c| c.to_string()).as_deref() != Some(OID_SECP384R1) {
        return Err(AttestationError::Algorithm(format!(
            "certificate {index}: key is not on P-384"
        )));
    }
    VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes()).map_err(|_| {
        AttestationError::Algorithm(format!("certificate {index}: invalid P-384 point"))
    })
}

fn check_validity(index: usize, cert: &Certificate, now: Duration) -> Result<(), AttestationError> {
    let v = &cert.tbs_certificate.validity;
    let nb = v.not_before.to_unix_duration();
    let na = v.not_after.to_unix_duration();
    if now < nb || now > na {
        return Err(AttestationError::Expired {
            index,
            now_s: now.as_secs(),
            not_before_s: nb.as_secs(),
            not_after_s: na.as_secs(),
        });
    }
    Ok(())
}

struct Exts {
    ca: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
}

fn extensions(index: usize, cert: &Certificate) -> Result<Exts, AttestationError> {
    let mut out = Exts {
        ca: None,
        key_usage: None,
    };
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let bad = |r: &'static str| AttestationError::Constraints { index, reason: r };
        match oid.as_str() {
            OID_BASIC_CONSTRAINTS => {
                out.ca = Some(
                    BasicConstraints::from_der(ext.extn_value.as_bytes())
                        .map_err(|_| bad("bad basicConstraints"))?,
                )
            }
            OID_KEY_USAGE => {
                out.key_usage = Some(
                    KeyUsage::from_der(ext.extn_value.as_bytes())
                        .map_err(|_| bad("bad keyUsage"))?,
                )
            }
            _ if ext.critical => return Err(bad("unknown critical extension")),
            _ => {}
        }
    }
    Ok(out)
}

/// Verifies `root → cabundle[1..] → leaf` at `now` and returns the leaf's P-384 key.
pub fn verify_chain(
    root: &PinnedRoot,
    cabundle: &[Vec<u8>],
    leaf: &[u8],
    now: Duration,
) -> Result<VerifyingKey, AttestationError> {
    let first = cabundle
        .first()
        .ok_or(AttestationError::Document("empty cabundle".into()))?;
    let fp: [u8; 32] = Sha256::digest(first).into();
    if fp != root.fingerprint || first.as_slice() != root.der() {
        return Err(AttestationError::UntrustedRoot(hex::encode(fp)));
    }
    let ders: Vec<&[u8]> = cabundle
        .iter()
        .map(Vec::as_slice)
        .chain(std::iter::once(leaf))
        .collect();
    let certs = ders
        .iter()
        .enumerate()
        .map(|(i, d)| parse(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    let last = certs.len() - 1;
    let mut previous = None;
    for (i, cert) in certs.iter().enumerate() {
        check_validity(i, cert, now)?;
        let exts = extensions(i, cert)?;
        let is_ca = exts.ca.as_ref().is_some_and(|b| b.ca);
        if i < last {
            if !is_ca {
                return Err(AttestationError::Constraints {
                    index: i,
                    reason: "CA certificate without basicConstraints CA",
                });
            }
            if exts.key_usage.as_ref().is_some_and(|k| !k.key_cert_sign()) {
                return Err(AttestationError::Constraints {
                    index: i,
                    reason: "CA certificate without keyCertSign",
                });
            }
            // pathLenConstraint: at most this many CA certificates may follow.
            if let Some(limit) = exts.ca.as_ref().and_then(|b| b.path_len_constraint) {
                let cas_below = last - i - 1;
                if cas_below > usize::from(limit) {
                    return Err(AttestationError::Constraints {
                        index: i,
                        reason: "path length constraint exceeded",
                    });
                }
            }
        } else {
            if is_ca {
                return Err(AttestationError::Constraints {
                    index: i,
                    reason: "leaf certificate claims to be a CA",
                });
            }
            if exts
                .key_usage
                .as_ref()
                .is_some_and(|k| !k.digital_signature())
            {
                return Err(AttestationError::Constraints {
                    index: i,
                    reason: "leaf certificate without digitalSignature",
                });
            }
        }
        let Some(parent) = previous.replace(cert) else {
            continue; // the pinned root is trusted as such
        };
        if cert.tbs_certificate.issuer != parent.tbs_certificate.subject {
            return Err(AttestationError::NameChain(i));
        }
        if cert.signature_algorithm.oid.to_string() != OID_ECDSA_SHA384
            || cert.tbs_certificate.signature.oid != cert.signature_algorithm.oid
        {
            return Err(AttestationError::Algorithm(format!(
                "certificate {i} is not signed with ecdsa-with-SHA384"
            )));
        }
        let key = p384_key(i - 1, parent)?;
        let sig = DerSignature::from_bytes(cert.signature.raw_bytes())
            .map_err(|_| AttestationError::BadCertificateSignature(i))?;
        let tbs = cert
            .tbs_certificate
            .to_der()
            .map_err(|e| AttestationError::Certificate {
                index: i,
                reason: e.to_string(),
            })?;
        key.verify(&tbs, &sig)
            .map_err(|_| AttestationError::BadCertificateSignature(i))?;
    }
    let leaf = certs
        .last()
        .ok_or(AttestationError::Document("empty chain".into()))?;
    p384_key(last, leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_aws_root_has_the_published_fingerprint() {
        assert_eq!(
            PinnedRoot::aws().fingerprint_hex(),
            AWS_NITRO_ROOT_G1_SHA256
        );
    }
}

/// What a certificate says, for display by auditors. Parsing only: no trust is implied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertificateSummary {
    /// Subject distinguished name.
    pub subject: String,
    /// Start of validity, Unix seconds.
    pub not_before_s: u64,
    /// End of validity, Unix seconds.
    pub not_after_s: u64,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
}

/// Summaries of `cabundle` followed by `leaf`.
pub fn describe_chain(
    cabundle: &[Vec<u8>],
    leaf: &[u8],
) -> Result<Vec<CertificateSummary>, AttestationError> {
    cabundle
        .iter()
        .map(Vec::as_slice)
        .chain(std::iter::once(leaf))
        .enumerate()
        .map(|(i, d)| {
            let c = parse(i, d)?;
            let v = &c.tbs_certificate.validity;
            Ok(CertificateSummary {
                subject: c.tbs_certificate.subject.to_string(),
                not_before_s: v.not_before.to_unix_duration().as_secs(),
                not_after_s: v.not_after.to_unix_duration().as_secs(),
                sha256: hex::encode(Sha256::digest(d)),
            })
        })
        .collect()
}
