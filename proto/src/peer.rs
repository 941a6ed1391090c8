//! Worker ⇄ worker: how two workers introduce themselves through the relay ([`Signal`]) and what
//! they then say to each other ([`PeerFrame`]), over a WebRTC data channel or, when no direct
//! connection comes up, relayed over both workers' WebSockets. Either way the bytes are the same
//! frames, so the pipeline never knows which path it got.
//!
//! A transfer is content-addressed: the receiver asks for a SHA-256 ([`PeerFrame::Want`]), the
//! holder answers with [`Chunk`]s small enough for any SCTP stack, each with a CRC-32 of its data,
//! and the receiver's [`Assembly`] rejects a bad chunk at once and the whole at the end unless it
//! hashes to what was asked for. A peer can therefore waste a receiver's time, never fool it.

use serde::{Deserialize, Serialize};

use crate::tensor::Bytes;
use crate::{ProtoError, Sha256};

/// Data bytes per chunk: with framing, well under the 64 KiB `max-message-size` every WebRTC
/// stack accepts (Chromium, Firefox, webrtc-rs).
pub const CHUNK_SIZE: usize = 32 * 1024;

/// WebRTC session setup, carried by the relay between two workers it paired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    /// A trickled ICE candidate (`candidate:` line), for stacks that do not wait for gathering.
    Candidate {
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    },
}

/// One message between two workers (or between the relay and a worker, which speaks the same
/// frames when it fetches a replica's output to compare it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// Send me the bytes that hash to `sha256` (activations, or a weights blob).
    Want {
        request: u64,
        sha256: Sha256,
    },
    Chunk(Chunk),
    /// I do not hold them (any more).
    Missing {
        request: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub request: u64,
    pub offset: u64,
    /// Size of the whole transfer.
    pub total: u64,
    /// CRC-32 (IEEE) of `data`.
    pub crc32: u32,
    pub data: Bytes,
}

impl PeerFrame {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("frames always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<PeerFrame, ProtoError> {
        postcard::from_bytes(bytes).map_err(|e| ProtoError::Frame(e.to_string()))
    }

    /// Data bytes the frame carries (a chunk's), for traffic counters.
    pub fn payload_len(&self) -> u64 {
        match self {
            PeerFrame::Chunk(c) => c.data.0.len() as u64,
            PeerFrame::Want { .. } | PeerFrame::Missing { .. } => 0,
        }
    }
}

/// The chunks answering `request` with `bytes`, in order. An empty transfer is one empty chunk,
/// so the receiver always hears an end.
pub fn chunks(request: u64, bytes: &[u8]) -> impl Iterator<Item = PeerFrame> + '_ {
    let total = bytes.len() as u64;
    let pieces = bytes.len().div_ceil(CHUNK_SIZE).max(1);
    (0..pieces).map(move |i| {
        let start = (i * CHUNK_SIZE).min(bytes.len());
        let data = &bytes[start..(start + CHUNK_SIZE).min(bytes.len())];
        PeerFrame::Chunk(Chunk {
            request,
            offset: start as u64,
            total,
            crc32: crc32fast::hash(data),
            data: Bytes(data.to_vec()),
        })
    })
}

/// Why a transfer was abandoned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("chunk at offset {offset} fails its checksum")]
    BadChecksum { offset: u64 },
    #[error("chunk at offset {got}, expected {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("the peer announced {announced} bytes, {expected} were expected")]
    WrongSize { expected: u64, announced: u64 },
    #[error("the bytes hash to {got}, not to the {expected} asked for")]
    WrongHash { expected: Sha256, got: Sha256 },
    #[error("the peer does not hold {0}")]
    Missing(Sha256),
}

/// A transfer being received: chunks must arrive in order (data channels and WebSockets are
/// ordered), each intact, adding up to `size` bytes that hash to `sha256`.
#[derive(Debug)]
pub struct Assembly {
    sha256: Sha256,
    size: u64,
    bytes: Vec<u8>,
}

impl Assembly {
    /// Expects exactly `size` bytes hashing to `sha256`; refuses anything larger before
    /// allocating for it.
    pub fn new(sha256: Sha256, size: u64) -> Assembly {
        Assembly { sha256, size, bytes: Vec::new() }
    }

    pub fn received(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Takes the next chunk; returns the whole once the last one is in and checks out.
    pub fn push(&mut self, chunk: &Chunk) -> Result<Option<Vec<u8>>, TransferError> {
        if chunk.total != self.size {
            return Err(TransferError::WrongSize { expected: self.size, announced: chunk.total });
        }
        if chunk.offset != self.received() {
            return Err(TransferError::OutOfOrder { expected: self.received(), got: chunk.offset });
        }
        if crc32fast::hash(&chunk.data.0) != chunk.crc32 {
            return Err(TransferError::BadChecksum { offset: chunk.offset });
        }
        if self.received() + chunk.data.0.len() as u64 > self.size {
            return Err(TransferError::WrongSize {
                expected: self.size,
                announced: self.received() + chunk.data.0.len() as u64,
            });
        }
        if self.bytes.is_empty() {
            self.bytes.reserve_exact(self.size as usize);
        }
        self.bytes.extend_from_slice(&chunk.data.0);
        if self.received() < self.size {
            return Ok(None);
        }
        let got = Sha256::of(&self.bytes);
        if got != self.sha256 {
            return Err(TransferError::WrongHash { expected: self.sha256, got });
        }
        Ok(Some(std::mem::take(&mut self.bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(bytes: &[u8], frames: impl Iterator<Item = PeerFrame>) -> Result<Vec<u8>, TransferError> {
        let mut assembly = Assembly::new(Sha256::of(bytes), bytes.len() as u64);
        for frame in frames {
            let PeerFrame::Chunk(chunk) = PeerFrame::decode(&frame.encode()).unwrap() else { panic!("chunks only") };
            if let Some(whole) = assembly.push(&chunk)? {
                return Ok(whole);
            }
        }
        panic!("the transfer never ended")
    }

    #[test]
    fn chunks_reassemble_into_the_original_bytes() {
        for len in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 17] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            assert_eq!(reassemble(&bytes, chunks(7, &bytes)).unwrap(), bytes, "{len} bytes");
        }
    }

    #[test]
    fn every_chunk_fits_a_data_channel_message() {
        let bytes = vec![0xab; 3 * CHUNK_SIZE];
        for frame in chunks(u64::MAX, &bytes) {
            assert!(frame.encode().len() < 64 * 1024);
        }
    }

    #[test]
    fn a_corrupted_chunk_is_rejected_by_its_checksum() {
        let bytes = vec![1u8; 2 * CHUNK_SIZE];
        let corrupted = chunks(1, &bytes).enumerate().map(|(i, frame)| match frame {
            PeerFrame::Chunk(mut c) if i == 1 => {
                c.data.0[10] ^= 0x40;
                PeerFrame::Chunk(c)
            }
            other => other,
        });
        assert_eq!(reassemble(&bytes, corrupted), Err(TransferError::BadChecksum { offset: CHUNK_SIZE as u64 }));
    }

    #[test]
    fn consistent_but_different_bytes_fail_the_hash() {
        let wanted = vec![1u8; 100];
        let offered = vec![2u8; 100];
        let mut assembly = Assembly::new(Sha256::of(&wanted), 100);
        let PeerFrame::Chunk(chunk) = chunks(1, &offered).next().unwrap() else { unreachable!() };
        assert!(matches!(assembly.push(&chunk), Err(TransferError::WrongHash { .. })));
    }

    #[test]
    fn sizes_and_order_are_enforced() {
        let bytes = vec![3u8; 2 * CHUNK_SIZE];
        let frames: Vec<Chunk> = chunks(1, &bytes)
            .map(|f| match f {
                PeerFrame::Chunk(c) => c,
                _ => unreachable!(),
            })
            .collect();
        let mut assembly = Assembly::new(Sha256::of(&bytes), bytes.len() as u64);
        assert!(matches!(assembly.push(&frames[1]), Err(TransferError::OutOfOrder { expected: 0, .. })));
        let mut small = Assembly::new(Sha256::of(&bytes), 10);
        assert!(matches!(small.push(&frames[0]), Err(TransferError::WrongSize { expected: 10, .. })));
    }
}
