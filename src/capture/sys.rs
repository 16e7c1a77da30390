//! The only `unsafe` of the crate: two calls libpcap and the `pcap` crate do not offer, each
//! a single C call on a handle we own, with why it is sound beside it.
//!
//! - [`open_offline`]: opens a capture file for libpcap through our own `FILE`, with a 1 MiB
//!   buffer (stdio's default is 4 KiB: one `read` system call per 4 KiB, 7% of a replay) and
//!   no stdio locking (in a multi-threaded process glibc otherwise takes the `FILE` lock, a
//!   locked instruction, on each of the two `fread`s per packet: 13% of a flood replay).
//! - [`join_fanout`]: joins a live AF_PACKET socket to a `PACKET_FANOUT` group, so several
//!   sockets (one per worker) share an interface's packets by a flow hash.
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

/// `PACKET_FANOUT` of `<linux/if_packet.h>` (socket option of SOL_PACKET).
const PACKET_FANOUT: libc::c_int = 18;
/// Fanout by the kernel's flow hash of the packet (`skb_get_hash`): symmetric for TCP/UDP
/// 5-tuples, so both directions of a flow reach the same socket.
pub const PACKET_FANOUT_HASH: u16 = 0;
/// Reassemble IP fragments before hashing, so every fragment goes where its flow goes.
pub const PACKET_FANOUT_FLAG_DEFRAG: u16 = 0x8000;

/// Joins the AF_PACKET socket of a live capture to fanout group `group` with `mode`
/// (`PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG`). Every socket of the group must be bound
/// to the same interface with the same mode; the kernel then gives each packet to one of them.
pub fn join_fanout(
    cap: &pcap::Capture<pcap::Active>,
    group: u16,
    mode: u16,
) -> std::io::Result<()> {
    let fd = cap.as_raw_fd();
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
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
