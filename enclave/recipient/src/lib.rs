//! The enclave's AWS KMS recipient key and the unwrapping of what KMS returns for it.
//!
//! With the `Recipient` parameter (`KeyEncryptionAlgorithm = RSAES_OAEP_SHA_256` and an
//! attestation document binding the enclave's RSA public key), AWS KMS answers `Decrypt` and
//! `GenerateDataKey` with no plaintext but a `CiphertextForRecipient`: a CMS EnvelopedData whose
//! content (the data key) is encrypted with AES-256-CBC under a content key that is
//! RSA-OAEP-encrypted to that public key. AWS sends it in BER with indefinite lengths
//! ([`ber`], [`cms`]).
//!
//! A [`RecipientKey`] is **one-shot**: [`RecipientKey::unwrap`] consumes it. A fresh RSA-2048
//! key serves each KMS call, so the host, which delivers the CMS, never gets a second query
//! against the same key: the AES-CBC content is not authenticated, and a key that could be
//! asked repeatedly would be a padding oracle on it. The private key lives in AWS-LC (constant
//! time RSA), whose allocator cleanses memory on free; the unwrapped content key and data key
//! are zeroized on drop.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod ber;
pub mod cms;

use aws_lc_rs::cipher::{DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_256};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA256_MGF1SHA256,
};
use zeroize::Zeroizing;

/// Largest `CiphertextForRecipient` accepted (AWS's for a 32-byte data key is under 1 KiB).
pub const MAX_CMS_BYTES: usize = 64 * 1024;

/// Why a recipient key could not be made or a CMS message not unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    /// Key generation or encoding failed in AWS-LC.
    #[error("RSA key generation failed")]
    KeyGeneration,
    /// The message is larger than [`MAX_CMS_BYTES`].
    #[error("CMS message of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The message is not the EnvelopedData KMS sends.
    #[error("CMS: {0}")]
    Cms(#[from] cms::CmsError),
    /// The content key does not decrypt under this recipient key.
    #[error("the content key does not decrypt under this recipient key")]
    KeyTransport,
    /// The content does not decrypt (wrong key size, bad padding).
    #[error("the content does not decrypt")]
    Content,
    /// The content is not a data key of the expected length.
    #[error("a data key of {got} bytes where {want} were expected")]
    DataKeyLength {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
}

/// A one-shot RSA-2048 recipient key (see the crate docs).
pub struct RecipientKey {
    key: OaepPrivateDecryptingKey,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecipientKey(<RSA-2048, one-shot>)")
    }
}

impl RecipientKey {
    /// A fresh RSA-2048 key.
    pub fn generate() -> Result<Self, RecipientError> {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| RecipientError::KeyGeneration)?;
        let public_der = AsDer::<PublicKeyX509Der>::as_der(&private.public_key())
            .map_err(|_| RecipientError::KeyGeneration)?
            .as_ref()
            .to_vec();
        let key =
            OaepPrivateDecryptingKey::new(private).map_err(|_| RecipientError::KeyGeneration)?;
        Ok(Self { key, public_der })
    }

    /// The public key as DER SubjectPublicKeyInfo: what goes into the attestation document's
    /// `public_key` field.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// Unwraps a `CiphertextForRecipient`, consuming the key.
    pub fn unwrap(self, cms_bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, RecipientError> {
        if cms_bytes.len() > MAX_CMS_BYTES {
            return Err(RecipientError::TooLarge(cms_bytes.len()));
        }
        let envelope = cms::parse(cms_bytes)?;
        let mut cek_buf = Zeroizing::new(vec![0u8; self.key.min_output_size()]);
        let cek = self
            .key
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                &envelope.encrypted_key,
                &mut cek_buf,
                None,
            )
            .map_err(|_| RecipientError::KeyTransport)?;
        let cipher = UnboundCipherKey::new(&AES_256, cek)
            .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
            .map_err(|_| RecipientError::Content)?;
        let mut content = Zeroizing::new(envelope.encrypted_content);
        let plain = cipher
            .decrypt(
                &mut content,
                DecryptionContext::Iv128(FixedLength::from(envelope.iv)),
            )
            .map_err(|_| RecipientError::Content)?;
        Ok(Zeroizing::new(plain.to_vec()))
    }

    /// Unwraps a `CiphertextForRecipient` holding a 32-byte data key (`KeySpec = AES_256`).
    pub fn unwrap_data_key(self, cms_bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, RecipientError> {
        let plain = self.unwrap(cms_bytes)?;
        let key: [u8; 32] =
            plain
                .as_slice()
                .try_into()
                .map_err(|_| RecipientError::DataKeyLength {
                    got: plain.len(),
                    want: 32,
                })?;
        Ok(Zeroizing::new(key))
    }
}
