//! Developer-mode providers: a plaintext "sealer" and signing-key bootstrap.

use kms_eip712::SigningKey;
use kms_types::{DataType, RequestId, SealError, Sealer, Storage, StorageKey};
use tracing::{info, warn};
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"KMS-DEV-PLAINTEXT-SEAL-V1\n";

/// Developer-mode sealing: **no encryption at all**. The blob is framed with its storage path so
/// that a blob moved to another path is refused, but anyone who can read the private folder can
/// read the keys. Production uses AWS KMS sealing bound to the enclave's attestation.
pub struct PlaintextSealer(());

impl PlaintextSealer {
    /// Creates the sealer and logs a warning saying what it means.
    pub fn new() -> Self {
        warn!("DEVELOPER MODE: private key material is stored UNENCRYPTED (plaintext sealer); never use this for real keys");
        Self(())
    }
}

impl Default for PlaintextSealer {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Sealer for PlaintextSealer {
    fn name(&self) -> &'static str {
        "plaintext-dev"
    }

    async fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + context.len() + plaintext.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(context.len() as u64).to_be_bytes());
        out.extend_from_slice(context.as_bytes());
        out.extend_from_slice(plaintext);
        Ok(out)
    }

    async fn unseal(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let rest = sealed
            .strip_prefix(MAGIC)
            .ok_or_else(|| SealError::Rejected("not a developer-mode sealed blob".into()))?;
        if rest.len() < 8 {
            return Err(SealError::Rejected("truncated".into()));
        }
        let (len, rest) = rest.split_at(8);
        let mut l = [0u8; 8];
        l.copy_from_slice(len);
        let len = usize::try_from(u64::from_be_bytes(l))
            .map_err(|_| SealError::Rejected("bad length".into()))?;
        if rest.len() < len || &rest[..len] != context.as_bytes() {
            return Err(SealError::Rejected(format!(
                "blob was sealed for another path than {context}"
            )));
        }
        Ok(Zeroizing::new(rest[len..].to_vec()))
    }
}

/// The storage ID of this party's signing key.
pub fn signing_key_id() -> RequestId {
    RequestId::derive("kms/signing-key", b"")
}

/// Loads the sealed signing key, or creates and stores one on first start.
pub async fn load_or_create_signing_key(
    private: &dyn Storage,
    sealer: &dyn Sealer,
) -> Result<SigningKey, crate::CoreError> {
    let key = StorageKey::private(DataType::SigningKey, signing_key_id());
    let internal = |e: &dyn std::fmt::Display| crate::CoreError::Internal(e.to_string());
    match private.get(&key).await.map_err(|e| internal(&e))? {
        Some(sealed) => {
            let raw = sealer
                .unseal(&key.path(), &sealed)
                .await
                .map_err(|e| internal(&e))?;
            let sk = SigningKey::from_bytes(&raw).map_err(|e| internal(&e))?;
            info!(address = %format!("0x{}", hex::encode(sk.address())), "loaded signing key");
            Ok(sk)
        }
        None => {
            let sk = SigningKey::random(&mut rand_core::OsRng);
            let sealed = sealer
                .seal(&key.path(), &sk.to_bytes())
                .await
                .map_err(|e| internal(&e))?;
            private.put(&key, &sealed).await.map_err(|e| internal(&e))?;
            info!(address = %format!("0x{}", hex::encode(sk.address())), "created signing key");
            Ok(sk)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plaintext_sealer_binds_context() {
        let s = PlaintextSealer::new();
        let sealed = s.seal("PRIV/A/x", b"secret").await.unwrap();
        assert_eq!(&*s.unseal("PRIV/A/x", &sealed).await.unwrap(), b"secret");
        assert!(s.unseal("PRIV/A/y", &sealed).await.is_err());
        assert!(s.unseal("PRIV/A/x", b"garbage").await.is_err());
        assert!(s
            .unseal("PRIV/A/x", &sealed[..MAGIC.len() + 3])
            .await
            .is_err());
    }

    #[tokio::test]
    async fn signing_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let st = kms_storage::FileStorage::new(dir.path()).unwrap();
        let s = PlaintextSealer::new();
        let a = load_or_create_signing_key(&st, &s).await.unwrap();
        let b = load_or_create_signing_key(&st, &s).await.unwrap();
        assert_eq!(a.address(), b.address());
    }
}
