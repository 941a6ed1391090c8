//! Credit receipts (DESIGN.md §3): one verified contribution, signed by the relay with EIP-191
//! `personal_sign` over the payload's canonical JSON (keys sorted, no spaces, UTF-8), so that any
//! Ethereum library can check it offline: `recover_message(canonical_json, signature) == relay`.

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
        let digest = Sha256::of(self.canonical_json().as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.0[..16]);
        ReceiptId(id)
    }

    pub fn sign(self, relay_key: &SecretKey) -> SignedReceipt {
        let signature = relay_key.sign_message(self.canonical_json().as_bytes());
        SignedReceipt { payload: self, signature, signer: relay_key.address() }
    }
}

/// A receipt as it travels: `{"payload":{…},"signature":"0x…","signer":"0x…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub payload: ReceiptPayload,
    pub signature: Signature,
    pub signer: Address,
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("unsupported receipt version {0}")]
    UnsupportedVersion(u32),
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
        let recovered =
            self.signature.recover(self.payload.canonical_json().as_bytes()).map_err(ReceiptError::Unrecoverable)?;
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
