//! AES-256-GCM sealing under a data key, with the object's context as associated data.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use zeroize::Zeroizing;

/// Why a blob could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    /// The sealed blob is not authentic for this key and context (tampered, another party's,
    /// another name's, sealed under another data key).
    #[error("sealed blob does not open for {0}")]
    Unseal(String),
    /// Sealing failed.
    #[error("sealing failed")]
    Seal,
}

/// AES-256-GCM sealing under a data key.
pub struct AeadSealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for AeadSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadSealer(<key>)")
    }
}

const NONCE_BYTES: usize = 12;

impl AeadSealer {
    /// A sealer under `key`.
    pub fn new(key: &Zeroizing<[u8; 32]>) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.as_slice().into()),
        }
    }

    /// `nonce ‖ AES-256-GCM(plaintext, aad = context)`, with a random 96-bit nonce.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| AeadError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a blob sealed for `context`.
    pub fn unseal(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, AeadError> {
        let (nonce, ct) = sealed
            .split_first_chunk::<NONCE_BYTES>()
            .ok_or_else(|| AeadError::Unseal(context.into()))?;
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| AeadError::Unseal(context.into()))
    }
}
