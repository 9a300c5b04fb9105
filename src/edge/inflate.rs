//! Request bodies that come compressed, decoded as they arrive and charged
//! to the request budget before each piece of them is written.
//!
//! A few KB of gzip can stand for megabytes of JSON, and brotli or zstd for
//! far more per byte, so what a compressed body costs is known only as it
//! is decoded. The decoders here are driven from the output side: each
//! [`Inflater::step`] writes at most [`STEP`] more decoded bytes, and
//! [`Inflater::held_after_step`] says, before the step, what the inflater
//! may hold once it is done: the decoded buffer's capacity, the part of the
//! decoder's window that decoding so far can have touched, and a fixed
//! allowance for the decoder's own state. The caller grows its permit to
//! that figure first (waiting for budget, see `crate::memory`), so a body
//! that stalls after its first few KB holds only memory the budget has
//! given it, and a flood of such bodies waits for budget instead of
//! growing the process.
//!
//! Windows are charged as they fill, not at their maximum: a decoder
//! writes its window as it produces output, so it never has touched more
//! window than it has decoded (brotli's window is at most 16 MiB, zstd's
//! is capped at 8 MiB as RFC 9659 allows, gzip's and deflate's are 32 KiB).
//!
//! The input side is a queue of the frames received so far ([`Feed`]): a
//! decoder that has used them up sees `WouldBlock`, keeps its state, and is
//! stepped again once the next frame has arrived; the end of the body is an
//! end of file, and a stream that stops short of its end is corrupt.

use std::collections::VecDeque;
use std::io::{self, BufReader, Read};

use bytes::{Buf, Bytes};

use crate::config::ContentCoding;
use crate::metrics::{CompressionMetrics, DecodeOutcome};

/// Decoded bytes one step may write.
pub(super) const STEP: usize = 64 * 1024;
/// zstd frames that ask for a larger window than 2^23 (8 MiB) are refused,
/// as RFC 9659 allows for HTTP.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// A decoded body that went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The decoded size passed the cap.
    TooLarge,
    /// The bytes are not a valid stream of their coding.
    Corrupt,
}

/// What one [`Inflater::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Wrote decoded bytes; there may be more.
    Wrote(usize),
    /// Used up the frames received so far.
    NeedsInput,
    /// The stream has ended.
    Ended,
}

/// A request body decoded as its frames arrive, into at most `limit` bytes.
pub struct Inflater {
    coding: ContentCoding,
    /// Where its outcome is counted (none in benches and fuzzing).
    counted: Option<CompressionMetrics>,
    decoder: Decoder,
    out: Vec<u8>,
    limit: usize,
}

enum Decoder {
    Gzip(flate2::read::MultiGzDecoder<Feed>),
    Deflate(flate2::read::ZlibDecoder<Feed>),
    Br(Box<brotli::Decompressor<Feed>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<Feed>>>),
}

/// The body's frames received and not yet decoded.
#[derive(Default)]
struct Feed {
    frames: VecDeque<Bytes>,
    ended: bool,
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(front) = self.frames.front_mut() {
            if front.is_empty() {
                self.frames.pop_front();
                continue;
            }
            let n = front.len().min(buf.len());
            buf[..n].copy_from_slice(&front[..n]);
            front.advance(n);
            return Ok(n);
        }
        if self.ended {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

impl Feed {
    fn unread(&self) -> bool {
        self.frames.iter().any(|f| !f.is_empty())
    }
}

/// The decoder's window, at most, and what its state takes besides (its
/// input buffer, tables, context): rough, fixed figures.
fn footprint(coding: ContentCoding) -> (usize, usize) {
    match coding {
        ContentCoding::Gzip | ContentCoding::Deflate => (32 * 1024, 64 * 1024),
        ContentCoding::Br => (16 << 20, 96 * 1024),
        ContentCoding::Zstd => (1 << ZSTD_WINDOW_LOG_MAX, 384 * 1024),
    }
}

impl Inflater {
    /// A decoder for `coding` whose output may not pass `limit` bytes.
    pub fn new(coding: ContentCoding, limit: usize) -> Result<Inflater, InflateError> {
        let feed = Feed::default();
        let decoder = match coding {
            ContentCoding::Gzip => Decoder::Gzip(flate2::read::MultiGzDecoder::new(feed)),
            ContentCoding::Deflate => Decoder::Deflate(flate2::read::ZlibDecoder::new(feed)),
            ContentCoding::Br => Decoder::Br(Box::new(brotli::Decompressor::new(feed, 4096))),
            ContentCoding::Zstd => {
                let mut d =
                    zstd::stream::read::Decoder::new(feed).map_err(|_| InflateError::Corrupt)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|_| InflateError::Corrupt)?;
                Decoder::Zstd(Box::new(d))
            }
        };
        Ok(Inflater {
            coding,
            decoder,
            counted: None,
            out: Vec::new(),
            limit,
        })
    }

    /// Counts how decoding ends in `metrics`.
    pub fn counting(mut self, metrics: &CompressionMetrics) -> Inflater {
        self.counted = Some(metrics.clone());
        self
    }

    fn feed(&mut self) -> &mut Feed {
        match &mut self.decoder {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Br(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut().get_mut(),
        }
    }

    /// Queues one frame of the body, to be decoded by the next steps.
    pub fn push(&mut self, frame: Bytes) {
        self.feed().frames.push_back(frame);
    }

    /// The body has ended: the decoder sees an end of file after what was pushed.
    pub fn end(&mut self) {
        self.feed().ended = true;
    }

    /// What a new decoder for `coding` holds before its first step: its
    /// state, without any window (charged before [`Inflater::new`]).
    pub fn state_bytes(coding: ContentCoding) -> usize {
        footprint(coding).1
    }

    /// Bytes the inflater may hold once the next step is done (see the module doc).
    pub fn held_after_step(&self) -> usize {
        let (window, state) = footprint(self.coding);
        let len = self.out.len();
        let capacity = self.out.capacity().max(self.grown_capacity());
        capacity + window.min(len + STEP) + state
    }

    /// The decoded buffer's capacity once the next step has made room:
    /// doubling, but never past the cap (plus the byte that tells a body
    /// over it).
    fn grown_capacity(&self) -> usize {
        let len = self.out.len();
        let need = len + self.room();
        if self.out.capacity() >= need {
            return self.out.capacity();
        }
        (self.out.capacity() * 2).clamp(need, (self.limit + 1).max(need))
    }

    fn room(&self) -> usize {
        STEP.min((self.limit + 1).saturating_sub(self.out.len()))
    }

    /// Decodes at most [`STEP`] more bytes of what has arrived.
    pub fn step(&mut self) -> Result<Progress, InflateError> {
        let len = self.out.len();
        let room = self.room();
        if room == 0 {
            return Err(self.failed(InflateError::TooLarge));
        }
        let capacity = self.grown_capacity();
        if capacity > self.out.capacity() {
            self.out.reserve_exact(capacity - len);
        }
        // Written over before it is read: the zeros only make the slice safe to lend.
        self.out.resize(len + room, 0);
        let read = match &mut self.decoder {
            Decoder::Gzip(d) => d.read(&mut self.out[len..]),
            Decoder::Deflate(d) => d.read(&mut self.out[len..]),
            Decoder::Br(d) => d.read(&mut self.out[len..]),
            Decoder::Zstd(d) => d.read(&mut self.out[len..]),
        };
        let wrote = *read.as_ref().unwrap_or(&0);
        self.out.truncate(len + wrote);
        match read {
            Ok(0) => Ok(Progress::Ended),
            Ok(_) if self.out.len() > self.limit => Err(self.failed(InflateError::TooLarge)),
            Ok(n) => Ok(Progress::Wrote(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Progress::NeedsInput),
            Err(_) => Err(self.failed(InflateError::Corrupt)),
        }
    }

    /// Decodes `chunk` whole, with no budget: for benches and tests.
    pub fn feed_all(&mut self, chunk: &[u8]) -> Result<(), InflateError> {
        self.push(Bytes::copy_from_slice(chunk));
        while let Progress::Wrote(_) = self.step()? {}
        Ok(())
    }

    /// Capacity of the decoded bytes, which the finished body keeps.
    pub fn decoded_capacity(&self) -> usize {
        self.out.capacity()
    }

    /// The decoded body, once the whole stream has arrived ([`Inflater::end`]
    /// and steps until [`Progress::Ended`]; steps still due are taken here,
    /// with no budget).
    pub fn finish(mut self) -> Result<Bytes, InflateError> {
        self.end();
        loop {
            match self.step()? {
                Progress::Wrote(_) => continue,
                Progress::Ended => break,
                // An ended feed never blocks; a decoder that says so is broken.
                Progress::NeedsInput => return Err(self.failed(InflateError::Corrupt)),
            }
        }
        // Bytes after the end of the stream.
        if self.feed().unread() {
            return Err(self.failed(InflateError::Corrupt));
        }
        count(self.counted.as_ref(), self.coding, DecodeOutcome::Ok);
        Ok(Bytes::from(std::mem::take(&mut self.out)))
    }

    /// `error`, counted.
    fn failed(&self, error: InflateError) -> InflateError {
        let outcome = match error {
            InflateError::TooLarge => DecodeOutcome::TooLarge,
            InflateError::Corrupt => DecodeOutcome::Corrupt,
        };
        count(self.counted.as_ref(), self.coding, outcome);
        error
    }
}

fn count(metrics: Option<&CompressionMetrics>, coding: ContentCoding, outcome: DecodeOutcome) {
    if let Some(m) = metrics {
        m.decoded(coding.token(), outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::compression::compress;

    fn body() -> Vec<u8> {
        (0..50_000u32)
            .flat_map(|i| {
                format!("{{\"n\":\"{:#x}\"}},", i.wrapping_mul(2_654_435_761)).into_bytes()
            })
            .collect()
    }

    #[test]
    fn every_coding_round_trips_in_frames_of_any_size() {
        let body = body();
        for coding in ContentCoding::ALL {
            let packed = compress(coding, &body).unwrap();
            assert!(packed.len() < body.len() / 2, "{coding:?}");
            // One byte at a time is the hardest case for a decoder that
            // must stop and resume wherever its input runs out.
            for size in [1, 7, 1000 + coding as usize, packed.len()] {
                let mut inflater = Inflater::new(coding, body.len()).unwrap();
                for chunk in packed.chunks(size) {
                    inflater.feed_all(chunk).unwrap();
                }
                assert_eq!(inflater.finish().unwrap(), body, "{coding:?} in {size}");
            }
            // One byte under the decoded size: refused, as too large.
            let mut inflater = Inflater::new(coding, body.len() - 1).unwrap();
            let fed = packed.chunks(4096).try_for_each(|c| inflater.feed_all(c));
            let result = fed.and_then(|()| inflater.finish().map(|_| ()));
            assert_eq!(result, Err(InflateError::TooLarge), "{coding:?}");
        }
    }

    #[test]
    fn each_step_stays_within_what_was_charged_before_it() {
        let zeros = vec![0u8; 8 << 20];
        for coding in ContentCoding::ALL {
            let bomb = compress(coding, &zeros).unwrap();
            let mut inflater = Inflater::new(coding, 5 << 20).unwrap();
            inflater.push(Bytes::from(bomb));
            let mut steps = 0;
            let result = loop {
                let charged = inflater.held_after_step();
                let step = inflater.step();
                let (window, state) = footprint(coding);
                let held = inflater.out.capacity() + window.min(inflater.out.len()) + state;
                assert!(held <= charged, "{coding:?}: {held} over {charged}");
                assert!(inflater.out.capacity() <= (5 << 20) + 1, "{coding:?}");
                steps += 1;
                match step {
                    Ok(Progress::Wrote(n)) => assert!(n <= STEP),
                    other => break other,
                }
            };
            assert_eq!(result, Err(InflateError::TooLarge), "{coding:?}");
            assert!(steps > 5 * 16, "{coding:?}: {steps} steps");
        }
    }

    #[test]
    fn a_stalled_body_waits_and_resumes() {
        let body = body();
        for coding in ContentCoding::ALL {
            let packed = compress(coding, &body).unwrap();
            let mut inflater = Inflater::new(coding, 1 << 20).unwrap();
            let (first, rest) = packed.split_at(packed.len() / 2);
            inflater.push(Bytes::copy_from_slice(first));
            let mut progress = inflater.step().unwrap();
            while let Progress::Wrote(_) = progress {
                progress = inflater.step().unwrap();
            }
            assert_eq!(progress, Progress::NeedsInput, "{coding:?}");
            inflater.push(Bytes::copy_from_slice(rest));
            assert_eq!(inflater.finish().unwrap(), body, "{coding:?}");
        }
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_corrupt() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#.repeat(50);
        for coding in ContentCoding::ALL {
            let mut inflater = Inflater::new(coding, 1 << 20).unwrap();
            let result = inflater
                .feed_all(b"this is not compressed at all, not even a little")
                .and_then(|()| inflater.finish().map(|_| ()));
            assert_eq!(result, Err(InflateError::Corrupt), "{coding:?}");
            let packed = compress(coding, &body).unwrap();
            let mut inflater = Inflater::new(coding, 1 << 20).unwrap();
            let result = inflater
                .feed_all(&packed[..packed.len() - 4])
                .and_then(|()| inflater.finish().map(|_| ()));
            assert_eq!(result, Err(InflateError::Corrupt), "{coding:?} truncated");
            // zlib's reader keeps what follows its stream in a buffer of
            // its own, unseen here, and ends at the stream's end: bytes
            // after it are ignored, as zlib's own tools ignore them.
            if coding == ContentCoding::Deflate {
                continue;
            }
            let mut trailing = packed.clone();
            trailing.extend_from_slice(b"xyz");
            let mut inflater = Inflater::new(coding, 1 << 20).unwrap();
            let result = inflater
                .feed_all(&trailing)
                .and_then(|()| inflater.finish().map(|_| ()));
            assert_eq!(result, Err(InflateError::Corrupt), "{coding:?} trailing");
        }
    }
}
