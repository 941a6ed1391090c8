//! The relay's signing key and receipt issuance. The key lives in the data directory as
//! `relay.key` (hex, mode 0600), created on first start; its address is the relay's identity,
//! named in every receipt and in `GET /v1/relay`.
//!
//! Receipts are signed on a thread of their own, in batches: whatever was asked for while the
//! last batch was being signed goes into the next, under one signature
//! ([`hyphae_proto::sign_receipts`]). An idle relay signs each receipt alone, as soon as asked;
//! a busy one signs at most one batch every couple of milliseconds, as group commit does for
//! disk writes.

use std::io;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use hyphae_proto::{Address, Issued, ReceiptPayload, SecretKey, SignedReceipt, sign_receipts};
use tokio::sync::oneshot;

type Request = (Vec<ReceiptPayload>, oneshot::Sender<Vec<Issued>>);

pub struct Signer {
    key: Arc<SecretKey>,
    requests: mpsc::Sender<Request>,
}

impl Signer {
    pub fn new(key: SecretKey) -> Signer {
        let key = Arc::new(key);
        let (requests, incoming) = mpsc::channel();
        let signing = key.clone();
        std::thread::Builder::new()
            .name("receipt-signer".into())
            .spawn(move || {
                crate::background::run_as_batch_work();
                sign_batches(&signing, &incoming)
            })
            .expect("spawning the receipt signer");
        Signer { key, requests }
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
                Ok(Signer::new(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = SecretKey::random(&mut rand::rngs::OsRng);
                write_secret(&path, &hex::encode(key.to_bytes()))?;
                Ok(Signer::new(key))
            }
            Err(e) => Err(e),
        }
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Signs one receipt alone, now.
    pub fn sign(&self, payload: ReceiptPayload) -> SignedReceipt {
        debug_assert_eq!(payload.relay, self.address());
        payload.sign(&self.key)
    }

    /// Signs `payloads` on the signing thread, in the batch it signs next; in order.
    pub async fn sign_batched(&self, payloads: Vec<ReceiptPayload>) -> Vec<Issued> {
        if payloads.is_empty() {
            return Vec::new();
        }
        debug_assert!(payloads.iter().all(|p| p.relay == self.address()));
        let (tx, rx) = oneshot::channel();
        // The thread lives as long as any sender: it cannot be gone while `self` is here.
        self.requests.send((payloads, tx)).expect("the receipt signer outlives the relay");
        rx.await.expect("the receipt signer answers every request")
    }
}

/// Signatures a busy signer makes at most one of per this long: an ECDSA signature costs tens of
/// microseconds, so signing whatever happened to be waiting (often one task's receipts) made
/// signing a tenth of a busy relay's work.
const SIGN_EVERY: Duration = Duration::from_millis(2);

/// The signing thread: takes one request, then, when it signed less than [`SIGN_EVERY`] ago,
/// every other that comes in until then (an idle relay signs at once), and signs them all under
/// one signature. Ends when the [`Signer`] is dropped.
fn sign_batches(key: &SecretKey, incoming: &mpsc::Receiver<Request>) {
    let mut last = Instant::now();
    while let Ok(first) = incoming.recv() {
        let mut requests = vec![first];
        let until = last + SIGN_EVERY;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match incoming.recv_timeout(left) {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        requests.extend(incoming.try_iter());
        let counts: Vec<usize> = requests.iter().map(|(payloads, _)| payloads.len()).collect();
        let (payloads, replies): (Vec<Vec<ReceiptPayload>>, Vec<_>) = requests.into_iter().unzip();
        let mut signed = sign_receipts(payloads.into_iter().flatten().collect(), key).into_iter();
        for (count, reply) in counts.into_iter().zip(replies) {
            // A caller that gave up (its task was dropped) needs no answer.
            let _ = reply.send(signed.by_ref().take(count).collect());
        }
        last = Instant::now();
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

    fn payload(signer: &Signer, index: u32) -> ReceiptPayload {
        let job = hyphae_proto::JobId([2; 12]);
        ReceiptPayload {
            beneficiary: signer.address(),
            credits: hyphae_proto::Credits::whole(1),
            issued_at: 0,
            job,
            output_sha256: hyphae_proto::Sha256::of(b"out"),
            relay: signer.address(),
            task: hyphae_proto::TaskId { job, index },
            v: ReceiptPayload::VERSION,
            worker: signer.address(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_get_their_own_receipts_in_order_all_verifying() {
        let signer = Arc::new(Signer::new(SecretKey::random(&mut rand::thread_rng())));
        let callers: Vec<_> = (0..32u32)
            .map(|caller| {
                let signer = signer.clone();
                tokio::spawn(async move {
                    let payloads: Vec<_> = (0..3).map(|i| payload(&signer, caller * 3 + i)).collect();
                    (payloads.clone(), signer.sign_batched(payloads).await)
                })
            })
            .collect();
        for caller in callers {
            let (asked, signed) = caller.await.unwrap();
            assert_eq!(signed.iter().map(|i| i.receipt.payload.clone()).collect::<Vec<_>>(), asked);
            for Issued { id, receipt } in signed {
                receipt.verify(Some(signer.address())).unwrap();
                assert_eq!(id, receipt.id());
            }
        }
        assert!(signer.sign_batched(Vec::new()).await.is_empty());
    }

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
