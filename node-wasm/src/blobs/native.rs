//! Native blob cache: one file per blob in a directory (by default under the user's cache dir),
//! written to a temporary name and renamed, so a crash never leaves a torn blob under its id.

use std::path::PathBuf;

use hyphae_proto::BlobId;

#[derive(Default)]
pub struct BlobCache {
    dir: Option<PathBuf>,
}

impl BlobCache {
    /// A cache in `dir`, or no cache at all.
    pub fn new(dir: Option<PathBuf>) -> BlobCache {
        BlobCache { dir }
    }

    fn path(&self, id: &BlobId) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(id.0.to_hex()))
    }

    pub async fn get(&self, id: &BlobId) -> Option<Vec<u8>> {
        tokio::fs::read(self.path(id)?).await.ok()
    }

    pub async fn put(&self, id: &BlobId, bytes: &[u8]) {
        let Some(path) = self.path(id) else { return };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = async {
            tokio::fs::create_dir_all(path.parent().expect("cache paths have a parent")).await?;
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = written.await {
            tracing::warn!(blob = %id, error = %e, "could not cache blob");
        }
    }
}
