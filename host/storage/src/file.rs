//! A folder on the local filesystem.

use async_trait::async_trait;
use kms_types::{DataType, RequestId, Storage, StorageError, StorageKey, Visibility};
use std::path::{Path, PathBuf};

/// Objects stored as files under `root/<PUB|PRIV>/<DataType>/<request_id>`.
#[derive(Debug, Clone)]
pub struct FileStorage {
    root: PathBuf,
}

fn backend(key: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend {
        key: key.to_string(),
        message: e.to_string(),
    }
}

impl FileStorage {
    /// Uses (and creates) the folder `root`.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, StorageError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| backend(&root.display().to_string(), e))?;
        let root = root
            .canonicalize()
            .map_err(|e| backend(&root.display().to_string(), e))?;
        Ok(Self { root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file(&self, key: &StorageKey) -> PathBuf {
        self.root.join(key.path())
    }
}

#[async_trait]
impl Storage for FileStorage {
    async fn put(&self, key: &StorageKey, data: &[u8]) -> Result<(), StorageError> {
        let path = self.file(key);
        let name = key.path();
        if let Some(existing) = self.get(key).await? {
            return if existing == data {
                Ok(())
            } else {
                Err(StorageError::Conflict(name))
            };
        }
        let dir = path
            .parent()
            .ok_or_else(|| backend(&name, "object path has no parent"))?;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| backend(&name, e))?;
        // Write to a temporary name then rename, so readers never see a partial object.
        let tmp = dir.join(format!(".{}.tmp-{}", key.id, std::process::id()));
        tokio::fs::write(&tmp, data)
            .await
            .map_err(|e| backend(&name, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| backend(&name, e))
    }

    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        match tokio::fs::read(self.file(key)).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend(&key.path(), e)),
        }
    }

    async fn list(
        &self,
        visibility: Visibility,
        data_type: DataType,
    ) -> Result<Vec<RequestId>, StorageError> {
        let dir = self.root.join(visibility.as_str()).join(data_type.as_str());
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(backend(&dir.display().to_string(), e)),
        };
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| backend(&dir.display().to_string(), e))?
        {
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| RequestId::parse(n).ok())
            {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    fn base_uri(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_once_round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path()).unwrap();
        let id = RequestId::derive("t", b"1");
        let k = StorageKey::public(DataType::Crs, id);
        assert_eq!(s.get(&k).await.unwrap(), None);
        s.put(&k, b"abc").await.unwrap();
        s.put(&k, b"abc").await.unwrap(); // idempotent
        assert!(matches!(
            s.put(&k, b"abd").await,
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(
            s.list(Visibility::Public, DataType::Crs).await.unwrap(),
            vec![id]
        );
        assert!(s
            .list(Visibility::Private, DataType::Crs)
            .await
            .unwrap()
            .is_empty());
        let uri = k.uri(&s.base_uri());
        assert_eq!(crate::fetch_uri(&uri, None, 3).await.unwrap(), b"abc");
        assert!(matches!(
            crate::fetch_uri(&uri, None, 2).await,
            Err(StorageError::TooLarge { limit: 2, .. })
        ));
    }
}
