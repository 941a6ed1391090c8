//! Records the sled store packs many to a key, because in sled a new key costs three to four
//! times what a new value for an existing key does (figures in `sled.rs`). A verified task used
//! to write three new keys; with these it writes one (its receipt, found by id) and updates two
//! chunks in place:
//!
//! - **results** of [`RESULTS_PER_CHUNK`] consecutive tasks of a job. A result up to
//!   [`INLINE_RESULT_MAX`] bytes is kept in the chunk; a larger one stays under a key of its own
//!   and the chunk says so, so rewriting a chunk stays cheap whatever the job outputs.
//! - **a beneficiary's receipt ids**, [`RECEIPTS_PER_CHUNK`] to a chunk, oldest first. Only
//!   full chunks have a key of their own, written once; the chunk still filling is the
//!   [`ReceiptTail`] kept after the beneficiary's account record, which paying them updates
//!   anyway. Two keys updated per receipt cost twice one (with 1,000 beneficiaries paid in turn,
//!   6.8 µs and 4.1 µs a task apart, 5.1 µs together; scratch program as in `sled.rs`).
//!
//! The layouts are raw bytes rather than postcard records so that adding to a chunk copies bytes
//! instead of decoding and encoding every record already in it. A result chunk starts with a
//! format byte; a receipt chunk is whole 16-byte ids, nothing else.

use hyphae_proto::ReceiptId;

use super::StoreError;

pub const RESULTS_PER_CHUNK: u32 = 64;
/// The largest encoded result kept inside its chunk.
pub const INLINE_RESULT_MAX: usize = 256;
pub const RECEIPTS_PER_CHUNK: u64 = 64;
/// Set in the cursor of a receipt listed from chunks; a cursor without it is a sequence number
/// of the one-key-per-receipt index written before chunks, whose receipts come first.
pub const CHUNKED_CURSOR: u64 = 1 << 63;

const RESULT_CHUNK_V1: u8 = 1;
const RECEIPT_TAIL_V1: u8 = 1;
const INLINE: u8 = 0;
const ALONE: u8 = 1;

/// Where a settled task's result is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot<'a> {
    /// The encoded [`super::records::ResultRecord`].
    Inline(&'a [u8]),
    /// Under the task's own result key.
    Alone,
}

/// The results of one chunk's tasks, by task index; borrows the bytes it was parsed from.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResultChunk<'a> {
    /// Sorted by index.
    entries: Vec<(u32, Slot<'a>)>,
}

impl<'a> ResultChunk<'a> {
    /// The index of the first task of the chunk holding `index`'s result.
    pub fn first_of(index: u32) -> u32 {
        index - index % RESULTS_PER_CHUNK
    }

    pub fn parse(bytes: &'a [u8]) -> Result<ResultChunk<'a>, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt { what: "result chunk", reason: reason.into() };
        let Some((&RESULT_CHUNK_V1, mut rest)) = bytes.split_first() else {
            return Err(corrupt("unknown format"));
        };
        let mut entries = Vec::new();
        while !rest.is_empty() {
            let (index, tail) = take_u32(rest).ok_or_else(|| corrupt("truncated index"))?;
            let (&tag, tail) = tail.split_first().ok_or_else(|| corrupt("truncated entry"))?;
            let (slot, tail) = match tag {
                INLINE => {
                    let (len, tail) = take_u32(tail).ok_or_else(|| corrupt("truncated length"))?;
                    let len = len as usize;
                    if tail.len() < len {
                        return Err(corrupt("truncated result"));
                    }
                    (Slot::Inline(&tail[..len]), &tail[len..])
                }
                ALONE => (Slot::Alone, tail),
                _ => return Err(corrupt("unknown entry kind")),
            };
            if entries.last().is_some_and(|&(last, _)| last >= index) {
                return Err(corrupt("indices out of order"));
            }
            entries.push((index, slot));
            rest = tail;
        }
        Ok(ResultChunk { entries })
    }

    pub fn get(&self, index: u32) -> Option<Slot<'a>> {
        self.entries.binary_search_by_key(&index, |&(i, _)| i).ok().map(|at| self.entries[at].1)
    }

    /// Puts `slot` at `index`, replacing what was there.
    pub fn set(&mut self, index: u32, slot: Slot<'a>) {
        match self.entries.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(at) => self.entries[at].1 = slot,
            Err(at) => self.entries.insert(at, (index, slot)),
        }
    }

    /// Entries in index order.
    pub fn entries(&self) -> impl Iterator<Item = (u32, Slot<'a>)> + '_ {
        self.entries.iter().copied()
    }

    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.entries.iter().map(|(_, s)| 9 + if let Slot::Inline(b) = s { b.len() } else { 0 }).sum();
        let mut out = Vec::with_capacity(1 + size);
        out.push(RESULT_CHUNK_V1);
        for &(index, slot) in &self.entries {
            out.extend_from_slice(&index.to_be_bytes());
            match slot {
                Slot::Inline(bytes) => {
                    out.push(INLINE);
                    out.extend_from_slice(&u32::try_from(bytes.len()).expect("inline results are small").to_be_bytes());
                    out.extend_from_slice(bytes);
                }
                Slot::Alone => out.push(ALONE),
            }
        }
        out
    }
}

fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, tail) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), tail))
}

/// The ids of a receipt chunk, oldest first.
pub fn receipt_ids(bytes: &[u8]) -> Result<impl Iterator<Item = ReceiptId> + '_, StoreError> {
    let (ids, rest) = bytes.as_chunks::<16>();
    if !rest.is_empty() {
        return Err(StoreError::Corrupt { what: "receipt chunk", reason: "not whole ids".into() });
    }
    Ok(ids.iter().map(|id| ReceiptId(*id)))
}

/// The receipt ids of a beneficiary's chunk still filling, and how many full chunks come before
/// it. Appended to the account record's bytes; an account written before tails has none, and its
/// last chunk, full or not, has a key of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiptTail {
    /// Full chunks, under the chunk numbers before this one.
    pub sealed: u64,
    /// Whole 16-byte ids, fewer than [`RECEIPTS_PER_CHUNK`].
    ids: Vec<u8>,
}

impl ReceiptTail {
    /// The tail that continues the chunk numbered `last` holding `ids` (or nothing: `None`).
    pub fn after(last: Option<(u64, &[u8])>) -> ReceiptTail {
        match last {
            Some((chunk, ids)) if ids.len() as u64 >= RECEIPTS_PER_CHUNK * 16 => {
                ReceiptTail { sealed: chunk + 1, ids: Vec::new() }
            }
            Some((chunk, ids)) => ReceiptTail { sealed: chunk, ids: ids.to_vec() },
            None => ReceiptTail::default(),
        }
    }

    /// What follows an account record: `None` if nothing does.
    pub fn parse(bytes: &[u8]) -> Result<Option<ReceiptTail>, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt { what: "receipt tail", reason: reason.into() };
        let Some((&format, rest)) = bytes.split_first() else {
            return Ok(None);
        };
        if format != RECEIPT_TAIL_V1 {
            return Err(corrupt("unknown format"));
        }
        let (sealed, ids) = rest.split_first_chunk::<8>().ok_or_else(|| corrupt("truncated"))?;
        if ids.len() % 16 != 0 || ids.len() as u64 >= RECEIPTS_PER_CHUNK * 16 {
            return Err(corrupt("not whole ids of one chunk"));
        }
        Ok(Some(ReceiptTail { sealed: u64::from_be_bytes(*sealed), ids: ids.to_vec() }))
    }

    pub fn encode_onto(&self, out: &mut Vec<u8>) {
        out.reserve(9 + self.ids.len());
        out.push(RECEIPT_TAIL_V1);
        out.extend_from_slice(&self.sealed.to_be_bytes());
        out.extend_from_slice(&self.ids);
    }

    /// Adds `id`; returns the chunk it filled, to be written under chunk number `sealed - 1`.
    pub fn push(&mut self, id: ReceiptId) -> Option<Vec<u8>> {
        self.ids.extend_from_slice(&id.0);
        if (self.ids.len() as u64) < RECEIPTS_PER_CHUNK * 16 {
            return None;
        }
        self.sealed += 1;
        Some(std::mem::take(&mut self.ids))
    }

    /// The ids with their positions in the beneficiary's list, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (u64, ReceiptId)> + '_ {
        let ids = self.ids.as_chunks::<16>().0.iter().map(|id| ReceiptId(*id));
        (self.sealed * RECEIPTS_PER_CHUNK..).zip(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_chunk_reads_back_what_was_set_in_any_order() {
        let (a, b) = (vec![1u8; 10], vec![2u8; 200]);
        let mut chunk = ResultChunk::default();
        chunk.set(70, Slot::Inline(&b));
        chunk.set(64, Slot::Alone);
        chunk.set(65, Slot::Inline(&a));
        let bytes = chunk.encode();
        let parsed = ResultChunk::parse(&bytes).unwrap();
        assert_eq!(parsed, chunk);
        assert_eq!(parsed.get(65), Some(Slot::Inline(&a[..])));
        assert_eq!(parsed.get(64), Some(Slot::Alone));
        assert_eq!(parsed.get(66), None);
        assert_eq!(parsed.entries().map(|(i, _)| i).collect::<Vec<_>>(), [64, 65, 70]);
    }

    #[test]
    fn setting_a_result_again_replaces_it() {
        let (old, new) = (vec![1u8; 4], vec![9u8; 5]);
        let mut chunk = ResultChunk::default();
        chunk.set(3, Slot::Inline(&old));
        chunk.set(3, Slot::Inline(&new));
        assert_eq!(chunk.entries().collect::<Vec<_>>(), [(3, Slot::Inline(&new[..]))]);
    }

    #[test]
    fn damaged_chunks_are_reported_not_misread() {
        let mut chunk = ResultChunk::default();
        let result = vec![7u8; 30];
        chunk.set(1, Slot::Inline(&result));
        chunk.set(2, Slot::Alone);
        let bytes = chunk.encode();
        for damaged in [&bytes[..bytes.len() - 3], &bytes[..4], &[], &[2, 0, 0, 0, 1, 1][..]] {
            assert!(matches!(ResultChunk::parse(damaged), Err(StoreError::Corrupt { .. })), "{damaged:?}");
        }
        assert!(matches!(receipt_ids(&[0; 17]).map(|ids| ids.count()), Err(StoreError::Corrupt { .. })));
        assert_eq!(receipt_ids(&[3; 32]).unwrap().collect::<Vec<_>>(), [ReceiptId([3; 16]); 2]);
    }

    #[test]
    fn a_receipt_tail_fills_a_chunk_then_starts_the_next() {
        let mut tail = ReceiptTail::after(None);
        for n in 0..RECEIPTS_PER_CHUNK - 1 {
            assert_eq!(tail.push(ReceiptId([n as u8; 16])), None);
        }
        let full = tail.push(ReceiptId([0xee; 16])).expect("the 64th id fills the chunk");
        assert_eq!(receipt_ids(&full).unwrap().count() as u64, RECEIPTS_PER_CHUNK);
        assert_eq!(receipt_ids(&full).unwrap().last(), Some(ReceiptId([0xee; 16])));
        assert_eq!(tail.push(ReceiptId([1; 16])), None);
        let mut bytes = vec![0xaa];
        tail.encode_onto(&mut bytes);
        let parsed = ReceiptTail::parse(&bytes[1..]).unwrap().unwrap();
        assert_eq!(parsed, tail);
        assert_eq!(parsed.entries().collect::<Vec<_>>(), [(RECEIPTS_PER_CHUNK, ReceiptId([1; 16]))]);
    }

    #[test]
    fn a_tail_continues_the_last_chunk_written_before_tails() {
        let two = [7u8; 32];
        let continued = ReceiptTail::after(Some((3, &two)));
        assert_eq!(continued.sealed, 3);
        assert_eq!(continued.entries().map(|(p, _)| p).collect::<Vec<_>>(), [192, 193]);
        let full = vec![7u8; RECEIPTS_PER_CHUNK as usize * 16];
        assert_eq!(ReceiptTail::after(Some((3, &full))), ReceiptTail { sealed: 4, ids: Vec::new() });
        assert_eq!(ReceiptTail::parse(&[]).unwrap(), None);
        for damaged in [&[2u8, 0, 0, 0, 0, 0, 0, 0, 0][..], &[1, 0, 0], &[1, 0, 0, 0, 0, 0, 0, 0, 0, 5]] {
            assert!(matches!(ReceiptTail::parse(damaged), Err(StoreError::Corrupt { .. })), "{damaged:?}");
        }
    }

    #[test]
    fn the_chunk_of_a_task_starts_at_a_multiple_of_the_chunk_size() {
        assert_eq!(ResultChunk::first_of(0), 0);
        assert_eq!(ResultChunk::first_of(63), 0);
        assert_eq!(ResultChunk::first_of(64), 64);
        assert_eq!(ResultChunk::first_of(u32::MAX), u32::MAX - 63);
    }
}
