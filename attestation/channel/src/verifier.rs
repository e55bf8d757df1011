//! The attested peer verifier (rustls server- and client-certificate verifier).

use crate::identity::ATTESTATION_EXTENSION_OID;
use der::{Decode, Encode};
use kms_attestation::{verify_document, AttestationError, PinnedRoot, Policy};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;

/// Why a channel could not be set up or a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// TLS configuration or handshake failure.
    #[error("TLS: {0}")]
    Tls(String),
    /// The local NSM could not attest.
    #[error("attestation: {0}")]
    Attestation(String),
    /// The peer's certificate carries no attestation document.
    #[error("peer certificate carries no attestation document")]
    NotAttested,
    /// The peer's attestation document was rejected.
    #[error("peer attestation rejected: {0}")]
    Rejected(#[from] AttestationError),
    /// The peer attested a genuine release and an expected identity, but its TLS key is not the
    /// key registered for that identity (e.g. a genuine enclave configured to claim another
    /// party's index).
    #[error("peer key is not the one registered for identity {identity}")]
    UnregisteredKey {
        /// The identity the peer claimed (`user_data`, lossy UTF-8).
        identity: String,
    },
    /// This party's own key is not the one registered for its index.
    #[error("own identity key is not the one registered for party {0}")]
    NotRegistered(usize),
    /// A mesh needs one policy per party.
    #[error("{policies} attestation policies for {parties} parties")]
    PolicyCount {
        /// Policies given.
        policies: usize,
        /// Parties registered.
        parties: usize,
    },
}

impl From<ChannelError> for rustls::Error {
    fn from(e: ChannelError) -> Self {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(e),
        )))
    }
}

/// A peer the verifier accepts: the identity its document must name, and, for parties, the
/// digest of the TLS key registered for that identity in the config contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedPeer {
    /// The attestation document's `user_data`.
    pub identity: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo the peer must present ([`crate::spki_digest`]);
    /// `None` accepts any key attested for `identity` (enclaves that are not parties).
    pub key_digest: Option<[u8; 32]>,
    /// The releases this peer is trusted to run (a party's attestation policy in the config
    /// contract); `None`: the verifier's policy.
    pub policy: Option<Policy>,
}

/// Verifies a peer's attested certificate against a pinned root, a policy and an expected
/// identity (with its registered key). Used on both sides of a mutual connection.
#[derive(Debug)]
pub struct AttestedVerifier {
    root: PinnedRoot,
    policy: Policy,
    expected: Vec<ExpectedPeer>,
    time_override: Option<Duration>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl AttestedVerifier {
    /// Accepts peers whose document chains to `root`, satisfies `policy`, and names one of
    /// `expected_identities` as `user_data`, with any key.
    pub fn new(root: PinnedRoot, policy: Policy, expected_identities: Vec<Vec<u8>>) -> Self {
        let expected = expected_identities
            .into_iter()
            .map(|identity| ExpectedPeer {
                identity,
                key_digest: None,
                policy: None,
            })
            .collect();
        Self::for_peers(root, policy, expected)
    }

    /// Accepts peers whose document chains to `root`, satisfies `policy`, names one of the
    /// `expected` identities, and whose TLS key is the one registered for that identity.
    pub fn for_peers(root: PinnedRoot, policy: Policy, expected: Vec<ExpectedPeer>) -> Self {
        Self {
            root,
            policy,
            expected,
            time_override: None,
            provider: crate::provider(),
        }
    }

    /// Verifies at a fixed time instead of rustls's clock (tests).
    pub fn at_time(mut self, now: Duration) -> Self {
        self.time_override = Some(now);
        self
    }

    /// Checks one end-entity certificate; returns the peer identity.
    pub fn check(&self, end_entity: &[u8], now: Duration) -> Result<Vec<u8>, ChannelError> {
        let cert = x509_cert::Certificate::from_der(end_entity)
            .map_err(|e| ChannelError::Tls(e.to_string()))?;
        let oid = der::asn1::ObjectIdentifier::new(
            &ATTESTATION_EXTENSION_OID
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        )
        .map_err(|e| ChannelError::Tls(e.to_string()))?;
        let ext = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid)
            .ok_or(ChannelError::NotAttested)?;
        let doc = der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
            .map_err(|_| ChannelError::NotAttested)?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| ChannelError::Tls(e.to_string()))?;
        let key_digest = crate::spki_digest(&spki);
        // The identity the document claims picks the policy it is verified under (each party
        // has its own trusted releases); the verification then binds that identity.
        let claimed = kms_attestation::document::parse_unverified(doc.as_bytes())?
            .user_data
            .unwrap_or_default();
        let expected =
            self.expected
                .iter()
                .find(|e| e.identity == claimed)
                .ok_or(ChannelError::Rejected(AttestationError::Binding(
                    "user_data (party identity)",
                )))?;
        let mut policy = expected
            .policy
            .clone()
            .unwrap_or_else(|| self.policy.clone());
        policy.public_key = Some(spki);
        policy.user_data = Some(expected.identity.clone());
        verify_document(
            doc.as_bytes(),
            &self.root,
            &policy,
            self.time_override.unwrap_or(now),
        )?;
        let identity = expected.identity.clone();
        match expected.key_digest {
            Some(registered) if registered != key_digest => Err(ChannelError::UnregisteredKey {
                identity: String::from_utf8_lossy(&identity).into_owned(),
            }),
            _ => Ok(identity),
        }
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Both verifier roles refuse TLS 1.2 (the configurations only offer TLS 1.3).
fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls12NotOffered,
    ))
}

fn now_of(t: UnixTime) -> Duration {
    Duration::from_secs(t.as_secs())
}

impl ServerCertVerifier for AttestedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, now_of(now))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for AttestedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, now_of(now))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}
