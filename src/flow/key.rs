//! The direction-independent flow key: both directions of a conversation map to the same key.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::decode::PacketMeta;

/// An endpoint as 16 bytes (IPv4 mapped into IPv6) plus port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: [u8; 16],
    pub port: u16,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Endpoint {
        let ip = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        Endpoint { ip, port }
    }
}

/// Bidirectional key: the two endpoints in sorted order, plus the IP protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
    pub protocol: u8,
}

impl FlowKey {
    /// The key of a packet, and whether the packet's source is the key's `lo` endpoint.
    pub fn of(p: &PacketMeta) -> (FlowKey, bool) {
        let s = Endpoint::new(p.src_ip, p.src_port);
        let d = Endpoint::new(p.dst_ip, p.dst_port);
        if s <= d {
            (
                FlowKey {
                    lo: s,
                    hi: d,
                    protocol: p.protocol,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: d,
                    hi: s,
                    protocol: p.protocol,
                },
                false,
            )
        }
    }

    /// A hash that is the same for both directions and stable across runs, for spreading
    /// packets over worker threads (each worker owning one table).
    pub fn symmetric_hash(&self) -> u64 {
        // FNV-1a over the sorted key: cheap and deterministic; not used for the table itself
        // (the table uses a randomly keyed SipHash, so crafted traffic cannot collide it).
        let mut h = FnvHasher(0xcbf2_9ce4_8422_2325);
        self.hash(&mut h);
        h.finish()
    }
}

struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn meta(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> PacketMeta {
        PacketMeta {
            ts_us: 0,
            src_ip: IpAddr::V4(Ipv4Addr::from(src)),
            dst_ip: IpAddr::V4(Ipv4Addr::from(dst)),
            src_port: sp,
            dst_port: dp,
            protocol: 6,
            wire_len: 60,
            ip_header_len: 20,
            transport_header_len: 20,
            payload_len: 0,
            tcp_flags: 0,
            tcp_window: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    #[test]
    fn both_directions_share_a_key_and_hash() {
        let (a, a_lo) = FlowKey::of(&meta([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80));
        let (b, b_lo) = FlowKey::of(&meta([10, 0, 0, 2], 80, [10, 0, 0, 1], 40000));
        assert_eq!(a, b);
        assert_ne!(a_lo, b_lo);
        assert_eq!(a.symmetric_hash(), b.symmetric_hash());
        let (c, _) = FlowKey::of(&meta([10, 0, 0, 1], 40001, [10, 0, 0, 2], 80));
        assert_ne!(a, c);
    }
}
