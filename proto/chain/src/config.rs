//! The config contract's record: the parties, threshold, fees, administrators and the EIP-712
//! domain. Transactions change it (`tx`), state stores it (`state::keys::CONFIG`).

use crate::Address;
use kms_eip712::DomainConfig;
use serde::{Deserialize, Serialize};

/// One KMS party (operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// 1-based index, the party's Shamir evaluation point number.
    pub index: u32,
    /// Address of the key that signs the party's results and transactions.
    pub signer: Address,
    /// `HOST:PORT` where the party's host accepts party connections (relayed to its enclave):
    /// the only address other hosts connect to for this party. Who answers there is checked by
    /// attested TLS, so a wrong address costs availability, never secrecy.
    pub endpoint: String,
    /// The attestation policy other parties and clients apply to this party (JSON of
    /// `kms_attestation::Policy`, trusted PCR releases).
    pub attestation_policy: String,
    /// SHA-256 of the DER `SubjectPublicKeyInfo` of the party's long-term (attested) TLS identity
    /// key: a peer claiming this party's index must present this key. Distinct across parties.
    pub identity_key_digest: [u8; 32],
}

impl Party {
    /// The [`Party::identity_key_digest`] of a DER `SubjectPublicKeyInfo`.
    pub fn identity_digest_of_spki(spki_der: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(spki_der).into()
    }
}

/// Fees, in token units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    /// Per keygen request.
    pub keygen: u128,
    /// Per CRS request.
    pub crs_gen: u128,
    /// Per ciphertext of a public decryption.
    pub public_decrypt_per_ct: u128,
    /// Per ciphertext of a user decryption.
    pub user_decrypt_per_ct: u128,
    /// Per resharing.
    pub reshare: u128,
    /// Largest amount one faucet transaction mints.
    pub faucet_max: u128,
    /// Charged for every included transaction, even one that fails.
    pub tx_base: u128,
    /// Charged per byte (key + value) a successful transaction writes to state.
    pub per_state_byte: u128,
}

/// The config contract's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The parties, ordered by index 1..=n.
    pub parties: Vec<Party>,
    /// Threshold t (n ≥ 3t + 1).
    pub threshold: u32,
    /// Fees.
    pub fees: FeeSchedule,
    /// Addresses allowed to change the config and to request keygen, CRS and resharing.
    pub admins: Vec<Address>,
    /// The EIP-712 domain the parties sign results under.
    pub eip712_domain: DomainConfig,
    /// Most ciphertexts in one decryption request.
    pub max_ciphertexts_per_request: u32,
    /// Most ACL entries one application may hold.
    pub max_acl_entries_per_app: u64,
    /// A developer chain: keygen with insecure test parameters is allowed. Never on a production
    /// chain.
    pub developer_chain: bool,
}

/// Why a config is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// n < 3t + 1 or t = 0 with n > 1 is allowed; n = 0 is not.
    #[error("need n ≥ 3t + 1 parties (n = {n}, t = {t})")]
    Threshold {
        /// n.
        n: usize,
        /// t.
        t: u32,
    },
    /// Indices must be 1..=n in order.
    #[error("party indices must be 1..=n in order")]
    Indices,
    /// Two parties share a signer.
    #[error("two parties share signer {0}")]
    DuplicateSigner(String),
    /// No admin.
    #[error("at least one admin is required")]
    NoAdmin,
    /// Limit out of range.
    #[error("max_ciphertexts_per_request must be in 1..=256")]
    Limit,
    /// Two parties share a TLS identity key.
    #[error("two parties share identity key digest {0}")]
    DuplicateIdentity(String),
    /// The per-application ACL bound is zero.
    #[error("max_acl_entries_per_app must be at least 1")]
    AclLimit,
}

impl Config {
    /// Checks the invariants every stored config satisfies.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.parties.len();
        if n == 0 || n < 3 * self.threshold as usize + 1 {
            return Err(ConfigError::Threshold {
                n,
                t: self.threshold,
            });
        }
        for (i, p) in self.parties.iter().enumerate() {
            if p.index as usize != i + 1 {
                return Err(ConfigError::Indices);
            }
            let earlier = self.parties.get(..i).unwrap_or_default();
            if earlier.iter().any(|q| q.signer == p.signer) {
                return Err(ConfigError::DuplicateSigner(hex::encode(p.signer)));
            }
            if earlier
                .iter()
                .any(|q| q.identity_key_digest == p.identity_key_digest)
            {
                return Err(ConfigError::DuplicateIdentity(hex::encode(
                    p.identity_key_digest,
                )));
            }
        }
        if self.admins.is_empty() {
            return Err(ConfigError::NoAdmin);
        }
        if !(1..=256).contains(&self.max_ciphertexts_per_request) {
            return Err(ConfigError::Limit);
        }
        if self.max_acl_entries_per_app == 0 {
            return Err(ConfigError::AclLimit);
        }
        Ok(())
    }

    /// The party whose signer is `addr`.
    pub fn party_by_signer(&self, addr: &Address) -> Option<&Party> {
        self.parties.iter().find(|p| &p.signer == addr)
    }

    /// Whether `addr` is an admin.
    pub fn is_admin(&self, addr: &Address) -> bool {
        self.admins.contains(addr)
    }
}
