//! An endpoint's attested TLS identity.

use crate::ChannelError;
use der::Encode;
use kms_nsm::{AttestationRequest, Nsm};
use rcgen::{CertificateParams, CustomExtension, KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// OID of the certificate extension carrying the attestation document.
pub const ATTESTATION_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 59999, 1, 1];

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
        self.key_pkcs8.iter_mut().for_each(|b| *b = 0);
    }
}
