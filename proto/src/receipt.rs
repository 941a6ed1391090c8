//! Credit receipts (DESIGN.md §3): one verified contribution, signed by the relay with EIP-191
//! `personal_sign` over the payload's canonical JSON (keys sorted, no spaces, UTF-8), so that any
//! Ethereum library can check it offline: `recover_message(canonical_json, signature) == relay`.
//!
//! A busy relay signs receipts in batches ([`sign_receipts`]): one signature over the root of a
//! Merkle tree of the batch's payloads, each receipt carrying its [`BatchProof`], the path from
//! its leaf to that root. It checks offline just as well (hash up the path, then recover the
//! signer from [`batch_message`]`(root)`), and one signature then pays for hundreds of receipts:
//! an ECDSA signature costs a relay core tens of microseconds, hashing a path a microsecond.

use serde::{Deserialize, Serialize};

use crate::{Address, Credits, JobId, ProtoError, ReceiptId, SecretKey, Sha256, Signature, TaskId};

/// The signed statement. **Field order is the canonical key order** (alphabetical): the canonical
/// JSON is this struct serialized as declared, which a test checks against a sorted re-encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptPayload {
    /// Who earns the credits: the worker's beneficiary (a visitor, or the site owner).
    pub beneficiary: Address,
    pub credits: Credits,
    /// Unix seconds.
    pub issued_at: u64,
    pub job: JobId,
    /// SHA-256 of the task's accepted output (the output bindings laid end to end in binding
    /// order), the same in every receipt of the task, so a client can match it to its result.
    pub output_sha256: Sha256,
    /// The relay that verified the work and signs the receipt.
    pub relay: Address,
    pub task: TaskId,
    pub v: u32,
    /// The worker key that computed the result.
    pub worker: Address,
}

impl ReceiptPayload {
    pub const VERSION: u32 = 1;

    /// The exact bytes that are signed.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("receipt payloads always serialize")
    }

    pub fn id(&self) -> ReceiptId {
        id_of(&self.canonical_json())
    }

    pub fn sign(self, relay_key: &SecretKey) -> SignedReceipt {
        let signature = relay_key.sign_message(self.canonical_json().as_bytes());
        SignedReceipt { payload: self, signature, signer: relay_key.address(), batch: None }
    }
}

/// A receipt as it travels: `{"payload":{…},"signature":"0x…","signer":"0x…"}`, plus
/// `"batch":{"index":…,"leaves":…,"path":[…]}` when it was signed in a batch. `Serialize` is
/// written out below: JSON leaves out a missing `batch` (a receipt signed alone reads as it always
/// did), binary frames always carry it (postcard has no field names to tell a field was skipped).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub payload: ReceiptPayload,
    /// Over the canonical JSON, or over [`batch_message`] of the batch's root.
    pub signature: Signature,
    pub signer: Address,
    #[serde(default)]
    pub batch: Option<BatchProof>,
}

impl Serialize for SignedReceipt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let omit_batch = serializer.is_human_readable() && self.batch.is_none();
        let mut s = serializer.serialize_struct("SignedReceipt", if omit_batch { 3 } else { 4 })?;
        s.serialize_field("payload", &self.payload)?;
        s.serialize_field("signature", &self.signature)?;
        s.serialize_field("signer", &self.signer)?;
        if omit_batch {
            s.skip_field("batch")?;
        } else {
            s.serialize_field("batch", &self.batch)?;
        }
        s.end()
    }
}

/// Where a receipt sits in the Merkle tree of the batch it was signed in. Leaves are
/// `sha256(0x00 ‖ canonical_json)`, inner nodes `sha256(0x01 ‖ left ‖ right)` (the prefixes keep
/// a leaf from passing for a node); a level's odd last node moves up unpaired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchProof {
    /// This receipt's leaf, counted from 0.
    pub index: u32,
    /// Leaves in the batch.
    pub leaves: u32,
    /// The sibling at each level where there is one, from the leaf up.
    pub path: Vec<Sha256>,
}

/// The message whose EIP-191 signature covers a batch: what an Ethereum library recovers from.
pub fn batch_message(root: &Sha256) -> String {
    format!("hyphae receipt batch {root}")
}

/// A receipt's id: the first 16 bytes of the SHA-256 of its payload's canonical JSON.
fn id_of(canonical_json: &str) -> ReceiptId {
    let digest = Sha256::of(canonical_json.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest.0[..16]);
    ReceiptId(id)
}

fn leaf_hash(canonical_json: &str) -> Sha256 {
    Sha256::of_parts([&[0u8][..], canonical_json.as_bytes()])
}

fn node_hash(left: &Sha256, right: &Sha256) -> Sha256 {
    Sha256::of_parts([&[1u8][..], &left.0, &right.0])
}

impl BatchProof {
    /// The root that `leaf` and this path hash up to; `None` when the path does not fit the
    /// batch's shape (too short, too long, or an index past the leaves).
    pub fn root(&self, leaf: Sha256) -> Option<Sha256> {
        let (mut index, mut width, mut node) = (self.index, self.leaves, leaf);
        let mut path = self.path.iter();
        if index >= width {
            return None;
        }
        while width > 1 {
            let unpaired = index == width - 1 && width % 2 == 1;
            if !unpaired {
                let sibling = path.next()?;
                node = if index % 2 == 0 { node_hash(&node, sibling) } else { node_hash(sibling, &node) };
            }
            index /= 2;
            width = width.div_ceil(2);
        }
        path.next().is_none().then_some(node)
    }
}

/// A receipt as [`sign_receipts`] issues it, with its id (worked out from the same canonical
/// JSON as its signature: writing the JSON is most of what a receipt costs besides signing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub id: ReceiptId,
    pub receipt: SignedReceipt,
}

/// Signs `payloads` with one signature. A single receipt is signed alone, as ever; several
/// share the signature of their Merkle root, each with its proof.
pub fn sign_receipts(payloads: Vec<ReceiptPayload>, relay_key: &SecretKey) -> Vec<Issued> {
    let json: Vec<String> = payloads.iter().map(ReceiptPayload::canonical_json).collect();
    let ids = json.iter().map(|json| id_of(json));
    if let [alone] = json.as_slice() {
        let signature = relay_key.sign_message(alone.as_bytes());
        return payloads
            .into_iter()
            .zip(ids)
            .map(|(payload, id)| Issued {
                id,
                receipt: SignedReceipt { payload, signature, signer: relay_key.address(), batch: None },
            })
            .collect();
    }
    if payloads.is_empty() {
        return Vec::new();
    }
    let leaves = payloads.len() as u32;
    let mut levels: Vec<Vec<Sha256>> = vec![json.iter().map(|json| leaf_hash(json)).collect()];
    while levels.last().is_some_and(|level| level.len() > 1) {
        let below = levels.last().expect("checked above");
        let above = below
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                [unpaired] => *unpaired,
                _ => unreachable!("chunks of two"),
            })
            .collect();
        levels.push(above);
    }
    let root = levels.last().expect("at least the leaves")[0];
    let signature = relay_key.sign_message(batch_message(&root).as_bytes());
    payloads
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(i, (payload, id))| {
            let mut index = i;
            let mut path = Vec::new();
            for level in &levels[..levels.len() - 1] {
                if let Some(sibling) = level.get(index ^ 1) {
                    path.push(*sibling);
                }
                index /= 2;
            }
            let batch = Some(BatchProof { index: i as u32, leaves, path });
            Issued { id, receipt: SignedReceipt { payload, signature, signer: relay_key.address(), batch } }
        })
        .collect()
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("unsupported receipt version {0}")]
    UnsupportedVersion(u32),
    #[error("the batch proof does not lead to a root (index {index} of {leaves} leaves, {steps} steps)")]
    BadProof { index: u32, leaves: u32, steps: usize },
    #[error("signature does not recover to a key: {0}")]
    Unrecoverable(#[source] ProtoError),
    #[error("signature recovers to {recovered}, not to the signer {expected}")]
    BadSignature { recovered: Address, expected: Address },
    #[error("signed by {signer}, but the payload names relay {relay}")]
    SignerIsNotRelay { signer: Address, relay: Address },
    #[error("signed by relay {signer}, not by the expected relay {expected}")]
    UnexpectedRelay { signer: Address, expected: Address },
}

impl SignedReceipt {
    pub fn id(&self) -> ReceiptId {
        self.payload.id()
    }

    /// Checks the signature and that the relay named in the payload is the one that signed it.
    /// Pass `expected_relay` to also pin which relay you trust.
    pub fn verify(&self, expected_relay: Option<Address>) -> Result<(), ReceiptError> {
        if self.payload.v != ReceiptPayload::VERSION {
            return Err(ReceiptError::UnsupportedVersion(self.payload.v));
        }
        let signed = match &self.batch {
            None => self.payload.canonical_json(),
            Some(proof) => {
                let root = proof.root(leaf_hash(&self.payload.canonical_json())).ok_or(ReceiptError::BadProof {
                    index: proof.index,
                    leaves: proof.leaves,
                    steps: proof.path.len(),
                })?;
                batch_message(&root)
            }
        };
        let recovered = self.signature.recover(signed.as_bytes()).map_err(ReceiptError::Unrecoverable)?;
        if recovered != self.signer {
            return Err(ReceiptError::BadSignature { recovered, expected: self.signer });
        }
        if self.signer != self.payload.relay {
            return Err(ReceiptError::SignerIsNotRelay { signer: self.signer, relay: self.payload.relay });
        }
        if let Some(expected) = expected_relay
            && expected != self.signer
        {
            return Err(ReceiptError::UnexpectedRelay { signer: self.signer, expected });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(relay: &SecretKey) -> ReceiptPayload {
        let job = JobId([1; 12]);
        ReceiptPayload {
            beneficiary: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().unwrap(),
            credits: "0.25".parse().unwrap(),
            issued_at: 1_790_000_000,
            job,
            output_sha256: Sha256::of(b"out"),
            relay: relay.address(),
            task: TaskId { job, index: 3 },
            v: ReceiptPayload::VERSION,
            worker: "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359".parse().unwrap(),
        }
    }

    #[test]
    fn canonical_json_has_sorted_keys_and_no_spaces() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        let json = payload(&relay).canonical_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(!json.contains(' '));
        assert!(
            json.starts_with("{\"beneficiary\":\"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\",\"credits\":\"0.25\"")
        );
    }

    #[test]
    fn signed_receipt_verifies_and_recovers_in_an_independent_library() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        let receipt = payload(&relay).sign(&relay);
        receipt.verify(Some(relay.address())).unwrap();

        let wire = serde_json::to_string(&receipt).unwrap();
        let back: SignedReceipt = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, receipt);

        let theirs = alloy_primitives::Signature::from_raw(&receipt.signature.0).unwrap();
        let recovered = theirs.recover_address_from_msg(receipt.payload.canonical_json()).unwrap();
        assert_eq!(recovered.to_checksum(None), relay.address().to_string());
    }

    #[test]
    fn tampered_receipt_fails_with_the_recovered_address_named() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        let mut receipt = payload(&relay).sign(&relay);
        receipt.payload.credits = "1000".parse().unwrap();
        match receipt.verify(None) {
            Err(ReceiptError::BadSignature { expected, .. }) => assert_eq!(expected, relay.address()),
            other => panic!("expected BadSignature, got {other:?}"),
        }
    }

    fn batch(relay: &SecretKey, n: u32) -> Vec<SignedReceipt> {
        let payloads = (0..n).map(|i| ReceiptPayload { issued_at: 1_790_000_000 + u64::from(i), ..payload(relay) });
        let issued = sign_receipts(payloads.collect(), relay);
        for Issued { id, receipt } in &issued {
            assert_eq!(*id, receipt.id(), "issued with the id it has");
        }
        issued.into_iter().map(|issued| issued.receipt).collect()
    }

    #[test]
    fn every_receipt_of_a_batch_verifies_and_its_root_recovers_in_an_independent_library() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        for n in [2, 3, 5, 8, 13] {
            let receipts = batch(&relay, n);
            let signature = receipts[0].signature;
            for receipt in &receipts {
                receipt.verify(Some(relay.address())).unwrap_or_else(|e| panic!("{n} receipts: {e}"));
                assert_eq!(receipt.signature, signature, "one signature for the batch");
                let wire = serde_json::to_string(receipt).unwrap();
                assert_eq!(serde_json::from_str::<SignedReceipt>(&wire).unwrap(), *receipt);
            }
            let proof = receipts[1].batch.as_ref().unwrap();
            let root = proof.root(leaf_hash(&receipts[1].payload.canonical_json())).unwrap();
            let theirs = alloy_primitives::Signature::from_raw(&signature.0).unwrap();
            let recovered = theirs.recover_address_from_msg(batch_message(&root)).unwrap();
            assert_eq!(recovered.to_checksum(None), relay.address().to_string());
        }
    }

    #[test]
    fn receipts_with_and_without_a_batch_cross_binary_frames() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        for receipt in [batch(&relay, 1).remove(0), batch(&relay, 3).remove(2)] {
            let bytes = postcard::to_allocvec(&receipt).unwrap();
            assert_eq!(postcard::from_bytes::<SignedReceipt>(&bytes).unwrap(), receipt);
        }
    }

    #[test]
    fn a_receipt_alone_is_signed_as_ever() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        let alone = batch(&relay, 1).remove(0);
        assert_eq!(alone, alone.payload.clone().sign(&relay));
        assert!(!serde_json::to_string(&alone).unwrap().contains("batch"));
    }

    #[test]
    fn a_tampered_batched_receipt_or_proof_fails() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        let receipts = batch(&relay, 5);
        let mut credits = receipts[2].clone();
        credits.payload.credits = "1000".parse().unwrap();
        assert!(matches!(credits.verify(None), Err(ReceiptError::BadSignature { .. })));
        // Another receipt's place in the batch, or its sibling swapped in: another root.
        let mut moved = receipts[2].clone();
        moved.batch.as_mut().unwrap().index = 3;
        assert!(matches!(moved.verify(None), Err(ReceiptError::BadSignature { .. })));
        let mut short = receipts[2].clone();
        short.batch.as_mut().unwrap().path.pop();
        assert!(matches!(short.verify(None), Err(ReceiptError::BadProof { .. })));
        let mut long = receipts[4].clone();
        long.batch.as_mut().unwrap().path.push(Sha256::of(b"x"));
        assert!(matches!(long.verify(None), Err(ReceiptError::BadProof { .. })));
        let mut past = receipts[0].clone();
        past.batch.as_mut().unwrap().index = 5;
        assert!(matches!(past.verify(None), Err(ReceiptError::BadProof { .. })));
        // A receipt of the batch passed off as signed alone.
        let mut unbatched = receipts[0].clone();
        unbatched.batch = None;
        assert!(matches!(unbatched.verify(None), Err(ReceiptError::BadSignature { .. })));
    }

    #[test]
    fn receipt_from_another_relay_is_refused_when_a_relay_is_pinned() {
        let relay = SecretKey::random(&mut rand::thread_rng());
        let other = SecretKey::random(&mut rand::thread_rng());
        let receipt = payload(&relay).sign(&relay);
        assert!(matches!(receipt.verify(Some(other.address())), Err(ReceiptError::UnexpectedRelay { .. })));
        let forged = payload(&relay).sign(&other);
        assert!(matches!(forged.verify(None), Err(ReceiptError::SignerIsNotRelay { .. })));
    }
}
