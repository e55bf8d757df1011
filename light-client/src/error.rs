use tendermint_light_client_verifier::errors::VerificationErrorDetail as D;

/// Why the light client refuses something. Each attack has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A commit signature does not verify.
    #[error("forged or invalid commit signature by validator {validator}")]
    InvalidSignature {
        /// The validator's address.
        validator: String,
    },
    /// One validator's vote counted twice (GHSA-6jrf-4jv4-r9mw).
    #[error("duplicate vote by validator {validator}")]
    DuplicateVote {
        /// The validator's address.
        validator: String,
    },
    /// Less than 2/3 of the block's own validator set signed it.
    #[error("commit has less than 2/3 of the voting power: {tally}")]
    InsufficientVotingPower {
        /// Signed / total.
        tally: String,
    },
    /// Skipping verification: the trusted validators that signed are below the trust threshold
    /// (the validator set changed too much since the trusted header).
    #[error("validator set changed beyond the trust threshold: {tally}")]
    NotEnoughTrust {
        /// Signed by trusted validators / total trusted.
        tally: String,
    },
    /// The header is for another chain.
    #[error("header is for chain {got:?}, expected {expected:?}")]
    ChainIdMismatch {
        /// In the header.
        got: String,
        /// Trusted.
        expected: String,
    },
    /// The header's time is beyond `now` plus the allowed clock drift.
    #[error("header time {header_time} is in the future (now {now})")]
    HeaderFromFuture {
        /// Header time.
        header_time: String,
        /// The caller's time.
        now: String,
    },
    /// The trusted header is older than the trusting period.
    #[error("trusted state expired at {expires_at} (now {now})")]
    TrustingPeriodExpired {
        /// Expiry.
        expires_at: String,
        /// The caller's time.
        now: String,
    },
    /// The validator set supplied does not hash to the header's (next) validators hash, or an
    /// adjacent header's validators are not the trusted next validators.
    #[error("validator set does not match the header: {0}")]
    ValidatorSetMismatch(String),
    /// The commit is for another block than the header.
    #[error("commit is for block {commit_hash}, header hashes to {header_hash}")]
    CommitMismatch {
        /// Header hash.
        header_hash: String,
        /// Block ID in the commit.
        commit_hash: String,
    },
    /// The new header is not newer than the trusted one (height or time).
    /// State proven under a header older than the caller accepts.
    #[error("state proven under a header {age_s}s old (at most {max_s}s)")]
    StaleState {
        /// The header's age, seconds.
        age_s: u64,
        /// The largest accepted age, seconds.
        max_s: u64,
    },
    #[error("header does not move forward: {0}")]
    NotMonotonic(String),
    /// The commit is malformed (no signatures, wrong length, unknown signer...).
    #[error("malformed commit: {0}")]
    MalformedCommit(String),
    /// The genesis anchor is not at the chain's first height.
    #[error("anchor header is at height {got}, the chain starts at {expected}")]
    WrongInitialHeight {
        /// Header height.
        got: u64,
        /// Expected.
        expected: u64,
    },
    /// A transaction proof is malformed (index/total/aunts inconsistent).
    #[error("malformed transaction proof: {0}")]
    TxProofMalformed(String),
    /// The proof is for other transaction bytes.
    #[error("transaction proof is for other data")]
    TxProofDataMismatch,
    /// The proof does not lead to the header's data hash.
    #[error("transaction is not included under data hash {data_hash}")]
    TxNotIncluded {
        /// The verified header's data hash.
        data_hash: String,
    },
    /// A state proof could not be decoded or has the wrong shape.
    #[error("malformed state proof: {0}")]
    StateProofMalformed(String),
    /// The proof is for another key.
    #[error("state proof is for another key")]
    StateProofKeyMismatch,
    /// The proof is for another value.
    #[error("state proof is for another value")]
    StateProofValueMismatch,
    /// The proof does not lead to the header's app hash (e.g. another height's state).
    #[error("state proof does not lead to app hash {app_hash}")]
    StateProofRootMismatch {
        /// The verified header's app hash.
        app_hash: String,
    },
    /// The proof computes the right root but violates the store's proof spec.
    #[error("state proof violates the store's ICS23 spec")]
    StateProofSpecViolation,
    /// The proven record does not decode.
    #[error("proven record is malformed: {0}")]
    RecordMalformed(String),
    /// The proven record is not the request asked about.
    #[error("proven record is for request {got}, expected {expected}")]
    RequestMismatch {
        /// In the record.
        got: String,
        /// Asked about.
        expected: String,
    },
}

impl Error {
    pub(crate) fn from_verification(d: D) -> Self {
        match d {
            D::InvalidSignature(e) => Error::InvalidSignature {
                validator: e.validator.address.to_string(),
            },
            D::DuplicateValidator(e) => Error::DuplicateVote {
                validator: e.address.to_string(),
            },
            D::InsufficientSignersOverlap(e) => Error::InsufficientVotingPower {
                tally: e.tally.to_string(),
            },
            D::NotEnoughTrust(e) => Error::NotEnoughTrust {
                tally: e.tally.to_string(),
            },
            D::ChainIdMismatch(e) => Error::ChainIdMismatch {
                got: e.got,
                expected: e.expected,
            },
            D::HeaderFromTheFuture(e) => Error::HeaderFromFuture {
                header_time: e.header_time.to_string(),
                now: e.now.to_string(),
            },
            D::NotWithinTrustPeriod(e) => Error::TrustingPeriodExpired {
                expires_at: e.expires_at.to_string(),
                now: e.now.to_string(),
            },
            D::InvalidValidatorSet(e) => Error::ValidatorSetMismatch(format!(
                "header validators_hash {} vs set {}",
                e.header_validators_hash, e.validators_hash
            )),
            D::InvalidNextValidatorSet(e) => Error::ValidatorSetMismatch(format!(
                "header next_validators_hash {} vs set {}",
                e.header_next_validators_hash, e.next_validators_hash
            )),
            D::InvalidCommitValue(e) => Error::CommitMismatch {
                header_hash: e.header_hash.to_string(),
                commit_hash: e.commit_hash.to_string(),
            },
            D::NonIncreasingHeight(e) => {
                Error::NotMonotonic(format!("height {} after {}", e.got, e.expected))
            }
            D::NonMonotonicBftTime(e) => Error::NotMonotonic(format!(
                "time {} after {}",
                e.header_bft_time, e.trusted_header_bft_time
            )),
            other => Error::MalformedCommit(other.to_string()),
        }
    }
}
