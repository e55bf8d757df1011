//! Transactions: a CBOR body signed with secp256k1 by the sender's account key.
//!
//! Accounts are Ethereum-style addresses, so a KMS party's chain account is the address of the
//! key that signs its EIP-712 results. The signature covers
//! `keccak256("kms-chain-tx/v1" ‖ len(chain_id) ‖ chain_id ‖ body)` (the chain ID is also inside
//! the body; it is hashed in front so a signature can never be replayed on another chain even if a
//! future body format dropped it). Replays on the same chain are stopped by the account nonce.

use crate::codec::{self, CodecError};
use crate::config::{Config, FeeSchedule, Party};
use crate::Address;
use kms_eip712::{Signature, SigningKey};
use kms_types::{
    CanonicalRequest, CrsGenRequest, KeyGenRequest, PublicDecryptionRef, RequestId,
    UserDecryptionRef,
};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

/// Largest transaction the chain accepts.
pub const MAX_TX_BYTES: usize = 256 * 1024;

/// Room a fulfillment transaction needs besides its envelope: the CBOR of the signed body
/// (sender fields, nonce, request ID, the 65-byte result signature, byte-string headers) and the
/// 65-byte transaction signature. Byte fields are CBOR byte strings, so this is a constant.
pub const FULFILLMENT_OVERHEAD_BYTES: usize = 1024;

/// An application identifier (the ISC scope): 1 to 64 characters `[a-z0-9-]`.
pub type AppId = String;

/// Checks an application identifier.
pub fn valid_app_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A request to the KMS, as the ASC receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KmsRequest {
    /// Generate a key set.
    KeyGen(KeyGenRequest),
    /// Generate a CRS.
    CrsGen(CrsGenRequest),
    /// Decrypt ciphertexts publicly.
    PublicDecrypt(PublicDecryptionRef),
    /// Decrypt ciphertexts to the requester's ML-KEM key.
    UserDecrypt(UserDecryptionRef),
    /// Refresh the shares of a key set (proactive security); `epoch` names the new epoch.
    Reshare {
        /// The key set.
        key_id: RequestId,
        /// The new epoch's label.
        epoch: String,
    },
}

impl KmsRequest {
    /// The 160-bit request ID, derived exactly as the KMS engine derives it.
    pub fn request_id(&self) -> RequestId {
        match self {
            Self::KeyGen(r) => r.request_id(),
            Self::CrsGen(r) => r.request_id(),
            Self::PublicDecrypt(r) => r.request_id(),
            Self::UserDecrypt(r) => r.request_id(),
            Self::Reshare { key_id, epoch } => {
                let mut enc = kms_types::CanonicalEncoder::new();
                enc.fixed(key_id.as_bytes()).str(epoch);
                RequestId::derive("kms/reshare/v1", &enc.finish())
            }
        }
    }

    /// Short name of the kind, used in events.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::KeyGen(_) => "keygen",
            Self::CrsGen(_) => "crsgen",
            Self::PublicDecrypt(_) => "public-decrypt",
            Self::UserDecrypt(_) => "user-decrypt",
            Self::Reshare { .. } => "reshare",
        }
    }
}

/// One item of public material a party reports for a keygen or CRS request: the storage data type
/// and the SHA3-256 digest, signed as an EIP-712 `PublicMaterial`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialItem {
    /// Storage data type name (e.g. `PublicKey`).
    pub data_type: String,
    /// SHA3-256 of the bytes.
    pub digest: [u8; 32],
    /// EIP-712 signature of `PublicMaterial{requestId, dataType, digest}`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl MaterialItem {
    /// Signs the handle `(request_id, data_type, digest)` with a party's key.
    pub fn signed(
        key: &SigningKey,
        domain: &kms_eip712::DomainConfig,
        request_id: &RequestId,
        data_type: &str,
        digest: [u8; 32],
    ) -> Result<Self, kms_eip712::Eip712Error> {
        let value = kms_eip712::types::PublicMaterial::new(request_id, data_type, digest);
        Ok(Self {
            data_type: data_type.to_string(),
            digest,
            signature: key.sign(domain, &value)?.0.to_vec(),
        })
    }
}

/// A party's response to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fulfillment {
    /// Public decryption: the plaintext words (as signed in `PublicDecryptionResult`) and the
    /// party's EIP-712 signature.
    PublicDecryption {
        /// One 32-byte big-endian word per ciphertext.
        #[serde(with = "serde_bytes")]
        plaintexts: Vec<u8>,
        /// 65-byte signature.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// User decryption: the envelope for the client (forwarded as is) and the party's EIP-712
    /// signature of `UserDecryptionResponse{requestId, clientKeyDigest, envelopeDigest}`.
    UserDecryption {
        /// The signcrypted share.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
        /// 65-byte signature.
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Keygen or CRS generation: the public material produced.
    Material {
        /// The items, in a fixed order.
        items: Vec<MaterialItem>,
    },
    /// Resharing finished for this party, with the digest of its verdict (which dealers it
    /// accepted and the new sharing's consistency-check digest); the request completes on n − t
    /// matching digests.
    ReshareDone {
        /// Digest of the party's resharing verdict.
        verdict_digest: [u8; 32],
    },
    /// CRS ceremony: the party whose turn it is proposes its contribution (SHA3-256 of the
    /// bytes its host publishes); it counts as its own valid vote.
    CrsContribution {
        /// The turn (0-based position in the party set).
        turn: u32,
        /// SHA3-256 of the contribution.
        digest: [u8; 32],
    },
    /// CRS ceremony: a party's verdict on the current proposal, after checking it on top of the
    /// transcript the chain decided.
    CrsVote {
        /// The turn.
        turn: u32,
        /// The proposal voted on.
        digest: [u8; 32],
        /// Whether it passed every check.
        valid: bool,
    },
}

/// An administrative change to the config contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigUpdate {
    /// Replace the party set and threshold (checked: n ≥ 3t + 1, distinct indices and signers).
    SetParties {
        /// The parties.
        parties: Vec<Party>,
        /// The threshold t.
        threshold: u32,
    },
    /// Replace the fee schedule.
    SetFees(FeeSchedule),
    /// Add an admin.
    AddAdmin(Address),
    /// Remove an admin (the last admin cannot be removed).
    RemoveAdmin(Address),
    /// Allow an application to decrypt under a key set.
    AllowKeyForApp {
        /// The key set (a completed keygen).
        key_id: RequestId,
        /// The application.
        app_id: AppId,
    },
    /// Withdraw an application's right to a key set.
    DisallowKeyForApp {
        /// The key set.
        key_id: RequestId,
        /// The application.
        app_id: AppId,
    },
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Mint test tokens to the sender (at most the configured faucet amount per call).
    Faucet {
        /// Amount to mint.
        amount: u128,
    },
    /// Move tokens.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount.
        amount: u128,
    },
    /// Change the configuration (admins only).
    UpdateConfig(ConfigUpdate),
    /// Register an application (config admins only); `admin` manages its ACL.
    CreateApplication {
        /// The new application's ID.
        app_id: AppId,
        /// Who manages its ACL.
        admin: Address,
    },
    /// Allow `addresses` to decrypt `handles` (ciphertext digests) of an application. A handle
    /// not owned yet becomes the application's; a handle owned by another application is refused.
    AclGrant {
        /// Application.
        app_id: AppId,
        /// Ciphertext digests.
        handles: Vec<[u8; 32]>,
        /// Allowed addresses.
        addresses: Vec<Address>,
    },
    /// Withdraw permissions.
    AclRevoke {
        /// Application.
        app_id: AppId,
        /// Ciphertext digests.
        handles: Vec<[u8; 32]>,
        /// Addresses.
        addresses: Vec<Address>,
    },
    /// Submit a request to the ASC on behalf of an application.
    Request {
        /// Application (its ISC decides).
        app_id: AppId,
        /// The request.
        request: KmsRequest,
    },
    /// A party's response (sender must be a registered party).
    Fulfill {
        /// The request.
        request_id: RequestId,
        /// The response.
        fulfillment: Fulfillment,
    },
    /// Expire a request that did not complete within
    /// [`crate::state::REQUEST_TIMEOUT_BLOCKS`] of its approval (anyone may send it; the fee
    /// goes back to the requester).
    Expire {
        /// The request.
        request_id: RequestId,
    },
    /// Skip a CRS ceremony turn that was not decided within
    /// [`crate::state::CRS_TURN_BLOCKS`] of its start (anyone may send it).
    CrsSkipTurn {
        /// The CRS generation request.
        request_id: RequestId,
        /// The turn.
        turn: u32,
    },
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBody {
    /// Chain the transaction is for.
    pub chain_id: String,
    /// The sender's account nonce (starts at 0; each accepted transaction increments it).
    pub nonce: u64,
    /// What to do.
    pub msg: Msg,
}

/// A transaction on the wire: CBOR body bytes and a recoverable signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    /// CBOR of [`TxBody`].
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// 65-byte `r ‖ s ‖ v` signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why a transaction is rejected before execution.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxDecodeError {
    /// Too large.
    #[error("transaction is {0} bytes, over the {MAX_TX_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a well-formed transaction.
    #[error("malformed transaction: {0}")]
    Malformed(#[from] CodecError),
    /// Signature malformed or not recoverable.
    #[error("bad transaction signature: {0}")]
    BadSignature(String),
    /// Signed for another chain.
    #[error("transaction is for chain {got:?}, this is {expected:?}")]
    WrongChain {
        /// In the transaction.
        got: String,
        /// This chain.
        expected: String,
    },
}

fn signing_hash(chain_id: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"kms-chain-tx/v1");
    h.update((chain_id.len() as u32).to_be_bytes());
    h.update(chain_id.as_bytes());
    h.update(body);
    h.finalize().into()
}

/// The ABCI code of a transaction whose nonce is not its sender's next (a replay or a gap).
/// A sender that sees it knows its idea of the next nonce is stale; every other refusal by
/// CheckTx leaves the nonce unused.
pub const CODE_BAD_NONCE: u32 = 4;

/// The log of a [`CODE_BAD_NONCE`] refusal: it names the sender's next nonce as CheckTx counts
/// it (pending transactions included), which committed state does not show.
pub fn bad_nonce_log(expected: u64, got: u64) -> String {
    format!("bad nonce: expected {expected}, got {got}")
}

/// The next nonce a [`bad_nonce_log`] names, if `log` is one.
pub fn bad_nonce_expected(log: &str) -> Option<u64> {
    let rest = log.strip_prefix("bad nonce: expected ")?;
    rest.split(',').next()?.trim().parse().ok()
}

/// Builds and signs a transaction.
pub fn sign_tx(key: &SigningKey, chain_id: &str, nonce: u64, msg: Msg) -> Vec<u8> {
    let body = codec::encode(&TxBody {
        chain_id: chain_id.to_string(),
        nonce,
        msg,
    });
    let sig = key
        .sign_prehash(&signing_hash(chain_id, &body))
        .map(|s| s.0.to_vec())
        .unwrap_or_default();
    codec::encode(&SignedTx {
        body,
        signature: sig,
    })
}

/// A decoded, signature-checked transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    /// The sender (recovered from the signature).
    pub sender: Address,
    /// The body.
    pub body: TxBody,
}

/// Decodes a transaction and recovers its sender; checks the chain ID.
pub fn decode_tx(bytes: &[u8], chain_id: &str) -> Result<VerifiedTx, TxDecodeError> {
    if bytes.len() > MAX_TX_BYTES {
        return Err(TxDecodeError::TooLarge(bytes.len()));
    }
    let signed: SignedTx = codec::decode(bytes)?;
    let body: TxBody = codec::decode(&signed.body)?;
    if body.chain_id != chain_id {
        return Err(TxDecodeError::WrongChain {
            got: body.chain_id,
            expected: chain_id.to_string(),
        });
    }
    let sig = Signature::from_slice(&signed.signature)
        .map_err(|e| TxDecodeError::BadSignature(e.to_string()))?;
    let sender = kms_eip712::recover_prehash(&signing_hash(chain_id, &signed.body), &sig)
        .map_err(|e| TxDecodeError::BadSignature(e.to_string()))?;
    Ok(VerifiedTx { sender, body })
}

/// The config a genesis file carries (`app_state` of CometBFT's genesis).
pub type GenesisState = Config;

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::random(&mut rand::thread_rng())
    }

    #[test]
    fn sign_and_recover() {
        let k = key();
        let tx = sign_tx(&k, "c", 3, Msg::Faucet { amount: 5 });
        let v = decode_tx(&tx, "c").unwrap();
        assert_eq!(v.sender, k.address());
        assert_eq!(v.body.nonce, 3);
        assert_eq!(v.body.msg, Msg::Faucet { amount: 5 });
    }

    #[test]
    fn rejects_other_chain_tampering_and_garbage() {
        let k = key();
        let tx = sign_tx(&k, "c", 0, Msg::Faucet { amount: 5 });
        assert!(matches!(
            decode_tx(&tx, "d"),
            Err(TxDecodeError::WrongChain { .. })
        ));
        // Tampering with the body changes the recovered sender (or breaks the encoding).
        let mut signed: SignedTx = codec::decode(&tx).unwrap();
        let mut body: TxBody = codec::decode(&signed.body).unwrap();
        body.msg = Msg::Faucet { amount: 6 };
        signed.body = codec::encode(&body);
        let forged = codec::encode(&signed);
        match decode_tx(&forged, "c") {
            Ok(v) => assert_ne!(v.sender, k.address()),
            Err(e) => assert!(matches!(e, TxDecodeError::BadSignature(_))),
        }
        assert!(matches!(
            decode_tx(b"\xff\x00garbage", "c"),
            Err(TxDecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_tx(&vec![0u8; MAX_TX_BYTES + 1], "c"),
            Err(TxDecodeError::TooLarge(_))
        ));
        let mut trailing = tx.clone();
        trailing.push(0);
        assert!(matches!(
            decode_tx(&trailing, "c"),
            Err(TxDecodeError::Malformed(_))
        ));
    }

    #[test]
    fn app_ids() {
        assert!(valid_app_id("fhevm-1"));
        assert!(!valid_app_id(""));
        assert!(!valid_app_id("Upper"));
        assert!(!valid_app_id(&"a".repeat(65)));
    }
}
