//! An S3 bucket (AWS or any S3-compatible server).

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use kms_types::{DataType, RequestId, Storage, StorageError, StorageKey, Visibility};

/// Where the bucket is.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// Endpoint URL for S3-compatible servers (e.g. `http://127.0.0.1:5000`); `None` for AWS.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Static credentials; `None` uses the default AWS credential chain.
    pub credentials: Option<(String, String)>,
}

/// Objects stored under `s3://<bucket>/<prefix>/<PUB|PRIV>/<DataType>/<request_id>`.
#[derive(Clone, Debug)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

fn backend(key: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend {
        key: key.to_string(),
        message: e.to_string(),
    }
}

impl S3Storage {
    /// Connects (lazily: no request is sent until first use).
    pub async fn new(cfg: S3Config) -> Self {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(cfg.region.clone()));
        if let Some((id, secret)) = &cfg.credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "kms"));
        }
        let shared = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep).force_path_style(true);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            bucket: cfg.bucket,
            prefix: cfg.prefix.trim_matches('/').to_string(),
        }
    }

    /// Creates the bucket if it does not exist (developer mode and tests).
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(&self.bucket, aws_sdk_s3::error::DisplayErrorContext(e)))
    }

    fn object_key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}/{}", self.prefix, path)
        }
    }

    /// Deletes an object (operators' clean-up; the KMS itself never deletes material).
    pub async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let object_key = self.object_key(&key.path());
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(&object_key, aws_sdk_s3::error::DisplayErrorContext(e)))
    }

    /// Reads an object by its key inside the bucket.
    pub async fn get_object(&self, object_key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_object_limited(object_key, u64::MAX).await
    }

    /// Reads an object by its key inside the bucket, refusing one larger than `limit` bytes
    /// (by its announced length, and by what the body actually delivers).
    pub async fn get_object_limited(
        &self,
        object_key: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(object_key)
            .send()
            .await;
        let too_large = || StorageError::TooLarge {
            key: object_key.to_string(),
            limit,
        };
        match res {
            Ok(mut out) => {
                let announced = out.content_length().and_then(|l| u64::try_from(l).ok());
                if announced.is_some_and(|l| l > limit) {
                    return Err(too_large());
                }
                let mut body = Vec::new();
                while let Some(chunk) = out
                    .body
                    .try_next()
                    .await
                    .map_err(|e| backend(object_key, e))?
                {
                    if (body.len() as u64).saturating_add(chunk.len() as u64) > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(body))
            }
            Err(e) => {
                if e.as_service_error().map(|s| s.is_no_such_key()) == Some(true) {
                    Ok(None)
                } else {
                    Err(backend(
                        object_key,
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ))
                }
            }
        }
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, key: &StorageKey, data: &[u8]) -> Result<(), StorageError> {
        let object_key = self.object_key(&key.path());
        if let Some(existing) = self.get_object(&object_key).await? {
            return if existing == data {
                Ok(())
            } else {
                Err(StorageError::Conflict(key.path()))
            };
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&object_key)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(&object_key, aws_sdk_s3::error::DisplayErrorContext(e)))
    }

    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        self.get_object(&self.object_key(&key.path())).await
    }

    async fn list(
        &self,
        visibility: Visibility,
        data_type: DataType,
    ) -> Result<Vec<RequestId>, StorageError> {
        let dir = self.object_key(&format!("{}/{}/", visibility.as_str(), data_type.as_str()));
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&dir)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| backend(&dir, aws_sdk_s3::error::DisplayErrorContext(e)))?;
            for obj in page.contents() {
                if let Some(id) = obj
                    .key()
                    .and_then(|k| k.strip_prefix(&dir))
                    .and_then(|n| RequestId::parse(n).ok())
                {
                    out.push(id);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn base_uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}
