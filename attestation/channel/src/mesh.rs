//! The TLS configuration of one party in an n-party mesh: a server that accepts any attested
//! party, one client configuration per peer that accepts only that peer, and the mapping from a
//! verified peer certificate back to its party index.

use crate::{client_config, server_config, AttestedIdentity, AttestedVerifier, ChannelError};
use kms_attestation::{PinnedRoot, Policy};
use kms_nsm::Nsm;
use std::sync::Arc;
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

/// One party's TLS material for the mesh.
pub struct Mesh {
    /// Mutual-TLS server configuration (accepts parties 1..=n).
    pub server: Arc<rustls::ServerConfig>,
    /// Client configuration to dial party `p` at index `p − 1` (accepts only party `p`).
    pub clients: Vec<Arc<rustls::ClientConfig>>,
    verifier: Arc<AttestedVerifier>,
    n: usize,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mesh({} parties)", self.n)
    }
}

impl Mesh {
    /// Party `me` of `n`: attests its TLS key with `nsm` under identity [`party_identity`]`(me)`
    /// and trusts peers whose documents chain to `root` and satisfy `policy`.
    pub fn new(
        nsm: &dyn Nsm,
        me: usize,
        n: usize,
        root: PinnedRoot,
        policy: Policy,
    ) -> Result<Self, ChannelError> {
        let id = AttestedIdentity::new(nsm, &party_identity(me))?;
        let all: Vec<Vec<u8>> = (1..=n).map(party_identity).collect();
        let verifier = Arc::new(AttestedVerifier::new(root.clone(), policy.clone(), all));
        let server = Arc::new(server_config(&id, verifier.clone())?);
        let clients = (1..=n)
            .map(|p| {
                let v =
                    AttestedVerifier::new(root.clone(), policy.clone(), vec![party_identity(p)]);
                client_config(&id, Arc::new(v)).map(Arc::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            server,
            clients,
            verifier,
            n,
        })
    }

    /// The party a peer's end-entity certificate attests (re-verified at the current time), if
    /// it is one of the n parties.
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
