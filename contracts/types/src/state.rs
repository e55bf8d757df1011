//! State records and the keys they live under in the authenticated store.
//!
//! Keys are ASCII paths; values are the CBOR of the records below. A light client that holds a
//! verified `app_hash` checks an ICS23 proof for `(key, value)` and decodes the value here.

use crate::tx::{AppId, Fulfillment, KmsRequest};
use crate::Address;
use kms_eip712::DomainConfig;
use kms_types::RequestId;
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

/// A token account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Balance.
    pub balance: u128,
    /// Next expected transaction nonce.
    pub nonce: u64,
}

/// An application registered with the ISC by the config contract's governance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Its ID.
    pub app_id: AppId,
    /// Who manages its ACL (named by governance at registration).
    pub admin: Address,
    /// Which inclusion-proof contract decides for it.
    pub isc: IscKind,
    /// How many ACL entries it holds (bounded by `Config::max_acl_entries_per_app`).
    pub acl_entries: u64,
    /// How many ciphertext handles it owns (bounded by the same limit: revoking an entry does
    /// not release the handle's ownership record).
    #[serde(default)]
    pub owned_handles: u64,
}

/// The applications allowed to decrypt under a key set (stored at [`keys::key_apps`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyApps {
    /// The key set.
    pub key_id: RequestId,
    /// The applications, in the order they were allowed.
    pub apps: Vec<AppId>,
}

/// The inclusion-proof contract implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IscKind {
    /// An ACL kept on the KMS chain by the application's admin.
    Acl,
}

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestStatus {
    /// Approved by the ASC and its ISC, waiting for the parties.
    Pending,
    /// Enough matching responses arrived.
    Completed {
        /// Height of the block that completed it.
        height: u64,
        /// SHA3-256 of the agreed result (public decryption and material), the agreed resharing
        /// verdict digest, or of the list of responding signers (user decryption).
        result_digest: [u8; 32],
    },
}

/// A request the ASC approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Its ID (derived from `request`).
    pub id: RequestId,
    /// Application on whose behalf it was made.
    pub app_id: AppId,
    /// Who asked (and paid).
    pub requester: Address,
    /// The request.
    pub request: KmsRequest,
    /// Fee held in escrow until completion.
    pub fee: u128,
    /// Height of the block that approved it.
    pub height: u64,
    /// Status.
    pub status: RequestStatus,
    /// The signers of the party set the request was created under, by index (entry i is party
    /// i + 1): only these keys may answer, and only while they are still registered.
    pub parties: Vec<Address>,
    /// The threshold t the request was created under.
    pub threshold: u32,
    /// Signers that have responded, in the order their responses were accepted.
    pub responded: Vec<Address>,
}

impl RequestRecord {
    /// The 1-based index of `signer` in the request's frozen party set.
    pub fn party_index(&self, signer: &Address) -> Option<u32> {
        self.parties
            .iter()
            .position(|p| p == signer)
            .and_then(|i| u32::try_from(i + 1).ok())
    }
}

/// One party's stored response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// The request.
    pub request_id: RequestId,
    /// The party's index in the request's frozen party set.
    pub party: u32,
    /// The party's signer (responses are recorded by signer).
    pub signer: Address,
    /// What it sent.
    pub fulfillment: Fulfillment,
    /// SHA3-256 of the part that must match across parties.
    pub result_digest: [u8; 32],
    /// Height of the block that stored it.
    pub height: u64,
}

/// State keys.
pub mod keys {
    use super::*;

    /// The config record.
    pub const CONFIG: &[u8] = b"config";

    /// An account.
    pub fn account(addr: &Address) -> Vec<u8> {
        format!("acct/{}", hex::encode(addr)).into_bytes()
    }

    /// An application.
    pub fn application(app_id: &str) -> Vec<u8> {
        format!("isc/app/{app_id}").into_bytes()
    }

    /// An ACL entry (value `[1]` when present).
    pub fn acl(app_id: &str, handle: &[u8; 32], addr: &Address) -> Vec<u8> {
        format!(
            "isc/acl/{app_id}/{}/{}",
            hex::encode(handle),
            hex::encode(addr)
        )
        .into_bytes()
    }

    /// A request record.
    pub fn request(id: &RequestId) -> Vec<u8> {
        format!("asc/req/{id}").into_bytes()
    }

    /// A party's response to a request, by the party's signer.
    pub fn response(id: &RequestId, signer: &Address) -> Vec<u8> {
        format!("asc/resp/{id}/{}", hex::encode(signer)).into_bytes()
    }

    /// The application that owns a ciphertext handle (CBOR of its [`AppId`]).
    pub fn handle_owner(handle: &[u8; 32]) -> Vec<u8> {
        format!("isc/owner/{}", hex::encode(handle)).into_bytes()
    }

    /// The applications allowed to use a key set ([`KeyApps`]).
    pub fn key_apps(key_id: &RequestId) -> Vec<u8> {
        format!("asc/keyapps/{key_id}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            parties: (1..=4u8)
                .map(|i| Party {
                    index: u32::from(i),
                    signer: [i; 20],
                    endpoint: String::new(),
                    attestation_policy: String::new(),
                    identity_key_digest: Party::identity_digest_of_spki(&[i]),
                })
                .collect(),
            threshold: 1,
            fees: FeeSchedule {
                keygen: 0,
                crs_gen: 0,
                public_decrypt_per_ct: 0,
                user_decrypt_per_ct: 0,
                reshare: 0,
                faucet_max: 0,
                tx_base: 0,
                per_state_byte: 0,
            },
            admins: vec![[9; 20]],
            eip712_domain: DomainConfig::default(),
            max_ciphertexts_per_request: 1,
            max_acl_entries_per_app: 1,
            developer_chain: false,
        }
    }

    #[test]
    fn identity_keys_must_be_distinct() {
        let mut c = config();
        assert_eq!(c.validate(), Ok(()));
        c.parties[3].identity_key_digest = c.parties[1].identity_key_digest;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateIdentity(_))
        ));
    }

    #[test]
    fn identity_digest_is_sha256_of_the_spki() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            hex::encode(Party::identity_digest_of_spki(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn acl_bound_must_be_positive() {
        let mut c = config();
        c.max_acl_entries_per_app = 0;
        assert_eq!(c.validate(), Err(ConfigError::AclLimit));
    }
}
