//! A content-addressed blob store on the filesystem (the KV-store's role for one host).

use kms_types::sha3_256;
use std::path::PathBuf;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Filesystem error.
    #[error("blob store {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The stored bytes do not hash to the name they are stored under.
    #[error("blob {0} does not match its digest")]
    Corrupt(String),
}

/// Blobs named by their SHA3-256 digest under one folder.
#[derive(Clone, Debug)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, digest: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(digest))
    }

    /// Stores `bytes`; returns their digest.
    pub async fn put(&self, bytes: &[u8]) -> Result<[u8; 32], BlobError> {
        let digest = sha3_256(bytes);
        let path = self.path(&digest);
        let io = |source| BlobError::Io {
            path: path.display().to_string(),
            source,
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(digest)
    }

    /// `len` bytes from `offset` of the blob with this digest, and its total length (`None` if
    /// absent). Not checked here: the reader checks the assembled blob's digest.
    pub async fn get_range(
        &self,
        digest: &[u8; 32],
        offset: u64,
        len: u32,
    ) -> Result<Option<(u64, Vec<u8>)>, BlobError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path(digest);
        let io = |source| BlobError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let total = f.metadata().await.map_err(io)?.len();
        let start = offset.min(total);
        let n = (total - start).min(u64::from(len));
        f.seek(std::io::SeekFrom::Start(start)).await.map_err(io)?;
        let mut bytes = vec![0u8; n as usize];
        f.read_exact(&mut bytes).await.map_err(io)?;
        Ok(Some((total, bytes)))
    }

    /// The blob with this digest, if stored and intact.
    pub async fn get(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path(digest);
        match tokio::fs::read(&path).await {
            Ok(b) if sha3_256(&b) == *digest => Ok(Some(b)),
            Ok(_) => Err(BlobError::Corrupt(hex::encode(digest))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BlobError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}
