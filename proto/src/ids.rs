//! Identifiers: jobs (`job_<hex>`), tasks (`job_<hex>.<index>`), blobs (`sha256:<hex>`), receipts
//! (`rcpt_<hex>`) and worker leases. Workers are identified by their [`crate::Address`].
//!
//! Ids are minted by the caller from bytes it chose (random for jobs, content hashes for blobs and
//! receipts): this crate does no I/O, so it never draws randomness itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ProtoError, Sha256};

/// The longest text form of an id: a blob's `sha256:` and 64 hex digits.
const LONGEST: usize = 72;

/// An id's text form, written on the stack: ids are written into every frame and record, so
/// their text form costs no allocation (and `Serialize` no `collect_str`, which formats twice).
struct Text {
    bytes: [u8; LONGEST],
    len: usize,
}

impl Text {
    fn new() -> Text {
        Text { bytes: [0; LONGEST], len: 0 }
    }

    fn hex(prefix: &str, raw: &[u8]) -> Text {
        let mut text = Text::new();
        text.push(prefix.as_bytes());
        let start = text.len;
        text.len += 2 * raw.len();
        hex::encode_to_slice(raw, &mut text.bytes[start..text.len]).expect("the buffer fits every id");
        text
    }

    fn push(&mut self, part: &[u8]) {
        self.bytes[self.len..self.len + part.len()].copy_from_slice(part);
        self.len += part.len();
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("ids are ASCII")
    }
}

/// Implements `Display` and `Serialize` from the id's [`Text`], and `Deserialize` through
/// `FromStr`: ids are strings on every wire.
macro_rules! text_form {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.text().as_str())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.text().as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn parse_hex_suffix<const N: usize>(kind: &'static str, prefix: &str, s: &str) -> Result<[u8; N], ProtoError> {
    let invalid = |reason| ProtoError::InvalidId { kind, value: s.to_owned(), reason };
    let hex_part = s.strip_prefix(prefix).ok_or_else(|| invalid("wrong prefix"))?;
    if hex_part.len() != 2 * N || hex_part.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("expected lowercase hex of the right length"));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| invalid("not hex"))?;
    Ok(out)
}

/// A job, named by 12 random bytes the relay draws when it accepts the job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub [u8; 12]);

impl JobId {
    pub const PREFIX: &'static str = "job_";

    fn text(&self) -> Text {
        Text::hex(Self::PREFIX, &self.0)
    }
}

impl FromStr for JobId {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex_suffix("job id", Self::PREFIX, s).map(JobId)
    }
}

text_form!(JobId);

/// One task of a job: the job and the task's index in the job's `tasks` list.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub job: JobId,
    pub index: u32,
}

impl TaskId {
    fn text(&self) -> Text {
        let mut text = self.job.text();
        text.push(b".");
        text.push(itoa::Buffer::new().format(self.index).as_bytes());
        text
    }
}

impl FromStr for TaskId {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| ProtoError::InvalidId { kind: "task id", value: s.to_owned(), reason };
        let (job, index) = s.split_once('.').ok_or_else(|| invalid("expected <job>.<index>"))?;
        let index = index.parse().map_err(|_| invalid("index is not a number"))?;
        Ok(TaskId { job: job.parse()?, index })
    }
}

text_form!(TaskId);

/// A content-addressed blob: the SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub Sha256);

impl BlobId {
    pub const PREFIX: &'static str = "sha256:";

    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(Sha256::of(bytes))
    }

    fn text(&self) -> Text {
        Text::hex(Self::PREFIX, &self.0.0)
    }
}

impl FromStr for BlobId {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex_suffix("blob id", Self::PREFIX, s).map(|b| BlobId(Sha256(b)))
    }
}

text_form!(BlobId);

/// A signed receipt, named by the first 16 bytes of the SHA-256 of its canonical payload, so the
/// same contribution can never be receipted under two ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptId(pub [u8; 16]);

impl ReceiptId {
    pub const PREFIX: &'static str = "rcpt_";

    fn text(&self) -> Text {
        Text::hex(Self::PREFIX, &self.0)
    }
}

impl FromStr for ReceiptId {
    type Err = ProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex_suffix("receipt id", Self::PREFIX, s).map(ReceiptId)
    }
}

text_form!(ReceiptId);

/// One hand-out of a task to one worker. Unique per relay run; a result names the lease it answers,
/// so a late answer to an expired lease is recognised and ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct LeaseId(pub u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let job = JobId([7; 12]);
        assert_eq!(job.to_string(), "job_070707070707070707070707");
        assert_eq!(job.to_string().parse::<JobId>().unwrap(), job);
        let task = TaskId { job, index: 41 };
        assert_eq!(task.to_string().parse::<TaskId>().unwrap(), task);
        let blob = BlobId::of(b"hello");
        assert!(blob.to_string().starts_with("sha256:2cf24dba"));
        assert_eq!(blob.to_string().parse::<BlobId>().unwrap(), blob);
        let receipt = ReceiptId([0xab; 16]);
        assert_eq!(receipt.to_string().parse::<ReceiptId>().unwrap(), receipt);
    }

    #[test]
    fn ids_serialize_as_their_text_so_frames_and_records_written_before_still_read() {
        let job = JobId([0xa5; 12]);
        for (task, text) in
            [(0, "job_a5a5a5a5a5a5a5a5a5a5a5a5.0"), (u32::MAX, "job_a5a5a5a5a5a5a5a5a5a5a5a5.4294967295")]
        {
            let task = TaskId { job, index: task };
            assert_eq!(task.to_string(), text);
            assert_eq!(postcard::to_allocvec(&task).unwrap(), postcard::to_allocvec(text).unwrap());
            assert_eq!(serde_json::to_string(&task).unwrap(), format!("\"{text}\""));
        }
        let blob = BlobId::of(b"");
        let text = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(format!("{blob:?}"), text);
        assert_eq!(postcard::to_allocvec(&blob).unwrap(), postcard::to_allocvec(text).unwrap());
        let receipt = ReceiptId([0x0f; 16]);
        assert_eq!(postcard::to_allocvec(&receipt).unwrap(), postcard::to_allocvec(&receipt.to_string()).unwrap());
        assert_eq!(receipt.to_string(), "rcpt_0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f");
    }

    #[test]
    fn malformed_ids_are_rejected_with_the_kind_named() {
        for bad in ["job_", "job_zz0707070707070707070707", "JOB_070707070707070707070707", "x"] {
            let err = bad.parse::<JobId>().unwrap_err();
            assert!(matches!(err, ProtoError::InvalidId { kind: "job id", .. }), "{bad}: {err}");
        }
        assert!("job_070707070707070707070707.x".parse::<TaskId>().is_err());
        assert!("sha256:abc".parse::<BlobId>().is_err());
    }
}
