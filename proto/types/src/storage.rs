//! The storage interface and the layout of stored objects.
//!
//! Objects are addressed by `<visibility>/<DataType>/<request_id>`; a public object's URI is
//! `<base>/PUB/<DataType>/<request_id>`, so it can be derived from a handle alone.

use crate::RequestId;
use std::fmt;

/// Whether an object is public material or a sealed private blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Public material, served to anyone (`PUB`).
    Public,
    /// Sealed private material, only meaningful to the enclave that sealed it (`PRIV`).
    Private,
}

impl Visibility {
    /// The path component.
    pub const fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "PUB",
            Visibility::Private => "PRIV",
        }
    }
}

/// What a stored object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DataType {
    /// tfhe `ServerKey` (includes the noise-squashing key), safe-serialized.
    ServerKey,
    /// tfhe `CompactPublicKey`, safe-serialized.
    PublicKey,
    /// tfhe `CompactPkeCrs`, safe-serialized.
    Crs,
    /// Sealed private key material of one key set.
    FheKeyInfo,
    /// Sealed secp256k1 signing key of this party.
    SigningKey,
    /// Signed record of a finished key generation (handles), private bookkeeping.
    KeyGenRecord,
    /// Signed record of a finished CRS generation, private bookkeeping.
    CrsRecord,
    /// Record of a finished decryption (its signed result), so that the in-memory request table
    /// can stay bounded and a repeated request still gets the same answer.
    DecryptionRecord,
}

impl DataType {
    /// Every data type.
    pub const ALL: [DataType; 8] = [
        DataType::ServerKey,
        DataType::PublicKey,
        DataType::Crs,
        DataType::FheKeyInfo,
        DataType::SigningKey,
        DataType::KeyGenRecord,
        DataType::CrsRecord,
        DataType::DecryptionRecord,
    ];

    /// The path component and the `dataType` string in signed handles.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::ServerKey => "ServerKey",
            DataType::PublicKey => "PublicKey",
            DataType::Crs => "CRS",
            DataType::FheKeyInfo => "FheKeyInfo",
            DataType::SigningKey => "SigningKey",
            DataType::KeyGenRecord => "KeyGenRecord",
            DataType::CrsRecord => "CrsRecord",
            DataType::DecryptionRecord => "DecryptionRecord",
        }
    }

    /// The largest size a public object of this type can have, so that a reader never buffers
    /// more than that from an untrusted store; `None` for private types. Measured on the
    /// `default` parameters: compressed server key with noise squashing and compression keys
    /// 377,161,198 bytes (360 MiB), compact public key 33,038 bytes, CRS for `MAX_CRS_BITS` =
    /// 4096 bits 5,824,744 bytes; the bounds leave 2–4× of room.
    pub const fn max_public_bytes(self) -> Option<u64> {
        match self {
            DataType::ServerKey => Some(SERVER_KEY_MAX_BYTES),
            DataType::PublicKey => Some(PUBLIC_KEY_MAX_BYTES),
            DataType::Crs => Some(CRS_MAX_BYTES),
            DataType::FheKeyInfo
            | DataType::SigningKey
            | DataType::KeyGenRecord
            | DataType::CrsRecord
            | DataType::DecryptionRecord => None,
        }
    }

    /// Parses [`DataType::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bound of [`DataType::ServerKey`] objects.
pub const SERVER_KEY_MAX_BYTES: u64 = 768 << 20;
/// Bound of [`DataType::PublicKey`] objects.
pub const PUBLIC_KEY_MAX_BYTES: u64 = 128 << 10;
/// Bound of [`DataType::Crs`] objects.
pub const CRS_MAX_BYTES: u64 = 16 << 20;

/// The address of one stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StorageKey {
    /// Public or private.
    pub visibility: Visibility,
    /// What it is.
    pub data_type: DataType,
    /// The request that produced it (or, for the signing key, the party's key ID).
    pub id: RequestId,
}

impl StorageKey {
    /// A public object.
    pub const fn public(data_type: DataType, id: RequestId) -> Self {
        Self {
            visibility: Visibility::Public,
            data_type,
            id,
        }
    }
    /// A private object.
    pub const fn private(data_type: DataType, id: RequestId) -> Self {
        Self {
            visibility: Visibility::Private,
            data_type,
            id,
        }
    }
    /// `<PUB|PRIV>/<DataType>/<id>`.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}",
            self.visibility.as_str(),
            self.data_type.as_str(),
            self.id
        )
    }
    /// The URI of this object below `base` (no trailing slash expected; one is tolerated).
    pub fn uri(&self, base: &str) -> String {
        format!("{}/{}", base.trim_end_matches('/'), self.path())
    }
    /// Parses [`StorageKey::path`].
    pub fn parse_path(path: &str) -> Option<Self> {
        let mut it = path.split('/');
        let vis = match it.next()? {
            "PUB" => Visibility::Public,
            "PRIV" => Visibility::Private,
            _ => return None,
        };
        let data_type = DataType::parse(it.next()?)?;
        let id = RequestId::parse(it.next()?).ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(Self {
            visibility: vis,
            data_type,
            id,
        })
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend failed (I/O, network, service error).
    #[error("storage backend error on {key}: {message}")]
    Backend {
        /// The object path.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// An object exists with different content: storage is write-once per key.
    #[error("storage object {0} already exists with different content")]
    Conflict(String),
    /// The URI does not belong to this backend or is malformed.
    #[error("bad storage URI {0}")]
    BadUri(String),
    /// The object is larger than the reader accepts.
    #[error("storage object {key} is larger than {limit} bytes")]
    TooLarge {
        /// The object path or URI.
        key: String,
        /// The limit.
        limit: u64,
    },
}

/// Object storage. Objects are immutable: writing the same bytes again is a no-op, writing
/// different bytes under an existing key is [`StorageError::Conflict`].
///
/// Backends (filesystem, S3) live in the untrusted host; the enclave verifies what it reads back
/// (digests for public material, authenticated sealing for private blobs).
#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Stores an object.
    async fn put(&self, key: &StorageKey, data: &[u8]) -> Result<(), StorageError>;
    /// Reads an object; `None` if absent.
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError>;
    /// Lists the IDs stored under one visibility and data type.
    async fn list(
        &self,
        visibility: Visibility,
        data_type: DataType,
    ) -> Result<Vec<RequestId>, StorageError>;
    /// The base URI (`file:///…`, `s3://bucket/prefix`); an object's URI is
    /// [`StorageKey::uri`] of it.
    fn base_uri(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_round_trip() {
        let id = RequestId::derive("x", b"y");
        for d in DataType::ALL {
            for k in [StorageKey::public(d, id), StorageKey::private(d, id)] {
                assert_eq!(StorageKey::parse_path(&k.path()), Some(k));
            }
        }
        assert_eq!(StorageKey::parse_path("PUB/ServerKey"), None);
        assert_eq!(
            StorageKey::public(DataType::ServerKey, id).uri("file:///a/"),
            format!("file:///a/PUB/ServerKey/{id}")
        );
    }
}
