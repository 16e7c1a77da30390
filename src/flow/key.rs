//! The direction-independent flow key: both directions of a conversation map to the same key.

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
    /// packets over worker threads (each worker owning one table). Not used for the table
    /// itself (that one is randomly seeded, so crafted traffic cannot collide it).
    pub fn symmetric_hash(&self) -> u64 {
        sym(
            endpoint_hash(u128::from_be_bytes(self.lo.ip), self.lo.port)
                .wrapping_add(endpoint_hash(u128::from_be_bytes(self.hi.ip), self.hi.port)),
            self.protocol,
        )
    }

    /// `FlowKey::of(p).0.symmetric_hash()`, without building the key (the reader of the
    /// workers computes it for every packet).
    pub fn symmetric_hash_of(p: &PacketMeta) -> u64 {
        sym(
            endpoint_hash(ip_bits(p.src_ip), p.src_port)
                .wrapping_add(endpoint_hash(ip_bits(p.dst_ip), p.dst_port)),
            p.protocol,
        )
    }
}

/// An address as the 128 bits of its [`Endpoint`] form (IPv4 mapped into IPv6).
fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (0xffff_u128 << 32) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// One endpoint's share of the symmetric hash; the two shares are added, which does not care
/// which endpoint is which.
fn endpoint_hash(ip: u128, port: u16) -> u64 {
    let x = (ip >> 64) as u64;
    let y = ip as u64 ^ (u64::from(port) << 48);
    // Two multiplications here, one full mix of the sum ([`sym`]): the reader of the workers
    // hashes every packet.
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ y.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
}

fn sym(sum: u64, protocol: u8) -> u64 {
    mix(sum ^ u64::from(protocol))
}

/// splitmix64's finaliser.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
        let m = meta([10, 0, 0, 2], 80, [10, 0, 0, 1], 40000);
        assert_eq!(FlowKey::symmetric_hash_of(&m), a.symmetric_hash());
        let m6 = PacketMeta {
            src_ip: "2001:db8::1".parse().unwrap(),
            dst_ip: "2001:db8::2".parse().unwrap(),
            ..m
        };
        assert_eq!(
            FlowKey::symmetric_hash_of(&m6),
            FlowKey::of(&m6).0.symmetric_hash()
        );
        assert_ne!(FlowKey::symmetric_hash_of(&m6), a.symmetric_hash());
        let (c, _) = FlowKey::of(&meta([10, 0, 0, 1], 40001, [10, 0, 0, 2], 80));
        assert_ne!(a, c);
    }
}
