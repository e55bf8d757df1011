//! The TLS configuration of one party in an n-party mesh: a server that accepts any attested
//! party, one client configuration per peer that accepts only that peer, and the mapping from a
//! verified peer certificate back to its party index.
//!
//! **Identity.** A party is the long-term TLS key the config contract registered for its index
//! (`identity_key_digest`, SHA-256 of the key's SubjectPublicKeyInfo), not the index an
//! enclave's configuration claims: a peer is accepted as party `p` only if its attestation
//! document names `p` *and* binds the key registered for `p`. A genuine release run by an
//! operator who configures it with another party's index has the wrong key and is refused.
//!
//! **Releases.** Each party is verified under its own policy ([`Mesh::per_party`]: the
//! attestation policy the config contract holds for it), chosen by the identity its document
//! claims and then bound to it: a peer is accepted only as a release trusted for that party.
//!
//! **Freshness.** Documents are only accepted while younger than the policy's `max_age_s`, so the
//! mesh re-attests its key ([`Mesh::refresh`], every [`Mesh::refresh_interval`]) and serves the
//! newest certificate to every new handshake through rustls certificate resolvers.

use crate::verifier::ExpectedPeer;
use crate::{provider, AttestedIdentity, AttestedVerifier, ChannelError, IdentityKey};
use kms_attestation::{PinnedRoot, Policy};
use kms_nsm::Nsm;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The identity (attestation `user_data`) of party `p`.
pub fn party_identity(p: usize) -> Vec<u8> {
    format!("kms-party-{p}").into_bytes()
}

/// The party index an identity names.
pub fn party_index(identity: &[u8]) -> Option<usize> {
    std::str::from_utf8(identity)
        .ok()?
        .strip_prefix("kms-party-")?
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// The certificate presented in new handshakes, replaced on refresh.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set(&self, k: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = k;
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl ResolvesClientCert for CurrentCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

fn certified(id: &AttestedIdentity) -> Result<Arc<CertifiedKey>, ChannelError> {
    let key = provider()
        .key_provider
        .load_private_key(id.private_key())
        .map_err(|e| ChannelError::Tls(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![id.certificate()], key)))
}

/// One party's TLS material for the mesh.
pub struct Mesh {
    /// Mutual-TLS server configuration (accepts parties 1..=n).
    pub server: Arc<rustls::ServerConfig>,
    /// Client configuration to dial party `p` at index `p − 1` (accepts only party `p`).
    pub clients: Vec<Arc<rustls::ClientConfig>>,
    verifier: Arc<AttestedVerifier>,
    current: Arc<CurrentCert>,
    key: IdentityKey,
    me: usize,
    n: usize,
    max_age: Duration,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mesh(party {} of {})", self.me, self.n)
    }
}

impl Mesh {
    /// Party `me` of `registered.len()`: `registered[p − 1]` is the identity-key digest the
    /// config contract holds for party `p`, and `key` must be this party's registered key.
    /// Attests `key` with `nsm` under identity [`party_identity`]`(me)` and trusts peers whose
    /// documents chain to `root`, satisfy `policy`, and bind their registered key.
    pub fn new(
        nsm: &dyn Nsm,
        me: usize,
        registered: &[[u8; 32]],
        key: IdentityKey,
        root: PinnedRoot,
        policy: Policy,
    ) -> Result<Self, ChannelError> {
        let policies = vec![policy; registered.len()];
        Self::per_party(nsm, me, registered, &policies, key, root)
    }

    /// [`Mesh::new`] with each party's own policy: `policies[p − 1]` holds the releases party
    /// `p` is trusted to run (its attestation policy in the config contract), so a peer is
    /// accepted only as a release trusted *for it*.
    pub fn per_party(
        nsm: &dyn Nsm,
        me: usize,
        registered: &[[u8; 32]],
        policies: &[Policy],
        key: IdentityKey,
        root: PinnedRoot,
    ) -> Result<Self, ChannelError> {
        let n = registered.len();
        if me == 0 || registered.get(me - 1) != Some(&key.digest()) {
            return Err(ChannelError::NotRegistered(me));
        }
        if policies.len() != n {
            return Err(ChannelError::PolicyCount {
                policies: policies.len(),
                parties: n,
            });
        }
        let all: Vec<ExpectedPeer> = (1..=n)
            .zip(registered.iter().zip(policies))
            .map(|(p, (digest, policy))| ExpectedPeer {
                identity: party_identity(p),
                key_digest: Some(*digest),
                policy: Some(policy.clone()),
            })
            .collect();
        // Re-attest well inside the strictest peer's freshness window.
        let policy = policies
            .iter()
            .min_by_key(|p| p.max_age_s)
            .cloned()
            .ok_or(ChannelError::NotRegistered(me))?;
        let max_age = Duration::from_secs(policy.max_age_s);
        let verifier = Arc::new(AttestedVerifier::for_peers(
            root.clone(),
            policy.clone(),
            all.clone(),
        ));
        let current = Arc::new(CurrentCert(RwLock::new(certified(
            &AttestedIdentity::for_key(nsm, &party_identity(me), &key)?,
        )?)));
        let tls = |e: rustls::Error| ChannelError::Tls(e.to_string());
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(current.clone());
        let clients = all
            .into_iter()
            .map(|expected| {
                let only =
                    AttestedVerifier::for_peers(root.clone(), policy.clone(), vec![expected]);
                Ok(Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider())
                        .with_protocol_versions(&[&rustls::version::TLS13])
                        .map_err(tls)?
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(only))
                        .with_client_cert_resolver(current.clone()),
                ))
            })
            .collect::<Result<_, ChannelError>>()?;
        Ok(Self {
            server: Arc::new(server),
            clients,
            verifier,
            current,
            key,
            me,
            n,
            max_age,
        })
    }

    /// Re-attests this party's key: new handshakes present a fresh document. Connections
    /// already established are unaffected.
    pub fn refresh(&self, nsm: &dyn Nsm) -> Result<(), ChannelError> {
        let id = AttestedIdentity::for_key(nsm, &party_identity(self.me), &self.key)?;
        self.current.set(certified(&id)?);
        Ok(())
    }

    /// How often to [`Self::refresh`]: a third of the policy's maximum document age, so a
    /// document is always well inside its validity when a peer checks it.
    pub fn refresh_interval(&self) -> Duration {
        (self.max_age / 3).max(Duration::from_millis(100))
    }

    /// The party a peer's end-entity certificate attests with its registered key (re-verified at
    /// the current time), if it is one of the n parties.
    pub fn authenticate(&self, end_entity: &[u8]) -> Option<usize> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let id = self.verifier.check(end_entity, now).ok()?;
        party_index(&id).filter(|p| *p <= self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip() {
        assert_eq!(party_index(&party_identity(7)), Some(7));
        assert_eq!(party_index(b"kms-party-0"), None);
        assert_eq!(party_index(b"kms-party-x"), None);
        assert_eq!(party_index(b"other"), None);
    }
}
