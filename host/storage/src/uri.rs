//! Fetching public material by URI.

use crate::{S3Config, S3Storage};
use kms_types::StorageError;
use tokio::io::AsyncReadExt;

/// Reads the object a `file://` or `s3://bucket/key` URI names, refusing one larger than
/// `limit` bytes without buffering more than `limit + 1` bytes of it. The caller verifies the
/// bytes against a signed handle before use.
pub async fn fetch_uri(
    uri: &str,
    s3: Option<&S3Config>,
    limit: u64,
) -> Result<Vec<u8>, StorageError> {
    let too_large = || StorageError::TooLarge {
        key: uri.to_string(),
        limit,
    };
    let backend = |e: &dyn std::fmt::Display| StorageError::Backend {
        key: uri.to_string(),
        message: e.to_string(),
    };
    if let Some(path) = uri.strip_prefix("file://") {
        let file = tokio::fs::File::open(path).await.map_err(|e| backend(&e))?;
        let mut out = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .await
            .map_err(|e| backend(&e))?;
        return if out.len() as u64 > limit {
            Err(too_large())
        } else {
            Ok(out)
        };
    }
    if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| StorageError::BadUri(uri.to_string()))?;
        let mut cfg = s3
            .cloned()
            .ok_or_else(|| StorageError::BadUri(format!("{uri}: no S3 settings given")))?;
        cfg.bucket = bucket.to_string();
        cfg.prefix = String::new();
        let store = S3Storage::new(cfg).await;
        return store
            .get_object_limited(key, limit)
            .await?
            .ok_or_else(|| backend(&"no such object"));
    }
    Err(StorageError::BadUri(uri.to_string()))
}
