//! Classic pcap records read in 1 MiB blocks, for every file pipeline (one worker, and the
//! workers' reader, [`crate::shard`]): frames are sliced out of the blocks without libpcap's
//! per-record `fread`s and copy. The blocks are read on the calling thread
//! ([`BlockSource::open_inline`], what one worker uses: the kernel's copy lands in the cache
//! of the thread that reads the frames, and no extra thread competes for two cores), or by an
//! I/O thread ([`BlockSource::open`]); or the whole file is mapped and is the one block
//! ([`BlockSource::open_mapped`], the workers' reader: no copy at all, the lines a few records
//! ahead prefetched — with 2 workers less CPU time than reading, so more packets/s; with one
//! worker the mapping's page faults cost what the copy did, measured alike).
//!
//! Only well-formed records are read here. At the first record this reader does not take —
//! a version other than 2.4, a capture length over the snap length or libpcap's maximum, a
//! file ending inside a record, a read error — it hands over to libpcap ([`FileSource`]) at
//! that record, so damaged files give exactly libpcap's frames and errors. pcapng goes to
//! libpcap from the start.

use std::fs::File;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::sys::Mapped;
use super::{CaptureError, FileSource, Frame, Next};

/// Bytes per block.
const BLOCK_BYTES: usize = 1 << 20;
/// How far ahead of the record being read a mapped file's lines are asked for.
const PREFETCH_AHEAD_BYTES: usize = 4096;
/// Mapped: bytes read between two releases of the pages read.
const RELEASE_BYTES: usize = 4 << 20;
/// Blocks read ahead.
const BLOCKS_AHEAD: usize = 4;
/// libpcap's largest capture length for the link types we read (`MAXIMUM_SNAPLEN`).
const MAX_CAPLEN: u32 = 262_144;
const FILE_HEADER_BYTES: usize = 24;
const RECORD_HEADER_BYTES: usize = 16;

/// The file's header, as far as records need it.
#[derive(Clone, Copy, Debug)]
struct Format {
    swapped: bool,
    nanos: bool,
    /// Largest capture length libpcap accepts without truncating.
    max_caplen: u32,
}

impl Format {
    /// Classic pcap, version 2.4: the files this reader takes.
    fn of(h: &[u8]) -> Option<Format> {
        let magic = u32::from_le_bytes(h.get(0..4)?.try_into().ok()?);
        let (swapped, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xd4c3_b2a1 => (true, false),
            0xa1b2_3c4d => (false, true),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        let f = Format {
            swapped,
            nanos,
            max_caplen: 0,
        };
        let (major, minor) = (f.u16(h, 4)?, f.u16(h, 6)?);
        if (major, minor) != (2, 4) {
            return None;
        }
        let snap = f.u32(h, 16)?;
        let max_caplen = if snap == 0 || snap > MAX_CAPLEN {
            MAX_CAPLEN
        } else {
            snap
        };
        Some(Format { max_caplen, ..f })
    }

    fn u16(&self, b: &[u8], at: usize) -> Option<u16> {
        let v = u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?);
        Some(if self.swapped { v.swap_bytes() } else { v })
    }

    fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
        let v = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
        Some(if self.swapped { v.swap_bytes() } else { v })
    }
}

/// What the I/O thread sends: file bytes in order, then how the file ended.
enum Chunk {
    /// A block and how many of its bytes were read.
    Bytes(Vec<u8>, usize),
    Eof,
    Failed,
}

/// A capture file read by blocks, falling back to libpcap (see the module doc).
pub struct BlockSource {
    libpcap: FileSource,
    /// `None` once handed over to libpcap (or for files this reader does not take).
    blocks: Option<Blocks>,
}

/// Where blocks come from.
enum Feed {
    /// The I/O thread, and the channel that hands used buffers back to it.
    Thread {
        rx: Receiver<Chunk>,
        back: SyncSender<Vec<u8>>,
    },
    /// Read on the calling thread (one worker: no second core taken); how the file ended
    /// once the last bytes are in.
    Inline {
        file: File,
        block_bytes: usize,
        end: Option<Chunk>,
    },
    /// The whole file mapped ([`BlockSource::open_mapped`]): one block, nothing to read.
    Mapped(Mapped),
}

struct Blocks {
    format: Format,
    feed: Feed,
    /// The block being read (unused when mapped: see [`Blocks::cur`]).
    buf: Vec<u8>,
    /// Bytes of `cur` read from the file.
    len: usize,
    pos: usize,
    /// A record split between two blocks, put together.
    joined: Vec<u8>,
    /// Mapped: the lines before this offset have been prefetched.
    fetched: usize,
    /// Mapped: the pages before this offset have been released.
    released: usize,
    eof: bool,
    /// The file ended (not a read error).
    clean_end: bool,
}

/// The bytes of the block being read: the mapped file, or the block read into `buf`.
fn cur<'a>(feed: &'a Feed, buf: &'a [u8]) -> &'a [u8] {
    match feed {
        Feed::Mapped(m) => m.bytes(),
        _ => buf,
    }
}

impl Blocks {
    /// The bytes of the block being read.
    fn cur(&self) -> &[u8] {
        cur(&self.feed, &self.buf)
    }

    /// The next block; false at the end of the file (or a read error).
    fn next_block(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let chunk = match &mut self.feed {
            // The one block is the whole file: it ends where it ends.
            Feed::Mapped(_) => Some(Chunk::Eof),
            Feed::Thread { rx, .. } => rx.recv().ok(),
            Feed::Inline {
                file,
                block_bytes,
                end,
            } => match end.take() {
                Some(e) => Some(e),
                None => {
                    // `contiguous` has copied what it needs of the current block.
                    let mut buf = std::mem::take(&mut self.buf);
                    let (filled, e) = fill(file, &mut buf, *block_bytes);
                    *end = e;
                    if filled == 0 {
                        self.buf = buf;
                        end.take()
                    } else {
                        Some(Chunk::Bytes(buf, filled))
                    }
                }
            },
        };
        match chunk {
            Some(Chunk::Bytes(b, len)) => {
                let old = std::mem::replace(&mut self.buf, b);
                self.len = len.min(self.buf.len());
                if let Feed::Thread { back, .. } = &self.feed {
                    // The I/O thread reuses it; if it is gone, the buffer is simply dropped.
                    let _ = back.try_send(old);
                }
                self.pos = 0;
                true
            }
            Some(Chunk::Eof) => {
                self.eof = true;
                self.clean_end = true;
                false
            }
            Some(Chunk::Failed) | None => {
                self.eof = true;
                false
            }
        }
    }

    /// Makes the next `n` bytes contiguous: in `cur` from `pos`, or copied into `joined`.
    /// Returns where they are (true: in `joined`), or `None` if the file ends first.
    fn contiguous(&mut self, n: usize) -> Option<bool> {
        if self.len - self.pos >= n {
            return Some(false);
        }
        self.joined.clear();
        self.joined.extend_from_slice(
            cur(&self.feed, &self.buf)
                .get(self.pos..self.len)
                .unwrap_or_default(),
        );
        self.pos = self.len;
        while self.joined.len() < n {
            if !self.next_block() {
                return None;
            }
            let take = (n - self.joined.len()).min(self.len);
            self.joined
                .extend_from_slice(cur(&self.feed, &self.buf).get(..take).unwrap_or_default());
            self.pos = take;
        }
        Some(true)
    }
}

/// Reads the next block of the file into `buf` (made `block_bytes` long): the bytes read, and
/// how the file ended if it did.
fn fill(file: &mut File, buf: &mut Vec<u8>, block_bytes: usize) -> (usize, Option<Chunk>) {
    // Buffers are reused whole (full length): only a new one is zeroed.
    buf.resize(block_bytes, 0);
    let mut filled = 0;
    let end = loop {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break Some(Chunk::Eof),
            Ok(n) => {
                filled += n;
                if filled == buf.len() {
                    break None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break Some(Chunk::Failed),
        }
    };
    (filled, end)
}

/// The I/O thread: reads the file from `offset` in blocks until its end.
fn read_blocks(mut file: File, block_bytes: usize, tx: SyncSender<Chunk>, back: Receiver<Vec<u8>>) {
    loop {
        let mut buf = back.try_recv().unwrap_or_default();
        let (filled, end) = fill(&mut file, &mut buf, block_bytes);
        if filled > 0 && tx.send(Chunk::Bytes(buf, filled)).is_err() {
            return;
        }
        if let Some(end) = end {
            let _ = tx.send(end);
            return;
        }
    }
}

impl BlockSource {
    /// Opens a capture file: libpcap checks it (and reads anything but classic pcap 2.4);
    /// the I/O thread starts after the file header.
    pub fn open(path: &std::path::Path) -> Result<BlockSource, CaptureError> {
        Self::open_with(path, BLOCK_BYTES, How::Thread)
    }

    /// [`BlockSource::open`] without the I/O thread: blocks are read on the calling thread,
    /// as they are needed (one thread, no read-ahead).
    pub fn open_inline(path: &std::path::Path) -> Result<BlockSource, CaptureError> {
        Self::open_with(path, BLOCK_BYTES, How::Inline)
    }

    /// [`BlockSource::open_inline`] with the whole file mapped into memory (the workers'
    /// reader, [`crate::shard`]: no kernel copy); read with `read(2)` if it cannot be mapped.
    pub fn open_mapped(path: &std::path::Path) -> Result<BlockSource, CaptureError> {
        Self::open_with(path, BLOCK_BYTES, How::Mapped)
    }

    fn open_with(
        path: &std::path::Path,
        block_bytes: usize,
        how: How,
    ) -> Result<BlockSource, CaptureError> {
        let libpcap = FileSource::open(path)?;
        let mut header = [0u8; FILE_HEADER_BYTES];
        let block_bytes = block_bytes.max(1);
        let blocks = File::open(path).ok().and_then(|mut f| {
            f.read_exact(&mut header).ok()?;
            let format = Format::of(&header)?;
            let mapped = match how {
                How::Mapped => Mapped::of(&f),
                _ => None,
            };
            // Mapped: the whole file is the one block, read from after the file header.
            let (pos, len) = match &mapped {
                Some(m) => (FILE_HEADER_BYTES.min(m.bytes().len()), m.bytes().len()),
                None => (0, 0),
            };
            let feed = if let Some(m) = mapped {
                Feed::Mapped(m)
            } else if matches!(how, How::Thread) {
                let (tx, rx) = sync_channel(BLOCKS_AHEAD);
                let (back, back_rx) = sync_channel(BLOCKS_AHEAD + 2);
                std::thread::Builder::new()
                    .name("flowsentry-read".into())
                    .spawn(move || read_blocks(f, block_bytes, tx, back_rx))
                    .ok()?;
                Feed::Thread { rx, back }
            } else {
                Feed::Inline {
                    file: f,
                    block_bytes,
                    end: None,
                }
            };
            Some(Blocks {
                format,
                feed,
                buf: Vec::new(),
                len,
                pos,
                joined: Vec::new(),
                fetched: pos,
                released: 0,
                eof: false,
                clean_end: false,
            })
        });
        Ok(BlockSource { libpcap, blocks })
    }

    pub fn file_len(&self) -> u64 {
        self.libpcap.file_len()
    }
    pub fn position(&self) -> u64 {
        self.libpcap.position()
    }
    pub fn path(&self) -> &std::path::Path {
        self.libpcap.path()
    }
    pub fn frames(&self) -> u64 {
        self.libpcap.frames
    }

    /// Hands over to libpcap at the current record: libpcap skips the frames delivered.
    fn hand_over(&mut self) -> Result<Next<'_>, CaptureError> {
        self.blocks = None;
        let done = self.libpcap.frames;
        // Reopen: the handle from `open` has read nothing yet, but a fresh one is plainer.
        let mut fresh = FileSource::open(&self.libpcap.path)?;
        while fresh.frames < done {
            match fresh.next_frame()? {
                Next::Frame(_) => {}
                Next::End | Next::Timeout => break,
            }
        }
        self.libpcap = fresh;
        self.libpcap.next_frame()
    }

    /// The next frame, as [`FileSource::next_frame`] gives it.
    pub fn next_frame(&mut self) -> Result<Next<'_>, CaptureError> {
        let step = match self.blocks.as_mut() {
            None => return self.libpcap.next_frame(),
            Some(b) => b.step(),
        };
        let (ts_us, wire_len, joined, start, n) = match step {
            Step::End => return Ok(Next::End),
            Step::HandOver => return self.hand_over(),
            Step::Record {
                ts_us,
                wire_len,
                joined,
                start,
                n,
            } => (ts_us, wire_len, joined, start, n),
        };
        self.libpcap.frames += 1;
        self.libpcap.offset += (RECORD_HEADER_BYTES + n) as u64;
        let data = match &self.blocks {
            Some(b) if joined => b.joined.get(..n).unwrap_or_default(),
            Some(b) => b.cur().get(start..start + n).unwrap_or_default(),
            None => &[],
        };
        Ok(Next::Frame(Frame {
            ts_us,
            data,
            wire_len,
            linktype: self.libpcap.linktype,
        }))
    }
}

/// How [`BlockSource::open_with`] gets the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    Thread,
    Inline,
    Mapped,
}

/// What [`Blocks::step`] found.
enum Step {
    /// A record; its bytes are `joined[..n]` or `cur[start..start + n]`.
    Record {
        ts_us: i64,
        wire_len: u32,
        joined: bool,
        start: usize,
        n: usize,
    },
    End,
    HandOver,
}

impl Blocks {
    /// Reads the next record's header and makes its bytes contiguous.
    fn step(&mut self) -> Step {
        if self.pos == self.len && !self.next_block() {
            // The file ends after a whole record; a read error goes to libpcap (it says what).
            return if self.clean_end {
                Step::End
            } else {
                Step::HandOver
            };
        }
        if let Feed::Mapped(m) = &self.feed {
            // The mapped file's pages come from memory, not from a copy just made: every line
            // up to PREFETCH_AHEAD_BYTES ahead is asked for while the records before it are read.
            let b = m.bytes();
            let to = (self.pos + PREFETCH_AHEAD_BYTES).min(b.len());
            while self.fetched < to {
                if let Some(x) = b.get(self.fetched) {
                    crate::prefetch::prefetch(x);
                }
                self.fetched += 64;
            }
            // Pages read are handed back as the read goes (the resident set stays small; the
            // unmapping is spread over the read).
            if self.pos >= self.released + RELEASE_BYTES {
                m.release_before(self.pos);
                self.released = self.pos;
            }
        }
        let Some(joined) = self.contiguous(RECORD_HEADER_BYTES) else {
            return Step::HandOver;
        };
        let h = if joined {
            self.joined.get(..RECORD_HEADER_BYTES)
        } else {
            self.cur().get(self.pos..self.pos + RECORD_HEADER_BYTES)
        };
        let f = self.format;
        let Some(h) = h else {
            return Step::HandOver;
        };
        let (Some(sec), Some(frac), Some(caplen), Some(len)) =
            (f.u32(h, 0), f.u32(h, 4), f.u32(h, 8), f.u32(h, 12))
        else {
            return Step::HandOver;
        };
        if caplen > f.max_caplen {
            return Step::HandOver;
        }
        // The header is read: step over it (it may have come through `joined`).
        if !joined {
            self.pos += RECORD_HEADER_BYTES;
        }
        let n = caplen as usize;
        let Some(joined) = self.contiguous(n) else {
            return Step::HandOver;
        };
        let start = self.pos;
        if !joined {
            self.pos += n;
        }
        // As libpcap: signed 32-bit fields, nanoseconds divided down to microseconds.
        let (sec, frac) = (i64::from(sec as i32), i64::from(frac as i32));
        let usec = if f.nanos { frac / 1000 } else { frac };
        Step::Record {
            ts_us: sec.saturating_mul(1_000_000).saturating_add(usec),
            wire_len: len,
            joined,
            start,
            n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// Every frame (time, bytes, lengths) and the end: `Ok(())` or the error's text.
    type Read = (Vec<(i64, Vec<u8>, u32, i32)>, Result<(), String>);

    fn by_libpcap(p: &Path) -> Read {
        let mut s = FileSource::open(p).unwrap();
        let mut v = Vec::new();
        loop {
            match s.next_frame() {
                Ok(Next::Frame(f)) => v.push((f.ts_us, f.data.to_vec(), f.wire_len, f.linktype)),
                Ok(_) => return (v, Ok(())),
                Err(e) => return (v, Err(e.to_string())),
            }
        }
    }

    fn by_blocks(p: &Path, block_bytes: usize, how: How) -> Read {
        let mut s = BlockSource::open_with(p, block_bytes, how).unwrap();
        let mut v = Vec::new();
        loop {
            match s.next_frame() {
                Ok(Next::Frame(f)) => v.push((f.ts_us, f.data.to_vec(), f.wire_len, f.linktype)),
                Ok(_) => return (v, Ok(())),
                Err(e) => return (v, Err(e.to_string())),
            }
        }
    }

    /// The blocks give libpcap's frames, on whole captures and on captures cut inside a
    /// record header, inside a record and with a capture length libpcap refuses.
    #[test]
    fn blocks_read_what_libpcap_reads() {
        let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let mut checked = 0;
        for name in [
            "nfstream__synscan.pcap",
            "tcpreplay__test.pcap",
            "nfstream__WebattackSQLinj.pcap",
        ] {
            let p = data.join(name);
            let whole = by_libpcap(&p);
            assert!(whole.0.len() > 90 && whole.1.is_ok(), "{name}");
            // 1 MiB blocks, and blocks of 1 and 100 bytes: records split between blocks
            // (mapped: one block, whatever the size).
            for b in [BLOCK_BYTES, 1, 100] {
                for how in [How::Thread, How::Inline, How::Mapped] {
                    assert_eq!(by_blocks(&p, b, how), whole, "{name} {b} {how:?}");
                }
            }
            let mapped = BlockSource::open_mapped(&p).unwrap();
            assert!(matches!(
                mapped.blocks.as_ref().map(|b| &b.feed),
                Some(Feed::Mapped(_))
            ));
            let bytes = std::fs::read(&p).unwrap();
            // The third record's capture length, made too large.
            let third = {
                let mut off = 24;
                for _ in 0..2 {
                    let cap = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap());
                    off += 16 + cap as usize;
                }
                off
            };
            let mut bad = bytes.clone();
            bad[third + 8..third + 12].copy_from_slice(&300_000u32.to_le_bytes());
            for cut in [bytes.len() / 2, 24 + 7, bytes.len() - 3] {
                for content in [&bytes[..cut], &bad[..]] {
                    let mut f = tempfile::NamedTempFile::new().unwrap();
                    f.write_all(content).unwrap();
                    let want = by_libpcap(f.path());
                    assert!(want.1.is_err(), "{name} {cut}");
                    for b in [BLOCK_BYTES, 100] {
                        for how in [How::Thread, How::Inline, How::Mapped] {
                            let got = by_blocks(f.path(), b, how);
                            assert_eq!(got, want, "{name} {cut} {b} {how:?}");
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 18);
    }

    /// A mapped file longer than [`RELEASE_BYTES`]: the pages read are released as the read
    /// goes, and every frame is still libpcap's.
    #[test]
    fn a_mapped_file_releases_its_pages_and_reads_every_frame() {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tcpreplay__test.pcap");
        let bytes = std::fs::read(&p).unwrap();
        let mut big = bytes.clone();
        while big.len() < 3 * RELEASE_BYTES {
            big.extend_from_slice(&bytes[FILE_HEADER_BYTES..]);
        }
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&big).unwrap();
        let want = by_libpcap(f.path());
        assert!(want.1.is_ok() && want.0.len() > 10_000);
        assert_eq!(by_blocks(f.path(), BLOCK_BYTES, How::Mapped), want);
    }
}
