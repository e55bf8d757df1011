//! State records and the keys they live under in the authenticated store.
//!
//! Keys are ASCII paths; values are the CBOR of the records below. A light client that holds a
//! verified `app_hash` checks an ICS23 proof for `(key, value)` and decodes the value here.

use crate::tx::{AppId, Fulfillment, KmsRequest};
use crate::Address;
use kms_types::{KeyEpoch, RequestId};
use serde::{Deserialize, Serialize};

pub use crate::config::{Config, ConfigError, FeeSchedule, Party};

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

/// A key set's current sharing epoch and the resharing in progress (stored at
/// [`keys::key_epoch`]; absent means epoch 0 and none in progress).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEpochRecord {
    /// The current epoch.
    pub epoch: KeyEpoch,
    /// The resharing in progress, if any, with the height that approved it. Only this one may
    /// complete; another is refused until it completes or [`RESHARE_TIMEOUT_BLOCKS`] pass
    /// (then the new one supersedes it, and the old one can no longer complete).
    pub pending_reshare: Option<(RequestId, u64)>,
}

/// Blocks after which a resharing that did not complete may be superseded by a new one (a
/// corrupt party can stop a resharing; it must not stop all future ones).
pub const RESHARE_TIMEOUT_BLOCKS: u64 = 600;

/// Blocks after its approval from which anyone may expire a request that did not complete
/// (`Msg::Expire`): its fee goes back to the requester. A request can be stuck for good (a
/// resharing a corrupt party stopped, a decryption approved under a key epoch the parties
/// left before serving it); its fee must not be.
pub const REQUEST_TIMEOUT_BLOCKS: u64 = 1200;

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
    /// Not completed within [`REQUEST_TIMEOUT_BLOCKS`] of its approval and expired by a
    /// `Expire` transaction: the escrowed fee went back to the requester, and no response is
    /// accepted any more.
    Expired {
        /// Height of the block that expired it.
        height: u64,
    },
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
    /// For decryption and resharing requests: the epoch of the key's sharing when the request
    /// was approved (a party serves it with that epoch's share only; a resharing reshares it).
    #[serde(default)]
    pub key_epoch: KeyEpoch,
    /// For a CRS generation request: the ceremony's progress (which turn, the proposal under
    /// vote, the decided turns). Absent from the encoding of every other request, whose records
    /// encode as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<CrsCeremony>,
}

/// Blocks a ceremony turn's contributor has to propose, and then the parties have to decide the
/// proposal, before anyone may skip the turn with `Msg::CrsSkipTurn`.
pub const CRS_TURN_BLOCKS: u64 = 150;

/// One decided turn of a CRS ceremony.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrsTurn {
    /// The contributing party (1-based index in the request's party set).
    pub contributor: u32,
    /// SHA3-256 of its contribution if `2t + 1` parties voted it valid; `None` if it was voted
    /// invalid by `t + 1`, or did not get `2t + 1` valid votes within [`CRS_TURN_BLOCKS`].
    pub accepted: Option<[u8; 32]>,
}

/// A CRS ceremony as the ASC sequences it: the parties contribute in the order of the request's
/// party set; each turn is decided on chain, so every party builds on the same transcript (a
/// contributor cannot show different contributions to different parties: the chain orders one
/// digest per turn, the bytes are content-addressed by it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrsCeremony {
    /// The current turn (0-based position in the party set); the party set's length once every
    /// turn is decided.
    pub turn: u32,
    /// Height at which the current turn started.
    pub turn_started: u64,
    /// The current contributor's proposal (SHA3-256 of its contribution), once made.
    pub proposal: Option<[u8; 32]>,
    /// Height at which the proposal was made (the voting window starts there).
    pub proposed_at: Option<u64>,
    /// Votes on the proposal (the contributor's own proposal counts as its valid vote).
    pub votes: Vec<(Address, bool)>,
    /// The decided turns, in order.
    pub decided: Vec<CrsTurn>,
}

impl CrsCeremony {
    /// The accepted contributions, in order: (contributor, digest).
    pub fn accepted(&self) -> impl Iterator<Item = (u32, [u8; 32])> + '_ {
        self.decided
            .iter()
            .filter_map(|t| t.accepted.map(|d| (t.contributor, d)))
    }

    /// Whether every one of `n` parties had its turn.
    pub fn finished(&self, n: usize) -> bool {
        self.turn as usize >= n
    }

    /// The height from which the current turn may be skipped: [`CRS_TURN_BLOCKS`] after its
    /// start while no proposal was made, then [`CRS_TURN_BLOCKS`] after the proposal (so a
    /// proposal made late still gets its full voting window).
    pub fn deadline(&self) -> u64 {
        self.proposed_at
            .unwrap_or(self.turn_started)
            .saturating_add(CRS_TURN_BLOCKS)
    }
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

    /// A key set's sharing epoch ([`KeyEpochRecord`]).
    pub fn key_epoch(key_id: &RequestId) -> Vec<u8> {
        format!("asc/keyepoch/{key_id}").into_bytes()
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
            eip712_domain: kms_eip712::DomainConfig::default(),
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
