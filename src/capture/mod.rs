//! Stage 1: capture. Packet sources — capture files (pcap and pcapng, via libpcap) and live
//! interfaces — yielding timestamped raw [`Frame`]s with their link type. The file and live
//! sources share one [`Next`] shape so `flows`, `replay` and `run` drive the same loop.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub mod blocks;
pub mod sys;

pub use blocks::BlockSource;

/// One captured frame, borrowed from the source until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time, µs since the Unix epoch (nanosecond files are truncated to µs by libpcap).
    pub ts_us: i64,
    /// Captured bytes (at most the snap length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub wire_len: u32,
    /// LINKTYPE_* number of the frame.
    pub linktype: i32,
}

/// What a source produced.
#[derive(Debug)]
pub enum Next<'a> {
    Frame(Frame<'a>),
    /// Live only: the read timeout passed with no packet (time to run timers).
    Timeout,
    /// End of the file.
    End,
}

/// Capture errors. `Open` and `UnknownLinkType` mean the source is unusable; `Damaged` comes
/// after the frames before the damage were delivered.
#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{path}: cannot open capture: {msg}")]
    Open { path: PathBuf, msg: String },
    #[error(
        "{path}: not a pcap or pcapng file (first bytes {magic:02x?}); give a capture written by tcpdump, dumpcap or Wireshark"
    )]
    NotACapture { path: PathBuf, magic: Vec<u8> },
    #[error(
        "{path}: link type {linktype} is not supported (supported: Ethernet, Linux SLL/SLL2, raw IP, BSD null/loop)"
    )]
    UnknownLinkType { path: PathBuf, linktype: i32 },
    #[error("{path}: damaged or truncated after {frames} good frames{}: {msg}", offset.map(|o| format!(" at byte offset {o}")).unwrap_or_default())]
    Damaged {
        path: PathBuf,
        frames: u64,
        offset: Option<u64>,
        msg: String,
    },
    #[error(
        "{path}: a valid pcapng that libpcap cannot read past {frames} frames: {msg}; split it into one file per interface (e.g. `tshark -r IN -Y frame.interface_id==0 -w OUT`)"
    )]
    Unreadable {
        path: PathBuf,
        frames: u64,
        msg: String,
    },
    #[error("interface {iface}: {msg}")]
    Live { iface: String, msg: String },
}

/// libpcap's words for a pcapng that is well formed but uses what it does not support (several
/// interfaces of different link types or snap lengths, unknown timestamp resolution, versions).
fn pcapng_unsupported(msg: &str) -> bool {
    [
        "different from the type of the first interface",
        "different from the snapshot length",
        "not supported",
        "unsupported",
        "unknown time stamp",
    ]
    .iter()
    .any(|p| msg.contains(p))
}

/// A live-capture error with what to do when it is a missing privilege.
fn live_error(iface: &str, msg: String) -> CaptureError {
    let lower = msg.to_ascii_lowercase();
    let msg = if lower.contains("operation not permitted") || lower.contains("permission denied") {
        format!(
            "{msg} (capturing needs CAP_NET_RAW: run as root, through the systemd unit, or after `setcap cap_net_raw+ep` on the binary)"
        )
    } else {
        msg
    };
    CaptureError::Live {
        iface: iface.into(),
        msg,
    }
}

/// A libpcap packet as a [`Frame`].
fn frame<'a>(p: &pcap::Packet<'a>, linktype: i32) -> Frame<'a> {
    Frame {
        ts_us: timeval_us(&p.header.ts),
        data: p.data,
        wire_len: p.header.len,
        linktype,
    }
}

/// A libpcap timestamp in µs since the epoch.
#[allow(clippy::useless_conversion)] // time_t / suseconds_t are not i64 on every target
fn timeval_us(t: &libc::timeval) -> i64 {
    i64::from(t.tv_sec)
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.tv_usec))
}

const PCAP_FILE_HEADER_LEN: u64 = 24;
const PCAP_RECORD_HEADER_LEN: u64 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileFormat {
    Pcap,
    PcapNg,
}

fn sniff_format(path: &Path) -> Result<FileFormat, CaptureError> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(|e| CaptureError::Open {
        path: path.into(),
        msg: e.to_string(),
    })?;
    let n = f.read(&mut magic).map_err(|e| CaptureError::Open {
        path: path.into(),
        msg: e.to_string(),
    })?;
    match magic {
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1]
            if n == 4 =>
        {
            Ok(FileFormat::Pcap)
        }
        [0x0a, 0x0d, 0x0d, 0x0a] if n == 4 => Ok(FileFormat::PcapNg),
        _ => Err(CaptureError::NotACapture {
            path: path.into(),
            magic: magic[..n].to_vec(),
        }),
    }
}

/// A capture file read with libpcap.
pub struct FileSource {
    path: PathBuf,
    cap: pcap::Capture<pcap::Offline>,
    linktype: i32,
    format: FileFormat,
    /// Byte offset of the next record (classic pcap only; pcapng offsets are not exposed).
    offset: u64,
    file_len: u64,
    frames: u64,
}

impl FileSource {
    /// Opens a pcap or pcapng file. Fails on files that are not captures and on link types the
    /// decoder cannot read.
    pub fn open(path: &Path) -> Result<FileSource, CaptureError> {
        let format = sniff_format(path)?;
        let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let cap = sys::open_offline(path).map_err(|msg| CaptureError::Open {
            path: path.into(),
            msg,
        })?;
        let linktype = cap.get_datalink().0;
        if !crate::decode::linktype::is_supported(linktype) {
            return Err(CaptureError::UnknownLinkType {
                path: path.into(),
                linktype,
            });
        }
        Ok(FileSource {
            path: path.into(),
            cap,
            linktype,
            format,
            offset: PCAP_FILE_HEADER_LEN,
            file_len,
            frames: 0,
        })
    }

    /// The next frame, `Next::End` at the end of the file, or `Damaged` where the file stops
    /// making sense (every frame before it has been delivered).
    pub fn next_frame(&mut self) -> Result<Next<'_>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.frames += 1;
                self.offset += PCAP_RECORD_HEADER_LEN + u64::from(p.header.caplen);
                Ok(Next::Frame(frame(&p, self.linktype)))
            }
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(e) if self.format == FileFormat::PcapNg && pcapng_unsupported(&e.to_string()) => {
                Err(CaptureError::Unreadable {
                    path: self.path.clone(),
                    frames: self.frames,
                    msg: e.to_string(),
                })
            }
            Err(e) => Err(CaptureError::Damaged {
                path: self.path.clone(),
                frames: self.frames,
                offset: (self.format == FileFormat::Pcap).then_some(self.offset),
                msg: e.to_string(),
            }),
        }
    }

    pub fn linktype(&self) -> i32 {
        self.linktype
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// Frames delivered so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }
    /// Bytes of the file consumed so far (classic pcap exact; pcapng estimated from frames).
    pub fn position(&self) -> u64 {
        self.offset.min(self.file_len)
    }
}

/// Settings of a live capture.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub interface: String,
    pub promiscuous: bool,
    pub snaplen: i32,
    pub buffer_size_bytes: i32,
    pub immediate_mode: bool,
    pub timeout_ms: i32,
    pub bpf_filter: Option<String>,
}

/// How long a live read waits when no packet is queued. The kernel buffer holds what arrives
/// meanwhile; under load the loop never waits.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Kernel-side counters of a live capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// A live interface read with libpcap.
pub struct LiveSource {
    iface: String,
    cap: pcap::Capture<pcap::Active>,
    linktype: i32,
}

impl LiveSource {
    /// Opens the interface (needs CAP_NET_RAW) and applies the BPF filter.
    pub fn open(o: &LiveOptions) -> Result<LiveSource, CaptureError> {
        let err = |e: pcap::Error| live_error(&o.interface, e.to_string());
        let mut cap = pcap::Capture::from_device(o.interface.as_str())
            .map_err(err)?
            .promisc(o.promiscuous)
            .snaplen(o.snaplen)
            .buffer_size(o.buffer_size_bytes)
            .immediate_mode(o.immediate_mode)
            .timeout(o.timeout_ms)
            .open()
            .map_err(err)?;
        if let Some(f) = o.bpf_filter.as_deref().filter(|f| !f.trim().is_empty()) {
            cap.filter(f, true).map_err(|e| CaptureError::Live {
                iface: o.interface.clone(),
                msg: format!("BPF filter {f:?}: {e}"),
            })?;
        }
        // Non-blocking reads: with TPACKET_V3 libpcap's read timeout never fires while the link
        // is silent, and the loop must wake up to expire flows and to stop.
        let cap = cap.setnonblock().map_err(|e| CaptureError::Live {
            iface: o.interface.clone(),
            msg: format!("cannot set non-blocking mode: {e}"),
        })?;
        let linktype = cap.get_datalink().0;
        if !crate::decode::linktype::is_supported(linktype) {
            return Err(CaptureError::Live {
                iface: o.interface.clone(),
                msg: format!("link type {linktype} is not supported"),
            });
        }
        Ok(LiveSource {
            iface: o.interface.clone(),
            cap,
            linktype,
        })
    }

    /// The next frame, or `Next::Timeout` when the read timeout passed with none.
    pub fn next_frame(&mut self) -> Result<Next<'_>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => Ok(Next::Frame(frame(&p, self.linktype))),
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing queued: wait a little instead of spinning.
                std::thread::sleep(IDLE_WAIT);
                Ok(Next::Timeout)
            }
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(e) => Err(CaptureError::Live {
                iface: self.iface.clone(),
                msg: e.to_string(),
            }),
        }
    }

    /// Kernel counters (received, dropped for lack of buffer, dropped by the interface).
    pub fn stats(&mut self) -> Result<LiveStats, CaptureError> {
        let s = self.cap.stats().map_err(|e| CaptureError::Live {
            iface: self.iface.clone(),
            msg: e.to_string(),
        })?;
        Ok(LiveStats {
            received: s.received.into(),
            dropped: s.dropped.into(),
            if_dropped: s.if_dropped.into(),
        })
    }

    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// Joins this socket to AF_PACKET fanout group `group` of `sockets` sockets, split by a
    /// symmetric hash of addresses and ports (both directions of a flow reach the same socket;
    /// the fragments of a datagram go together; see [`sys::fanout_program`]). Every
    /// socket of the group must be on the same interface.
    pub fn join_fanout(&self, group: u16, sockets: u32) -> Result<(), CaptureError> {
        sys::join_fanout(&self.cap, group, sockets).map_err(|e| CaptureError::Live {
            iface: self.iface.clone(),
            msg: format!("cannot join fanout group {group}: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn not_a_capture_is_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"hello world, not a pcap").unwrap();
        let e = FileSource::open(f.path()).err().unwrap();
        assert!(matches!(e, CaptureError::NotACapture { .. }), "{e}");
        assert!(e.to_string().contains(&f.path().display().to_string()));
    }

    #[test]
    fn missing_file_is_an_open_error() {
        let e = FileSource::open(Path::new("/nonexistent/x.pcap"))
            .err()
            .unwrap();
        assert!(matches!(e, CaptureError::Open { .. }), "{e}");
    }

    #[test]
    fn missing_privilege_names_cap_net_raw() {
        let e = live_error("eth0", "socket: Operation not permitted".into()).to_string();
        assert!(e.contains("CAP_NET_RAW"), "{e}");
        let e = live_error("eth0", "No such device exists".into()).to_string();
        assert!(!e.contains("CAP_NET_RAW"), "{e}");
    }

    /// A pcapng block: type, total length, body (padded to 4), total length.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend(std::iter::repeat_n(0u8, pad));
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn pcapng_with_two_link_types_is_unreadable_not_damaged() {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let idb = |lt: u16| {
            let mut b = lt.to_le_bytes().to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&65535u32.to_le_bytes());
            block(1, &b)
        };
        let epb = |ifc: u32| {
            let frame = [0u8; 60];
            let mut b = Vec::new();
            for v in [ifc, 0, 0, 60, 60] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&frame);
            block(6, &b)
        };
        let mut file = block(0x0A0D_0D0A, &shb);
        file.extend(idb(1));
        file.extend(epb(0));
        file.extend(idb(101));
        file.extend(epb(1));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&file).unwrap();
        let mut src = FileSource::open(f.path()).unwrap();
        assert!(matches!(src.next_frame(), Ok(Next::Frame(_))));
        let e = loop {
            match src.next_frame() {
                Ok(Next::Frame(_)) => continue,
                Ok(_) => panic!("read to the end"),
                Err(e) => break e,
            }
        };
        assert!(matches!(e, CaptureError::Unreadable { .. }), "{e}");
        assert!(!e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn missing_interface_is_a_clear_error() {
        let o = LiveOptions {
            interface: "fs-no-such-if0".into(),
            promiscuous: false,
            snaplen: 256,
            buffer_size_bytes: 1 << 20,
            immediate_mode: true,
            timeout_ms: 100,
            bpf_filter: None,
        };
        let e = LiveSource::open(&o).err().unwrap();
        assert!(e.to_string().contains("fs-no-such-if0"), "{e}");
    }
}
