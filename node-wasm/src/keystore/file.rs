//! A key file: the secret key as hex, created with mode 0600 when missing.

use std::io;
use std::path::{Path, PathBuf};

use hyphae_proto::SecretKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a secp256k1 secret key in hex")]
    Malformed { path: PathBuf },
}

/// Loads the key in `path`, creating a fresh one there if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<SecretKey, KeyFileError> {
    let io_error = |source| KeyFileError::Io { path: path.to_owned(), source };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let malformed = || KeyFileError::Malformed { path: path.to_owned() };
            let bytes = hex::decode(text.trim().trim_start_matches("0x")).map_err(|_| malformed())?;
            SecretKey::from_bytes(&bytes).map_err(|_| malformed())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = SecretKey::random(&mut rand::rngs::OsRng);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io_error)?;
            }
            write_private(path, &hex::encode(key.to_bytes())).map_err(io_error)?;
            Ok(key)
        }
        Err(e) => Err(io_error(e)),
    }
}

fn write_private(path: &Path, contents: &str) -> io::Result<()> {
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
    fn key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/worker.key");
        let first = load_or_create(&path).unwrap();
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.address(), second.address());
    }

    #[test]
    fn malformed_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_or_create(&path), Err(KeyFileError::Malformed { .. })));
    }
}
