//! The relay's signing key and receipt issuance. The key lives in the data directory as
//! `relay.key` (hex, mode 0600), created on first start; its address is the relay's identity,
//! named in every receipt and in `GET /v1/relay`.

use std::io;
use std::path::Path;

use hyphae_proto::{Address, ReceiptPayload, SecretKey, SignedReceipt};

pub struct Signer {
    key: SecretKey,
}

impl Signer {
    pub fn new(key: SecretKey) -> Signer {
        Signer { key }
    }

    /// Loads `relay.key` from `data_dir`, creating it if missing.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Signer> {
        let path = data_dir.join("relay.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{}: not hex", path.display())))?;
                let key = SecretKey::from_bytes(&bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
                Ok(Signer { key })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = SecretKey::random(&mut rand::rngs::OsRng);
                write_secret(&path, &hex::encode(key.to_bytes()))?;
                Ok(Signer { key })
            }
            Err(e) => Err(e),
        }
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub fn sign(&self, payload: ReceiptPayload) -> SignedReceipt {
        debug_assert_eq!(payload.relay, self.address());
        payload.sign(&self.key)
    }
}

/// Writes a secret file readable by its owner only, durably.
pub fn write_secret(path: &Path, contents: &str) -> io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_key_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Signer::load_or_create(dir.path()).unwrap();
        let second = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(first.address(), second.address());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("relay.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
