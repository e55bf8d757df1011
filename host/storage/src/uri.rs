//! Fetching public material by URI.

use crate::{S3Config, S3Storage};
use kms_types::StorageError;

/// Reads the object a `file://` or `s3://bucket/key` URI names. The caller verifies the bytes
/// against a signed handle before use.
pub async fn fetch_uri(uri: &str, s3: Option<&S3Config>) -> Result<Vec<u8>, StorageError> {
    if let Some(path) = uri.strip_prefix("file://") {
        return tokio::fs::read(path)
            .await
            .map_err(|e| StorageError::Backend {
                key: uri.to_string(),
                message: e.to_string(),
            });
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
            .get_object(key)
            .await?
            .ok_or_else(|| StorageError::Backend {
                key: uri.to_string(),
                message: "no such object".into(),
            });
    }
    Err(StorageError::BadUri(uri.to_string()))
}
