//! Content-addressed blobs as files: `blobs/<first two hex digits>/<sha256 hex>`. A blob is written
//! to a temporary file, synced, renamed into place and its directory synced before it is
//! acknowledged, so an acknowledged blob survives a crash and a half-written one is never visible.

use std::io;
use std::path::{Path, PathBuf};

use hyphae_proto::BlobId;
use tokio::io::AsyncWriteExt;

pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn open(data_dir: &Path) -> io::Result<BlobStore> {
        let root = data_dir.join("blobs");
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(BlobStore { root })
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        let hex = id.0.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Stores `bytes` under their hash; storing the same bytes twice is a no-op.
    pub async fn put(&self, bytes: &[u8]) -> io::Result<BlobId> {
        let id = BlobId::of(bytes);
        let path = self.path(&id);
        if tokio::fs::try_exists(&path).await? {
            return Ok(id);
        }
        let dir = path.parent().expect("blob paths have a parent").to_owned();
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = self.root.join("tmp").join(format!("{}.{}", id.0.to_hex(), std::process::id()));
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await?;
        sync_dir(dir).await?;
        Ok(id)
    }

    pub async fn get(&self, id: &BlobId) -> io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(id)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn size(&self, id: &BlobId) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path(id)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

async fn sync_dir(dir: PathBuf) -> io::Result<()> {
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_are_stored_under_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let id = blobs.put(b"weights").await.unwrap();
        assert_eq!(id, BlobId::of(b"weights"));
        assert_eq!(blobs.put(b"weights").await.unwrap(), id);
        assert_eq!(blobs.get(&id).await.unwrap().as_deref(), Some(&b"weights"[..]));
        assert_eq!(blobs.size(&id).await.unwrap(), Some(7));
        assert_eq!(blobs.get(&BlobId::of(b"other")).await.unwrap(), None);
    }
}
