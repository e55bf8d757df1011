//! Why a transaction is rejected, with its ABCI code. A rejected transaction changes nothing.

use kms_chain_types::tx::TxDecodeError;

/// A rejected transaction. `code()` is the ABCI result code (0 is success, never used here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Undecodable, oversized, or a field out of range.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The transaction signature does not recover.
    #[error("bad transaction signature: {0}")]
    BadSignature(String),
    /// Signed for another chain.
    #[error("{0}")]
    WrongChain(String),
    /// The nonce is not the sender's next nonce (replay or gap).
    #[error("{}", kms_chain_types::tx::bad_nonce_log(*expected, *got))]
    BadNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// Not enough tokens for the fee or transfer.
    #[error("insufficient funds: need {need}, have {have}")]
    InsufficientFunds {
        /// Required.
        need: u128,
        /// Available.
        have: u128,
    },
    /// The sender may not do this (not an admin, not the application's admin).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The application's ISC denied the request.
    #[error("denied by the application's ISC: {0}")]
    IscDenied(String),
    /// A request with this ID already exists.
    #[error("duplicate request {0}")]
    DuplicateRequest(String),
    /// A fulfillment from an address that is not a registered party.
    #[error("sender {0} is not a KMS party")]
    NotParty(String),
    /// A fulfillment whose EIP-712 signature is not the party's.
    #[error("bad result signature: {0}")]
    BadResultSignature(String),
    /// No such request, application or key.
    #[error("not found: {0}")]
    NotFound(String),
    /// The party already responded, or the request is complete.
    #[error("response not accepted: {0}")]
    ResponseRejected(String),
    /// Semantically invalid (e.g. an invalid config, an application that exists).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Only the config contract's governance (admins) may register an application.
    #[error("unauthorized application registration: {0}")]
    AppCreationUnauthorized(String),
    /// The ciphertext handle belongs to another application.
    #[error("handle owned by another application: {0}")]
    HandleOwnedByOtherApp(String),
    /// The application may not use this key set.
    #[error("key not allowed for application: {0}")]
    KeyNotAllowed(String),
    /// The node's mempool is full (globally, in bytes, or for this account).
    #[error("mempool full: {0}")]
    MempoolFull(String),
    /// The same transaction is already pending.
    #[error("transaction already in the mempool")]
    AlreadyInMempool,
    /// The application reached its state bound.
    #[error("application state limit: {0}")]
    AppStateLimit(String),
    /// Keygen with insecure test parameters on a chain that is not a developer chain.
    #[error("insecure parameters refused: {0}")]
    InsecureParams(String),
    /// The state is inconsistent (a bug, never caused by input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl TxError {
    /// The ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Self::Malformed(_) => 1,
            Self::BadSignature(_) => 2,
            Self::WrongChain(_) => 3,
            Self::BadNonce { .. } => kms_chain_types::tx::CODE_BAD_NONCE,
            Self::InsufficientFunds { .. } => 5,
            Self::Unauthorized(_) => 6,
            Self::IscDenied(_) => 7,
            Self::DuplicateRequest(_) => 8,
            Self::NotParty(_) => 9,
            Self::BadResultSignature(_) => 10,
            Self::NotFound(_) => 11,
            Self::ResponseRejected(_) => 12,
            Self::Invalid(_) => 13,
            Self::AppCreationUnauthorized(_) => 14,
            Self::HandleOwnedByOtherApp(_) => 15,
            Self::KeyNotAllowed(_) => 16,
            Self::MempoolFull(_) => 18,
            Self::AlreadyInMempool => 19,
            Self::AppStateLimit(_) => 20,
            Self::InsecureParams(_) => 21,
            Self::Internal(_) => 99,
        }
    }
}

impl From<TxDecodeError> for TxError {
    fn from(e: TxDecodeError) -> Self {
        match e {
            TxDecodeError::TooLarge(_) | TxDecodeError::Malformed(_) => {
                Self::Malformed(e.to_string())
            }
            TxDecodeError::BadSignature(s) => Self::BadSignature(s),
            TxDecodeError::WrongChain { .. } => Self::WrongChain(e.to_string()),
        }
    }
}

/// The codespace reported with every error.
pub const CODESPACE: &str = "kms";

#[cfg(test)]
mod tests {
    use super::*;

    /// Hosts read the account's next nonce back from a bad-nonce refusal's log.
    #[test]
    fn a_bad_nonce_refusal_names_the_next_nonce_in_a_form_hosts_read() {
        let e = TxError::BadNonce {
            expected: 7,
            got: 12,
        };
        assert_eq!(e.code(), kms_chain_types::tx::CODE_BAD_NONCE);
        assert_eq!(
            kms_chain_types::tx::bad_nonce_expected(&e.to_string()),
            Some(7)
        );
        assert_eq!(
            kms_chain_types::tx::bad_nonce_expected("response not accepted"),
            None
        );
    }
}
