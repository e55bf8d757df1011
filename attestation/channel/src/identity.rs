//! An endpoint's attested TLS identity.

use crate::ChannelError;
use der::Encode;
use kms_nsm::{AttestationRequest, Nsm};
use rcgen::{CertificateParams, CustomExtension, KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::{Zeroize, Zeroizing};

/// OID of the certificate extension carrying the attestation document.
pub const ATTESTATION_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 59999, 1, 1];

/// A party's long-term TLS identity key (ECDSA P-256). Its public key is what the config
/// contract registers for the party ([`IdentityKey::digest`]); attestation documents over it are
/// refreshed while the key stays. In the enclave it is sealed state; it never leaves the enclave.
pub struct IdentityKey {
    pkcs8: Zeroizing<Vec<u8>>,
    spki: Vec<u8>,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityKey({})", hex_digest(&self.digest()))
    }
}

fn hex_digest(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl IdentityKey {
    /// A fresh key.
    pub fn generate() -> Result<Self, ChannelError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls)?;
        Ok(Self::from_key_pair(&key))
    }

    /// A key from its PKCS#8 DER (as sealed).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ChannelError> {
        let key = KeyPair::try_from(der).map_err(tls)?;
        Ok(Self::from_key_pair(&key))
    }

    fn from_key_pair(key: &KeyPair) -> Self {
        Self {
            pkcs8: Zeroizing::new(key.serialize_der()),
            spki: key.subject_public_key_info(),
        }
    }

    /// The PKCS#8 DER, for sealing.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        self.pkcs8.clone()
    }

    /// The SubjectPublicKeyInfo (DER).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// SHA-256 of the SubjectPublicKeyInfo (DER): the value the config contract registers as the
    /// party's `identity_key_digest`.
    pub fn digest(&self) -> [u8; 32] {
        spki_digest(&self.spki)
    }

    fn key_pair(&self) -> Result<KeyPair, ChannelError> {
        KeyPair::try_from(self.pkcs8.as_slice()).map_err(tls)
    }
}

/// SHA-256 of a DER SubjectPublicKeyInfo.
pub fn spki_digest(spki_der: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(spki_der).into()
}

/// A TLS key with a certificate carrying an attestation document that binds it.
pub struct AttestedIdentity {
    key_pkcs8: Vec<u8>,
    cert: Vec<u8>,
}

impl std::fmt::Debug for AttestedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AttestedIdentity({} byte certificate)", self.cert.len())
    }
}

fn tls(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Tls(e.to_string())
}

impl AttestedIdentity {
    /// A fresh TLS key attested by `nsm` for party `identity`.
    pub fn new(nsm: &dyn Nsm, identity: &[u8]) -> Result<Self, ChannelError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls)?;
        let spki = key.subject_public_key_info();
        Self::with_document_for(key, identity, nsm, spki)
    }

    /// A certificate for the long-term `key`, with a fresh attestation document for party
    /// `identity`. Called again before the document's age runs out (see `Mesh::refresh`).
    pub fn for_key(
        nsm: &dyn Nsm,
        identity: &[u8],
        key: &IdentityKey,
    ) -> Result<Self, ChannelError> {
        Self::with_document_for(key.key_pair()?, identity, nsm, key.spki.clone())
    }

    /// Like [`Self::new`], but the document binds `attested_key` (SPKI DER) instead of the TLS
    /// key: only for testing that verifiers reject such certificates.
    pub fn new_with_mismatched_key(
        nsm: &dyn Nsm,
        identity: &[u8],
        attested_key: Vec<u8>,
    ) -> Result<Self, ChannelError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls)?;
        Self::with_document_for(key, identity, nsm, attested_key)
    }

    fn with_document_for(
        key: KeyPair,
        identity: &[u8],
        nsm: &dyn Nsm,
        attested_key: Vec<u8>,
    ) -> Result<Self, ChannelError> {
        let doc = nsm
            .attest(&AttestationRequest {
                user_data: Some(identity.to_vec()),
                nonce: None,
                public_key: Some(attested_key),
            })
            .map_err(|e| ChannelError::Attestation(e.to_string()))?;
        let content = der::asn1::OctetString::new(doc)
            .map_err(tls)?
            .to_der()
            .map_err(tls)?;
        let mut params = CertificateParams::new(vec!["kms-party".to_string()]).map_err(tls)?;
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            ATTESTATION_EXTENSION_OID,
            content,
        )];
        let cert = params.self_signed(&key).map_err(tls)?;
        Ok(Self {
            key_pkcs8: key.serialize_der(),
            cert: cert.der().to_vec(),
        })
    }

    /// A certificate without any attestation (for negative tests and plain clients).
    pub fn unattested() -> Result<Self, ChannelError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(tls)?;
        let cert = CertificateParams::new(vec!["kms-party".to_string()])
            .map_err(tls)?
            .self_signed(&key)
            .map_err(tls)?;
        Ok(Self {
            key_pkcs8: key.serialize_der(),
            cert: cert.der().to_vec(),
        })
    }

    /// The certificate.
    pub fn certificate(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert.clone())
    }

    /// The private key.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

impl Drop for AttestedIdentity {
    fn drop(&mut self) {
        self.key_pkcs8.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_key_round_trips_and_debug_shows_no_secret() {
        let k = IdentityKey::generate().unwrap();
        let again = IdentityKey::from_pkcs8_der(&k.to_pkcs8_der()).unwrap();
        assert_eq!(k.digest(), again.digest());
        assert_eq!(k.digest(), spki_digest(k.spki_der()));
        assert_ne!(k.digest(), IdentityKey::generate().unwrap().digest());
        // Debug shows the public digest and nothing else.
        assert_eq!(
            format!("{k:?}"),
            format!("IdentityKey({})", hex_digest(&k.digest()))
        );
        assert!(IdentityKey::from_pkcs8_der(b"garbage").is_err());
    }
}
