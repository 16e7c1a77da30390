//! The only `unsafe` of the crate: two calls libpcap and the `pcap` crate do not offer, each
//! a single C call on a handle we own, with why it is sound beside it.
//!
//! - [`unlocked_reads`]: tells stdio that libpcap's capture-file `FILE` is locked by its caller.
//!   In a multi-threaded process glibc otherwise takes the `FILE` lock (a locked instruction)
//!   on each of the two `fread`s per packet: 13% of a flood replay's time in `perf`.
//! - [`join_fanout`]: joins a live AF_PACKET socket to a `PACKET_FANOUT` group, so several
//!   sockets (one per worker) share an interface's packets by a flow hash.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

unsafe extern "C" {
    /// libpcap: the `FILE` an offline capture reads from (NULL for a live one).
    fn pcap_file(p: *mut libc::c_void) -> *mut libc::FILE;
    /// glibc/musl `<stdio_ext.h>`.
    fn __fsetlocking(fp: *mut libc::FILE, kind: libc::c_int) -> libc::c_int;
}

/// `FSETLOCKING_BYCALLER` of `<stdio_ext.h>` (glibc and musl).
const FSETLOCKING_BYCALLER: libc::c_int = 2;

/// Stops stdio from locking the capture file's `FILE` on every read.
///
/// Sound because the `FILE` belongs to the `pcap_t` that `cap` owns, libpcap reads it only from
/// calls on that handle, and every such call in the `pcap` crate (`next_packet`) takes
/// `&mut Capture`: no two threads can be inside it at once, which is all the lock guaranteed.
/// The handle outlives this call (borrowed); a NULL `FILE` (not a file capture) is skipped.
pub fn unlocked_reads(cap: &mut pcap::Capture<pcap::Offline>) {
    let p = cap.as_ptr().cast::<libc::c_void>();
    // SAFETY: `p` is the live pcap_t owned by `cap` (borrowed mutably for this call);
    // pcap_file only reads a field of it.
    let fp = unsafe { pcap_file(p) };
    if !fp.is_null() {
        // SAFETY: `fp` is the open FILE of that pcap_t, valid while `cap` lives; see above for
        // why caller locking holds.
        unsafe { __fsetlocking(fp, FSETLOCKING_BYCALLER) };
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
