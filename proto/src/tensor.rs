//! Element types and buffer contents of kernel bindings: how bytes on the wire map to WGSL
//! storage buffers. All buffers are little-endian arrays of 4-byte elements, as WGSL lays them out.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::BlobId;

/// The element type of a storage buffer. Decides how replicas are compared: integers exactly,
/// floats within the job's tolerance (GPUs differ in float bits; DESIGN.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    U32,
    I32,
    F32,
}

impl Dtype {
    pub const fn size(self) -> usize {
        4
    }

    pub const fn is_float(self) -> bool {
        matches!(self, Dtype::F32)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Dtype::U32 => "u32",
            Dtype::I32 => "i32",
            Dtype::F32 => "f32",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes that travel as standard base64 in JSON and raw in binary frames.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes(len={})", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        if deserializer.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map(Bytes)
                .map_err(|e| serde::de::Error::custom(format_args!("invalid base64: {e}")))
        } else {
            serde_bytes::ByteBuf::deserialize(deserializer).map(|b| Bytes(b.into_vec()))
        }
    }
}

/// The contents of an input buffer: inline (base64 in JSON) or a blob uploaded earlier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Data {
    Inline(Bytes),
    Blob { blob: BlobId },
}

/// Reads a little-endian buffer as `f32`s; trailing bytes that do not make a whole element are
/// ignored (callers check sizes first).
pub fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Reads a little-endian buffer as `u32`s.
pub fn u32s(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Lays out values as a little-endian buffer.
pub fn to_bytes<T: Copy, const N: usize>(values: &[T], to_le: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to_le(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_base64_or_a_blob_reference_in_json() {
        let inline: Data = serde_json::from_str("\"AQID\"").unwrap();
        assert_eq!(inline, Data::Inline(Bytes(vec![1, 2, 3])));
        let blob = BlobId::of(b"x");
        let by_ref: Data = serde_json::from_str(&format!("{{\"blob\":\"{blob}\"}}")).unwrap();
        assert_eq!(by_ref, Data::Blob { blob });
        assert!(serde_json::from_str::<Data>("\"not base64!\"").is_err());
    }

    #[test]
    fn buffers_are_little_endian() {
        let bytes = to_bytes(&[1.5f32, -2.0], f32::to_le_bytes);
        assert_eq!(f32s(&bytes).collect::<Vec<_>>(), vec![1.5, -2.0]);
        assert_eq!(u32s(&[1, 0, 0, 0, 0, 1, 0, 0]).collect::<Vec<_>>(), vec![1, 256]);
    }
}
