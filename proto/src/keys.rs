//! secp256k1 keys and Ethereum-style identities: [`Address`] (EIP-55 checksummed), EIP-191
//! `personal_sign` signatures ([`Signature`], 65 bytes r‖s‖v) and recovery.
//!
//! Workers sign the relay's login challenge with these; the relay signs receipts with them. Any
//! Ethereum library can check either, which is the point: credits are verifiable without us.

use std::fmt;
use std::str::FromStr;

use k256::ecdsa::{RecoveryId, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest as _, Keccak256};

use crate::ProtoError;

/// Keccak-256, Ethereum's hash (not NIST SHA3-256: the padding differs).
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// The digest EIP-191 `personal_sign` signs: keccak256 of `"\x19Ethereum Signed Message:\n"`,
/// the message length in decimal, and the message.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// A 20-byte Ethereum address: the last 20 bytes of keccak256 of the uncompressed public key.
/// Displayed `0x`-prefixed with the EIP-55 mixed-case checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub fn of(key: &VerifyingKey) -> Address {
        let point = key.to_encoded_point(false);
        // Skip the 0x04 tag of the SEC1 uncompressed encoding.
        let hash = keccak256(&point.as_bytes()[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// The EIP-55 checksummed text form.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if c.is_ascii_alphabetic() && nibble >= 8 { c.to_ascii_uppercase() } else { c });
        }
        out
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl FromStr for Address {
    type Err = ProtoError;

    /// Accepts all-lowercase, all-uppercase, or correctly checksummed mixed case, as EIP-55 says;
    /// a mixed-case address with a wrong checksum is a typo and is rejected.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| ProtoError::InvalidAddress { value: s.to_owned(), reason };
        let body =
            s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).ok_or_else(|| invalid("expected a 0x prefix"))?;
        if body.len() != 40 {
            return Err(invalid("expected 40 hex digits"));
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(body, &mut out).map_err(|_| invalid("not hex"))?;
        let address = Address(out);
        let has_lower = body.bytes().any(|b| b.is_ascii_lowercase());
        let has_upper = body.bytes().any(|b| b.is_ascii_uppercase());
        if has_lower && has_upper && address.to_checksum()[2..] != *body {
            return Err(invalid("bad EIP-55 checksum"));
        }
        Ok(address)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_checksum())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 20]>::deserialize(deserializer).map(Address)
        }
    }
}

/// A recoverable secp256k1 signature as Ethereum writes it: r ‖ s ‖ v, v ∈ {27, 28}.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 65]);

impl Signature {
    /// The address whose key made this signature over `message` (EIP-191 `personal_sign`).
    pub fn recover(&self, message: &[u8]) -> Result<Address, ProtoError> {
        self.recover_prehash(&eip191_hash(message))
    }

    pub fn recover_prehash(&self, prehash: &[u8; 32]) -> Result<Address, ProtoError> {
        let v = match self.0[64] {
            v @ (27 | 28) => v - 27,
            v @ (0 | 1) => v,
            _ => return Err(ProtoError::InvalidSignature("v must be 27 or 28")),
        };
        let mut signature = k256::ecdsa::Signature::from_slice(&self.0[..64])
            .map_err(|_| ProtoError::InvalidSignature("r or s out of range"))?;
        let mut recovery = RecoveryId::from_byte(v).expect("v is 0 or 1");
        // Ethereum libraries accept high-s signatures for messages; flip to the low-s twin.
        if let Some(normalized) = signature.normalize_s() {
            signature = normalized;
            recovery = RecoveryId::new(!recovery.is_y_odd(), recovery.is_x_reduced());
        }
        let key = VerifyingKey::recover_from_prehash(prehash, &signature, recovery)
            .map_err(|_| ProtoError::InvalidSignature("no key recovers from it"))?;
        Ok(Address::of(&key))
    }

    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

impl FromStr for Signature {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix("0x").ok_or(ProtoError::InvalidSignature("expected a 0x prefix"))?;
        let mut out = [0u8; 65];
        hex::decode_to_slice(body, &mut out).map_err(|_| ProtoError::InvalidSignature("expected 130 hex digits"))?;
        Ok(Signature(out))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes = <serde_bytes::ByteBuf>::deserialize(deserializer)?;
            let array: [u8; 65] =
                bytes.as_slice().try_into().map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"65 bytes"))?;
            Ok(Signature(array))
        }
    }
}

/// A secp256k1 secret key. Its `Debug` shows only the address, so it never lands in a log.
#[derive(Clone)]
pub struct SecretKey {
    key: SigningKey,
    /// Derived once: a relay stamps it on every receipt it signs.
    address: Address,
}

impl SecretKey {
    /// A fresh key from the caller's cryptographic RNG (this crate draws no randomness itself).
    pub fn random(rng: &mut impl k256::elliptic_curve::rand_core::CryptoRngCore) -> SecretKey {
        SecretKey::from(SigningKey::random(rng))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, ProtoError> {
        SigningKey::from_slice(bytes).map(SecretKey::from).map_err(|_| ProtoError::InvalidSecretKey)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// EIP-191 `personal_sign` of `message`.
    pub fn sign_message(&self, message: &[u8]) -> Signature {
        self.sign_prehash(&eip191_hash(message))
    }

    pub fn sign_prehash(&self, prehash: &[u8; 32]) -> Signature {
        let (signature, recovery) =
            self.key.sign_prehash_recoverable(prehash).expect("a 32-byte prehash is always signable");
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = 27 + recovery.to_byte();
        Signature(out)
    }
}

impl From<SigningKey> for SecretKey {
    fn from(key: SigningKey) -> SecretKey {
        let address = Address::of(key.verifying_key());
        SecretKey { key, address }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The private key 0x…01 is secp256k1's generator; its address is well known.
    const KEY_ONE: [u8; 32] = {
        let mut k = [0u8; 32];
        k[31] = 1;
        k
    };

    #[test]
    fn address_of_key_one_is_the_known_checksummed_one() {
        let key = SecretKey::from_bytes(&KEY_ONE).unwrap();
        assert_eq!(key.address().to_string(), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    }

    #[test]
    fn eip55_examples_from_the_spec_round_trip() {
        for text in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
            assert_eq!(text.to_lowercase().parse::<Address>().unwrap(), address);
        }
    }

    #[test]
    fn mixed_case_address_with_bad_checksum_is_rejected() {
        let err = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD".parse::<Address>().unwrap_err();
        assert!(matches!(err, ProtoError::InvalidAddress { reason: "bad EIP-55 checksum", .. }));
    }

    #[test]
    fn signature_recovers_the_signer_and_nobody_else() {
        let key = SecretKey::random(&mut rand::thread_rng());
        let signature = key.sign_message(b"hello grid");
        assert_eq!(signature.recover(b"hello grid").unwrap(), key.address());
        assert_ne!(signature.recover(b"hello grid!").unwrap(), key.address());
        assert_eq!(signature.to_string().parse::<Signature>().unwrap(), signature);
    }

    #[test]
    fn signature_recovers_in_an_independent_ethereum_library() {
        let key = SecretKey::random(&mut rand::thread_rng());
        let message = b"{\"a\":1}";
        let signature = key.sign_message(message);
        let theirs = alloy_primitives::Signature::from_raw(&signature.0).unwrap();
        let recovered = theirs.recover_address_from_msg(message).unwrap();
        assert_eq!(recovered.to_checksum(None), key.address().to_string());
    }
}
