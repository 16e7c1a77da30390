//! One of the crate's two `unsafe` modules (the other is [`crate::prefetch`], a cache hint):
//! three calls libpcap, the `pcap` crate and `std` do not offer, each a single C call on a
//! handle we own, with why it is sound beside it.
//!
//! - [`open_offline`]: opens a capture file for libpcap through our own `FILE`, with a 1 MiB
//!   buffer (stdio's default is 4 KiB: one `read` system call per 4 KiB, 7% of a replay) and
//!   no stdio locking (in a multi-threaded process glibc otherwise takes the `FILE` lock, a
//!   locked instruction, on each of the two `fread`s per packet: 13% of a flood replay).
//! - [`join_fanout`]: joins a live AF_PACKET socket to a `PACKET_FANOUT` group, so several
//!   sockets (one per worker) share an interface's packets by a flow hash, and gives the group
//!   its classic BPF program ([`fanout_program`]: a symmetric hash of addresses and ports).
//! - [`Mapped`]: a capture file mapped read-only into memory, for the workers' reader
//!   ([`crate::shard`]): frames are read in the page cache's pages, without the kernel's copy.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

unsafe extern "C" {
    /// libpcap: an offline capture reading from an open `FILE` (closed by `pcap_close`).
    fn pcap_fopen_offline(fp: *mut libc::FILE, errbuf: *mut libc::c_char) -> *mut libc::c_void;
    /// glibc/musl `<stdio_ext.h>`.
    fn __fsetlocking(fp: *mut libc::FILE, kind: libc::c_int) -> libc::c_int;
}

/// `FSETLOCKING_BYCALLER` of `<stdio_ext.h>` (glibc and musl).
const FSETLOCKING_BYCALLER: libc::c_int = 2;
/// libpcap's `PCAP_ERRBUF_SIZE`.
const PCAP_ERRBUF_SIZE: usize = 256;
/// stdio buffer of a capture file.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Opens `path` for libpcap as `pcap_open_offline` does, but on a `FILE` with a 1 MiB buffer
/// and caller locking. Errors are libpcap's (or the OS's) message.
///
/// Sound because: the path is a NUL-terminated copy that outlives the `fopen` call; the new
/// `FILE` is ours alone until handed to libpcap, and `setvbuf`/`__fsetlocking` are called
/// before any I/O on it (as `setvbuf` requires); `errbuf` is the size libpcap writes at most;
/// on failure we close the `FILE` (libpcap does not), on success the returned handle owns it
/// and the `Capture` owns the handle (`pcap_close` on drop). Caller locking holds because
/// libpcap reads the `FILE` only from calls on that handle, and every such call in the `pcap`
/// crate (`next_packet`) takes `&mut Capture`: no two threads can be inside it at once, which
/// is all the lock guaranteed.
pub fn open_offline(path: &Path) -> Result<pcap::Capture<pcap::Offline>, String> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| "the path contains a NUL byte".to_string())?;
    // SAFETY: both strings are NUL-terminated and live through the call.
    let fp = unsafe { libc::fopen(c.as_ptr(), c"rb".as_ptr()) };
    if fp.is_null() {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: `fp` is a FILE we just opened, not yet read; a NULL buffer lets stdio allocate it.
    unsafe {
        libc::setvbuf(fp, std::ptr::null_mut(), libc::_IOFBF, READ_BUFFER_BYTES);
        __fsetlocking(fp, FSETLOCKING_BYCALLER);
    }
    let mut errbuf = [0 as libc::c_char; PCAP_ERRBUF_SIZE];
    // SAFETY: `fp` is open; `errbuf` has PCAP_ERRBUF_SIZE bytes.
    let p = unsafe { pcap_fopen_offline(fp, errbuf.as_mut_ptr()) };
    match NonNull::new(p.cast()) {
        Some(nn) => Ok(pcap::Capture::from(nn)),
        None => {
            // SAFETY: libpcap did not take `fp`: it is still ours to close, once.
            unsafe { libc::fclose(fp) };
            // SAFETY: libpcap wrote a NUL-terminated message into `errbuf` (zeroed before).
            let msg = unsafe { CStr::from_ptr(errbuf.as_ptr()) };
            Err(msg.to_string_lossy().into_owned())
        }
    }
}

/// `PACKET_FANOUT` and `PACKET_FANOUT_DATA` of `<linux/if_packet.h>` (options of SOL_PACKET).
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_FANOUT_DATA: libc::c_int = 22;
/// Fanout by a classic BPF program's return value (the socket index).
const PACKET_FANOUT_CBPF: u16 = 6;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const BpfInsn,
}

/// Classic BPF opcodes used by [`fanout_program`] (`<linux/filter.h>`).
mod op {
    pub const LD_W_ABS: u16 = 0x20;
    pub const LD_H_ABS: u16 = 0x28;
    pub const LD_B_ABS: u16 = 0x30;
    pub const LD_H_IND: u16 = 0x48;
    pub const LD_MEM: u16 = 0x60;
    pub const LDX_B_MSH: u16 = 0xb1;
    pub const ST: u16 = 0x02;
    pub const TAX: u16 = 0x07;
    pub const ALU_XOR_X: u16 = 0xac;
    pub const ALU_AND_K: u16 = 0x54;
    pub const ALU_RSH_K: u16 = 0x74;
    pub const ALU_MOD_K: u16 = 0x94;
    pub const JEQ_K: u16 = 0x15;
    pub const JA: u16 = 0x05;
    pub const RET_A: u16 = 0x16;
    /// `ld [SKF_AD_OFF + SKF_AD_RXHASH]`: the kernel's flow hash of the packet.
    pub const RXHASH: u32 = 0xffff_f000 + 32;
    /// `ld [SKF_AD_OFF + SKF_AD_PROTOCOL]`: the frame's ethertype (host order).
    pub const PROTOCOL: u32 = 0xffff_f000;
}

/// A tiny assembler: instructions whose jumps name labels, resolved to offsets.
enum Asm {
    I(u16, u32),
    /// Jump if A == k to the first label, else to the second (`None`: next instruction).
    Jeq(u32, &'static str, Option<&'static str>),
    Ja(&'static str),
    Label(&'static str),
}

fn assemble(prog: &[Asm]) -> Vec<BpfInsn> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for a in prog {
        match a {
            Asm::Label(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    let rel = |from: usize, l: &str| -> u32 {
        at.get(l)
            .map_or(0, |t: &usize| t.saturating_sub(from + 1) as u32)
    };
    for a in prog {
        let i = out.len();
        match a {
            Asm::I(code, k) => out.push(BpfInsn {
                code: *code,
                jt: 0,
                jf: 0,
                k: *k,
            }),
            Asm::Jeq(k, t, f) => out.push(BpfInsn {
                code: op::JEQ_K,
                jt: rel(i, t) as u8,
                jf: f.map_or(0, |f| rel(i, f) as u8),
                k: *k,
            }),
            Asm::Ja(l) => out.push(BpfInsn {
                code: op::JA,
                jt: 0,
                jf: 0,
                k: rel(i, l),
            }),
            Asm::Label(_) => {}
        }
    }
    out
}

/// The group's program: the index of the socket for a packet, from a hash that is the same
/// for both directions — XOR of the addresses, XOR'ed with the XOR of the ports for TCP and
/// UDP (not for fragments: they carry no ports) — for IPv4 and IPv6 (no extension headers);
/// other packets use the kernel's flow hash, symmetric for
/// TCP/UDP but not for ICMP echo pairs. The kernel's own `PACKET_FANOUT_HASH` is not symmetric
/// for ICMP (request and reply split: seen in `tests/live_capture.rs`), hence a program.
pub fn fanout_program(sockets: u32) -> Vec<BpfInsn> {
    use Asm::*;
    use op::*;
    let n = sockets.max(1);
    // The program runs with the frame's data at its network header (after the link header),
    // so offsets are from the IP header and the ethertype is the skb's protocol.
    assemble(&[
        I(LD_W_ABS, PROTOCOL),
        Jeq(0x0800, "v4", None),
        Jeq(0x86dd, "v6", Some("other")),
        Label("v4"),
        I(LD_W_ABS, 12),
        I(TAX, 0),
        I(LD_W_ABS, 16),
        I(ALU_XOR_X, 0),
        I(ST, 0),
        I(LD_H_ABS, 6),
        I(ALU_AND_K, 0x3fff),
        Jeq(0, "v4proto", Some("iponly")),
        Label("v4proto"),
        I(LD_B_ABS, 9),
        Jeq(6, "v4ports", None),
        Jeq(17, "v4ports", Some("iponly")),
        Label("v4ports"),
        I(LDX_B_MSH, 0),
        I(LD_H_IND, 0),
        I(ST, 1),
        I(LD_H_IND, 2),
        I(TAX, 0),
        I(LD_MEM, 1),
        I(ALU_XOR_X, 0),
        I(TAX, 0),
        I(LD_MEM, 0),
        I(ALU_XOR_X, 0),
        Ja("mod"),
        Label("v6"),
        I(LD_W_ABS, 8),
        I(TAX, 0),
        I(LD_W_ABS, 24),
        I(ALU_XOR_X, 0),
        I(ST, 0),
        I(LD_W_ABS, 12),
        I(TAX, 0),
        I(LD_W_ABS, 28),
        I(ALU_XOR_X, 0),
        I(TAX, 0),
        I(LD_MEM, 0),
        I(ALU_XOR_X, 0),
        I(ST, 0),
        I(LD_W_ABS, 16),
        I(TAX, 0),
        I(LD_W_ABS, 32),
        I(ALU_XOR_X, 0),
        I(TAX, 0),
        I(LD_MEM, 0),
        I(ALU_XOR_X, 0),
        I(ST, 0),
        I(LD_W_ABS, 20),
        I(TAX, 0),
        I(LD_W_ABS, 36),
        I(ALU_XOR_X, 0),
        I(TAX, 0),
        I(LD_MEM, 0),
        I(ALU_XOR_X, 0),
        I(ST, 0),
        I(LD_B_ABS, 6),
        Jeq(6, "v6ports", None),
        Jeq(17, "v6ports", Some("iponly")),
        Label("v6ports"),
        I(LD_H_ABS, 40),
        I(ST, 1),
        I(LD_H_ABS, 42),
        I(TAX, 0),
        I(LD_MEM, 1),
        I(ALU_XOR_X, 0),
        I(TAX, 0),
        I(LD_MEM, 0),
        I(ALU_XOR_X, 0),
        Ja("mod"),
        Label("iponly"),
        I(LD_MEM, 0),
        Ja("mod"),
        Label("other"),
        I(LD_W_ABS, RXHASH),
        Label("mod"),
        // Fold the high half in (addresses differ mostly in their low bytes), then pick.
        I(ST, 2),
        I(ALU_RSH_K, 16),
        I(TAX, 0),
        I(LD_MEM, 2),
        I(ALU_XOR_X, 0),
        I(ALU_MOD_K, n),
        I(RET_A, 0),
    ])
}

/// A regular file mapped read-only (`PROT_READ`, `MAP_PRIVATE`), unmapped on drop.
///
/// Sound because: `mmap` returned `len` readable bytes at `ptr` (checked against
/// `MAP_FAILED`), which stay mapped until `drop` (the only `munmap`), and [`Mapped::bytes`]
/// borrows `self`, so no slice outlives the mapping; nothing writes through it (read-only), so
/// sharing it between threads (`Send`, `Sync`) is sharing a `&[u8]`. What a mapping cannot
/// promise, and every `mmap` reader (ripgrep's too) assumes: that no other process truncates
/// or rewrites the file while it is read (a truncated file raises `SIGBUS` on the pages past
/// its new end). Only capture files given to `replay` and `flows` with workers are mapped;
/// with one worker, and any file that cannot be mapped, they are read with `read(2)`.
pub struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

/// The page size `mmap` and `madvise` work in (x86_64 and aarch64 Linux with 4 KiB pages; a
/// larger real page size only makes [`Mapped::release_before`] release less).
const PAGE_BYTES: usize = 4096;

// SAFETY: see the type's doc: read-only memory owned by the value, read through `&self`.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps all of `file` (a regular, non-empty file), or `None`.
    pub fn of(file: &std::fs::File) -> Option<Mapped> {
        let meta = file.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of an open file descriptor (borrowed for
        // the call; the mapping does not need it open afterwards), at an address the kernel
        // chooses: no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        Some(Mapped {
            ptr: NonNull::new(p.cast())?,
            len,
        })
    }

    /// Lets the kernel take back the pages of the first `end` bytes (rounded down to whole
    /// pages) from this process (`MADV_DONTNEED`): they stay in the page cache, and a later
    /// read of them faults them in again with the same bytes. Keeps the mapping's share of the
    /// resident set small and spreads the unmapping over the read instead of the exit.
    pub fn release_before(&self, end: usize) {
        let end = end.min(self.len) & !(PAGE_BYTES - 1);
        if end == 0 {
            return;
        }
        // SAFETY: the range is whole pages at the start of our own mapping (`ptr` is page
        // aligned, as `mmap` returns it); for a read-only private file mapping `MADV_DONTNEED`
        // only drops page-table entries: the next access maps the file's page again, so every
        // byte reads as before (the same condition as the type's doc: the file is not
        // rewritten meanwhile). The result is ignored: on failure the pages simply stay.
        unsafe { libc::madvise(self.ptr.as_ptr().cast(), end, libc::MADV_DONTNEED) };
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `ptr` are mapped readable for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping `mmap` made, unmapped once; no slice of it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Joins the AF_PACKET socket of a live capture to fanout group `group` of `sockets` sockets,
/// split by [`fanout_program`]. Every socket of the group must be bound to the same interface;
/// the kernel then gives each packet to the socket the program names.
pub fn join_fanout(
    cap: &pcap::Capture<pcap::Active>,
    group: u16,
    sockets: u32,
) -> std::io::Result<()> {
    let fd = cap.as_raw_fd();
    // Not PACKET_FANOUT_FLAG_DEFRAG: the kernel would hand the sockets reassembled datagrams,
    // which one socket without fanout never sees (the decoder counts fragments as skipped).
    let mode = PACKET_FANOUT_CBPF;
    let arg: libc::c_int = libc::c_int::from(group) | (libc::c_int::from(mode) << 16);
    // SAFETY: `fd` is the open packet socket of `cap` (borrowed for the call); the option value
    // is a plain int read by the kernel for exactly `size_of::<c_int>()` bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_FANOUT,
            (&arg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let prog = fanout_program(sockets);
    let fprog = SockFprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `prog` (`len` instructions of the kernel's `sock_filter`
    // layout, repr(C)), both alive through the call; the kernel copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_FANOUT_DATA,
            (&fprog as *const SockFprog).cast(),
            std::mem::size_of::<SockFprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fanout_program_resolves_its_jumps_and_ends_in_a_return() {
        let p = fanout_program(2);
        assert!(p.len() < 100, "{}", p.len());
        assert_eq!(p.last().map(|i| i.code), Some(op::RET_A));
        for (i, ins) in p.iter().enumerate() {
            if ins.code == op::JEQ_K {
                assert!(i + 1 + (ins.jt as usize) < p.len());
                assert!(i + 1 + (ins.jf as usize) < p.len());
            }
            if ins.code == op::JA {
                assert!(i + 1 + (ins.k as usize) < p.len());
            }
        }
        // The modulus is the number of sockets.
        assert!(p.iter().any(|i| i.code == op::ALU_MOD_K && i.k == 2));
    }
}
