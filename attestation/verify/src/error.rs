//! Attestation errors: one variant per reason, so callers and auditors see exactly what failed.

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// Not a COSE_Sign1 structure as the NSM produces it.
    #[error("malformed COSE_Sign1: {0}")]
    Cose(String),
    /// The payload is not a valid attestation document.
    #[error("malformed attestation document: {0}")]
    Document(String),
    /// A certificate does not parse.
    #[error("certificate {index} does not parse: {reason}")]
    Certificate {
        /// Position in the chain (0 = root).
        index: usize,
        /// The parser's reason.
        reason: String,
    },
    /// The bundle does not start with the pinned root.
    #[error("the CA bundle does not start with the pinned root (got SHA-256 {0})")]
    UntrustedRoot(String),
    /// A certificate's signature does not verify under its issuer.
    #[error("certificate {0} is not signed by its issuer")]
    BadCertificateSignature(usize),
    /// Issuer/subject names do not chain.
    #[error("certificate {0}'s issuer is not the subject of the certificate before it")]
    NameChain(usize),
    /// A CA certificate lacks CA rights, or the leaf claims them.
    #[error("certificate {index}: {reason}")]
    Constraints {
        /// Position in the chain.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A certificate is not valid at the verification time.
    #[error("certificate {index} is not valid at {now_s} (valid {not_before_s}..{not_after_s}, Unix seconds)")]
    Expired {
        /// Position in the chain.
        index: usize,
        /// Verification time.
        now_s: u64,
        /// Start of validity.
        not_before_s: u64,
        /// End of validity.
        not_after_s: u64,
    },
    /// Unsupported algorithm or key type.
    #[error("unsupported algorithm: {0}")]
    Algorithm(String),
    /// The COSE signature does not verify under the leaf key.
    #[error("the document signature does not verify")]
    BadSignature,
    /// The document is older than the policy allows.
    #[error("document is {age_s} s old, the policy allows {max_s} s")]
    TooOld {
        /// Age.
        age_s: u64,
        /// Limit.
        max_s: u64,
    },
    /// The document's timestamp is in the future.
    #[error("document timestamp is {0} s in the future")]
    FromTheFuture(u64),
    /// Debug-mode enclave (PCR0/1/2 all zero) under a policy that forbids it.
    #[error("debug-mode enclave (PCR0/1/2 are zero): rejected by this policy")]
    DebugMode,
    /// The PCRs match no trusted release.
    #[error("PCRs match no trusted release (PCR0 {0})")]
    UntrustedPcrs(String),
    /// A required binding (nonce, public key, user data) is missing or different.
    #[error("{0} does not match what the policy requires")]
    Binding(&'static str),
}
