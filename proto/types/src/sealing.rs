//! Sealing of private material.

/// A sealing failure.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The blob is not sealed by this sealer, was tampered with, or is for another context.
    #[error("sealed blob rejected: {0}")]
    Rejected(String),
    /// The sealing service failed.
    #[error("sealing backend error: {0}")]
    Backend(String),
}

/// Seals private blobs before they leave the enclave.
///
/// Production seals with AWS KMS under a key policy bound to the enclave's attestation (PCRs);
/// developer mode uses a plaintext sealer that only frames the data. `context` (the storage path)
/// is bound into the seal so a blob cannot be replayed under another name.
#[async_trait::async_trait]
pub trait Sealer: Send + Sync {
    /// A short name for logs (e.g. `plaintext-dev`, `aws-kms`).
    fn name(&self) -> &'static str;
    /// Seals `plaintext` for `context`.
    async fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError>;
    /// Unseals a blob for `context`.
    async fn unseal(
        &self,
        context: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError>;
}
