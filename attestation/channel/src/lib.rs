//! Attested TLS between parties (and from clients to an enclave).
//!
//! Each endpoint has an [`AttestedIdentity`]: a fresh TLS key, and a self-signed certificate
//! whose extension `1.3.6.1.4.1.59999.1.1` (an OCTET STRING) holds an NSM attestation document
//! with `public_key` = the certificate's SubjectPublicKeyInfo (DER) and `user_data` = the
//! endpoint's party identity. The certificate's own signature is not what is trusted; the
//! attestation document is.
//!
//! [`AttestedVerifier`] is both a rustls server- and client-certificate verifier: it extracts
//! the document, verifies it against the pinned root and the [`Policy`] (trusted releases), and
//! requires that it binds the key the peer proves possession of in the TLS 1.3 handshake and the
//! identity the caller expects for that peer, and, between parties, that the key is the one the
//! config contract registered for that identity ([`ExpectedPeer`], [`Mesh`]). Connections are
//! TLS 1.3 only and mutual.

#![forbid(unsafe_code)]

mod identity;
mod mesh;
mod verifier;

pub use identity::{spki_digest, AttestedIdentity, IdentityKey, ATTESTATION_EXTENSION_OID};
pub use mesh::{party_identity, party_index, Mesh};
pub use verifier::{AttestedVerifier, ChannelError, ExpectedPeer};

use kms_attestation::Policy;
use std::sync::Arc;

/// The crypto provider used for TLS (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS 1.3 server configuration presenting `identity` and requiring an attested client.
pub fn server_config(
    identity: &AttestedIdentity,
    clients: Arc<AttestedVerifier>,
) -> Result<rustls::ServerConfig, ChannelError> {
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ChannelError::Tls(e.to_string()))?
        .with_client_cert_verifier(clients)
        .with_single_cert(vec![identity.certificate()], identity.private_key())
        .map_err(|e| ChannelError::Tls(e.to_string()))
}

/// A TLS 1.3 client configuration presenting `identity` and requiring an attested server.
pub fn client_config(
    identity: &AttestedIdentity,
    servers: Arc<AttestedVerifier>,
) -> Result<rustls::ClientConfig, ChannelError> {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ChannelError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(servers)
        .with_client_auth_cert(vec![identity.certificate()], identity.private_key())
        .map_err(|e| ChannelError::Tls(e.to_string()))
}

/// A TLS 1.3 server configuration presenting `identity` to clients that do not attest
/// themselves (users, gateways): the client checks the enclave, not the other way round.
pub fn server_config_for_clients(
    identity: &AttestedIdentity,
) -> Result<rustls::ServerConfig, ChannelError> {
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ChannelError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![identity.certificate()], identity.private_key())
        .map_err(|e| ChannelError::Tls(e.to_string()))
}

/// A TLS 1.3 client configuration without a client identity that requires an attested server.
pub fn client_config_without_identity(
    servers: Arc<AttestedVerifier>,
) -> Result<rustls::ClientConfig, ChannelError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ChannelError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(servers)
        .with_no_client_auth())
}

/// The typed reason inside an I/O error from a rustls stream, if a verifier of this crate
/// refused the peer.
pub fn channel_error(e: &std::io::Error) -> Option<ChannelError> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
            o.0.downcast_ref::<ChannelError>().cloned()
        }
        _ => None,
    }
}

/// Re-exported for callers building policies.
pub type ChannelPolicy = Policy;
