//! Stage 2: decode. Raw frame bytes (with their link type and timestamp) become a small plain
//! [`PacketMeta`] via `etherparse`; anything that cannot become one is a [`SkipReason`], counted
//! by the caller, never an error.

use std::net::IpAddr;

/// TCP flag bits as they sit in the TCP header's flags byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// What the flow table needs of one packet. Plain data, `Copy`, no borrowed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// Capture time, µs since the Unix epoch.
    pub ts_us: i64,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// 0 for transports without ports (ICMP, …).
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number of the transport (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP).
    pub protocol: u8,
    /// Frame length on the wire (pcap `orig_len`).
    pub wire_len: u32,
    /// IPv4 header (options included) or IPv6 header plus extension headers, in bytes.
    pub ip_header_len: u16,
    /// Transport header bytes: TCP header with options, 8 for UDP, 8 for ICMP, 12 for SCTP (common header).
    pub transport_header_len: u16,
    /// Transport payload bytes, from the IP length fields (not the captured length).
    pub payload_len: u32,
    /// TCP flags byte (see [`tcp_flags`]); 0 for non-TCP.
    pub tcp_flags: u8,
    /// TCP window field (unscaled); 0 for non-TCP.
    pub tcp_window: u16,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    /// ICMP/ICMPv6 type and code; 0 otherwise.
    pub icmp_type: u8,
    pub icmp_code: u8,
}

impl PacketMeta {
    /// The IP-level fields; transport fields start at zero.
    fn ip(
        ts_us: i64,
        src_ip: IpAddr,
        dst_ip: IpAddr,
        protocol: u8,
        wire_len: u32,
        ip_header_len: u16,
    ) -> PacketMeta {
        PacketMeta {
            ts_us,
            src_ip,
            dst_ip,
            src_port: 0,
            dst_port: 0,
            protocol,
            wire_len,
            ip_header_len,
            transport_header_len: 0,
            payload_len: 0,
            tcp_flags: 0,
            tcp_window: 0,
            tcp_seq: 0,
            tcp_ack: 0,
            icmp_type: 0,
            icmp_code: 0,
        }
    }
}

/// Link-layer header types (LINKTYPE_* numbers) the decoder understands.
pub mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const RAW_OPENBSD: i32 = 12;
    pub const RAW_BSDOS: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;

    /// True if [`super::decode`] can read frames of this link type.
    pub fn is_supported(linktype: i32) -> bool {
        matches!(
            linktype,
            NULL | ETHERNET
                | RAW_OPENBSD
                | RAW_BSDOS
                | RAW
                | LOOP
                | LINUX_SLL
                | IPV4
                | IPV6
                | LINUX_SLL2
        )
    }
}

/// Why a frame did not become a [`PacketMeta`]. Counted, never fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SkipReason {
    /// A zero-length frame.
    Empty,
    /// A link type the decoder does not read.
    UnsupportedLinkType,
    /// Not IPv4/IPv6 (ARP, LLDP, STP, …).
    NotIp,
    /// An IP fragment: the transport header is missing or incomplete.
    IpFragment,
    /// An IP transport other than TCP, UDP, SCTP, ICMP and ICMPv6 (GRE, ESP, …).
    UnsupportedTransport,
    /// Captured bytes end inside a header (snaplen cut too short, damaged record).
    Truncated,
    /// Header fields contradict each other (bad version, lengths smaller than headers, …).
    Malformed,
}

impl SkipReason {
    /// Every reason, in a fixed order.
    pub const ALL: [SkipReason; 7] = [
        SkipReason::Empty,
        SkipReason::UnsupportedLinkType,
        SkipReason::NotIp,
        SkipReason::IpFragment,
        SkipReason::UnsupportedTransport,
        SkipReason::Truncated,
        SkipReason::Malformed,
    ];

    /// Stable snake_case name, used in summaries, stats lines and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Empty => "empty",
            SkipReason::UnsupportedLinkType => "unsupported_linktype",
            SkipReason::NotIp => "not_ip",
            SkipReason::IpFragment => "ip_fragment",
            SkipReason::UnsupportedTransport => "unsupported_transport",
            SkipReason::Truncated => "truncated",
            SkipReason::Malformed => "malformed",
        }
    }
}

/// Skipped frames counted by reason. No allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipCounts([u64; SkipReason::ALL.len()]);

impl SkipCounts {
    pub fn add(&mut self, r: SkipReason) {
        self.0[r as usize] += 1;
    }
    pub fn get(&self, r: SkipReason) -> u64 {
        self.0[r as usize]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Non-zero counts, in [`SkipReason::ALL`] order.
    pub fn nonzero(&self) -> impl Iterator<Item = (SkipReason, u64)> + '_ {
        SkipReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
    pub fn merge(&mut self, other: &SkipCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MC: u16 = 0x8848;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const MAX_VLAN_TAGS: usize = 8;
const MAX_MPLS_LABELS: usize = 16;

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Where the IP header starts, or why there is none.
enum L3<'a> {
    Ip(&'a [u8]),
    Skip(SkipReason),
}

fn from_ethertype(ethertype: u16, rest: &[u8]) -> L3<'_> {
    let mut ethertype = ethertype;
    let mut rest = rest;
    let mut tags = 0;
    loop {
        match ethertype {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return L3::Ip(rest),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return L3::Skip(SkipReason::Malformed);
                }
                let Some(next) = be16(rest, 2) else {
                    return L3::Skip(SkipReason::Truncated);
                };
                ethertype = next;
                rest = &rest[4..];
            }
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MC => {
                for _ in 0..MAX_MPLS_LABELS {
                    let Some(label) = rest.get(..4) else {
                        return L3::Skip(SkipReason::Truncated);
                    };
                    let bottom = label[2] & 0x01 != 0;
                    rest = &rest[4..];
                    if bottom {
                        // The payload's type is not in the label stack: guess from the version.
                        return match rest.first().map(|b| b >> 4) {
                            Some(4) | Some(6) => L3::Ip(rest),
                            Some(_) => L3::Skip(SkipReason::NotIp),
                            None => L3::Skip(SkipReason::Truncated),
                        };
                    }
                }
                return L3::Skip(SkipReason::Malformed);
            }
            ETHERTYPE_PPPOE_SESSION => {
                // 6 bytes of PPPoE header, then the 2-byte PPP protocol.
                return match be16(rest, 6) {
                    Some(0x0021) => L3::Ip(&rest[8..]),
                    Some(0x0057) => L3::Ip(&rest[8..]),
                    Some(_) => L3::Skip(SkipReason::NotIp),
                    None => L3::Skip(SkipReason::Truncated),
                };
            }
            _ => return L3::Skip(SkipReason::NotIp),
        }
    }
}

fn link_to_ip(linktype: i32, data: &[u8]) -> L3<'_> {
    use linktype::*;
    match linktype {
        ETHERNET => match be16(data, 12) {
            Some(t) => from_ethertype(t, &data[14..]),
            None => L3::Skip(SkipReason::Truncated),
        },
        LINUX_SLL => match be16(data, 14) {
            Some(t) => from_ethertype(t, &data[16..]),
            None => L3::Skip(SkipReason::Truncated),
        },
        LINUX_SLL2 => match (be16(data, 0), data.get(20..)) {
            (Some(t), Some(rest)) => from_ethertype(t, rest),
            _ => L3::Skip(SkipReason::Truncated),
        },
        RAW | RAW_OPENBSD | RAW_BSDOS | IPV4 | IPV6 => L3::Ip(data),
        NULL | LOOP => {
            let Some(fam) = data.get(..4) else {
                return L3::Skip(SkipReason::Truncated);
            };
            // NULL stores the address family in the capturing host's byte order, LOOP in
            // network order: accept both. 2 = AF_INET; 10, 24, 28, 30 = AF_INET6 on various OSes.
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let is_ip = |f: u32| matches!(f, 2 | 10 | 24 | 28 | 30);
            if is_ip(le) || is_ip(be) {
                L3::Ip(&data[4..])
            } else {
                L3::Skip(SkipReason::NotIp)
            }
        }
        _ => L3::Skip(SkipReason::UnsupportedLinkType),
    }
}

/// Decodes one frame. `wire_len` is the frame's length on the wire (pcap `orig_len`); lengths in
/// the result come from the IP length fields, so a snaplen-cut frame whose headers are complete
/// still decodes with its true payload length.
pub fn decode(
    linktype: i32,
    ts_us: i64,
    data: &[u8],
    wire_len: u32,
) -> Result<PacketMeta, SkipReason> {
    if data.is_empty() {
        return Err(SkipReason::Empty);
    }
    let ip = match link_to_ip(linktype, data) {
        L3::Ip(ip) => ip,
        L3::Skip(r) => return Err(r),
    };
    let link_len = data.len() - ip.len();
    match ip.first().map(|b| b >> 4) {
        Some(4) => decode_ipv4(ts_us, ip, wire_len),
        Some(6) => decode_ipv6(ts_us, ip, wire_len, link_len),
        Some(_) => Err(SkipReason::Malformed),
        None => Err(SkipReason::Truncated),
    }
}

fn decode_ipv4(ts_us: i64, ip: &[u8], wire_len: u32) -> Result<PacketMeta, SkipReason> {
    use etherparse::err::ipv4::HeaderSliceError;
    let h = etherparse::Ipv4HeaderSlice::from_slice(ip).map_err(|e| match e {
        HeaderSliceError::Len(_) => SkipReason::Truncated,
        HeaderSliceError::Content(_) => SkipReason::Malformed,
    })?;
    if h.more_fragments() || h.fragments_offset().value() != 0 {
        return Err(SkipReason::IpFragment);
    }
    let ihl = usize::from(h.ihl()) * 4;
    let total = usize::from(h.total_len());
    if total < ihl {
        return Err(SkipReason::Malformed);
    }
    let transport = &ip[ihl..ip.len().min(total).max(ihl)];
    let meta = PacketMeta::ip(
        ts_us,
        IpAddr::V4(h.source_addr()),
        IpAddr::V4(h.destination_addr()),
        h.protocol().0,
        wire_len,
        ihl as u16,
    );
    decode_transport(meta, transport, total - ihl)
}

fn decode_ipv6(
    ts_us: i64,
    ip: &[u8],
    wire_len: u32,
    link_len: usize,
) -> Result<PacketMeta, SkipReason> {
    use etherparse::err::ipv6::HeaderSliceError;
    let h = etherparse::Ipv6HeaderSlice::from_slice(ip).map_err(|e| match e {
        HeaderSliceError::Len(_) => SkipReason::Truncated,
        HeaderSliceError::Content(_) => SkipReason::Malformed,
    })?;
    let after = &ip[40..];
    let (exts, next, rest) = etherparse::Ipv6ExtensionsSlice::from_slice(h.next_header(), after)
        .map_err(|e| match e {
            etherparse::err::ipv6_exts::HeaderSliceError::Len(_) => SkipReason::Truncated,
            etherparse::err::ipv6_exts::HeaderSliceError::Content(_) => SkipReason::Malformed,
        })?;
    if exts.is_fragmenting_payload() {
        return Err(SkipReason::IpFragment);
    }
    let ext_len = after.len() - rest.len();
    // payload_length 0 with extension headers is a jumbogram (or BIG TCP): its length comes from
    // the frame on the wire.
    let ip_payload = match usize::from(h.payload_length()) {
        0 if !exts.is_empty() => (wire_len as usize).saturating_sub(link_len + 40),
        n => n,
    };
    if ip_payload < ext_len {
        return Err(SkipReason::Malformed);
    }
    let meta = PacketMeta::ip(
        ts_us,
        IpAddr::V6(h.source_addr()),
        IpAddr::V6(h.destination_addr()),
        next.0,
        wire_len,
        (40 + ext_len).min(usize::from(u16::MAX)) as u16,
    );
    decode_transport(meta, rest, ip_payload - ext_len)
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;
const UDP_HEADER_LEN: usize = 8;
/// SCTP common header (ports, verification tag, checksum); the chunks count as payload.
const SCTP_HEADER_LEN: usize = 12;
const ICMP_HEADER_LEN: usize = 8;

/// `t` holds the captured transport bytes, `len` the transport length the IP header declares.
fn decode_transport(mut m: PacketMeta, t: &[u8], len: usize) -> Result<PacketMeta, SkipReason> {
    let header_len = match m.protocol {
        IPPROTO_TCP => {
            use etherparse::err::tcp::HeaderSliceError;
            let h = etherparse::TcpHeaderSlice::from_slice(t).map_err(|e| match e {
                HeaderSliceError::Len(_) => SkipReason::Truncated,
                HeaderSliceError::Content(_) => SkipReason::Malformed,
            })?;
            m.src_port = h.source_port();
            m.dst_port = h.destination_port();
            m.tcp_flags = t[13];
            m.tcp_window = h.window_size();
            m.tcp_seq = h.sequence_number();
            m.tcp_ack = h.acknowledgment_number();
            usize::from(h.data_offset()) * 4
        }
        IPPROTO_UDP => {
            let (Some(sp), Some(dp)) = (be16(t, 0), be16(t, 2)) else {
                return Err(SkipReason::Truncated);
            };
            m.src_port = sp;
            m.dst_port = dp;
            UDP_HEADER_LEN
        }
        IPPROTO_SCTP => {
            let (Some(sp), Some(dp)) = (be16(t, 0), be16(t, 2)) else {
                return Err(SkipReason::Truncated);
            };
            m.src_port = sp;
            m.dst_port = dp;
            SCTP_HEADER_LEN
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let (Some(ty), Some(code)) = (t.first(), t.get(1)) else {
                return Err(SkipReason::Truncated);
            };
            m.icmp_type = *ty;
            m.icmp_code = *code;
            ICMP_HEADER_LEN
        }
        _ => return Err(SkipReason::UnsupportedTransport),
    };
    if len < header_len {
        return Err(SkipReason::Malformed);
    }
    m.transport_header_len = header_len as u16;
    m.payload_len = (len - header_len) as u32;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1000, 29200)
            .syn()
            .ack(5)
            .psh();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ipv4_tcp_fields() {
        let f = tcp_frame(b"hello");
        let m = decode(linktype::ETHERNET, 7, &f, f.len() as u32).unwrap();
        assert_eq!(m.src_ip.to_string(), "10.0.0.1");
        assert_eq!((m.src_port, m.dst_port, m.protocol), (40000, 80, 6));
        assert_eq!(m.payload_len, 5);
        assert_eq!(m.transport_header_len, 20);
        assert_eq!(m.ip_header_len, 20);
        assert_eq!(m.tcp_window, 29200);
        assert_eq!(m.tcp_seq, 1000);
        assert_eq!(m.tcp_ack, 5);
        assert_eq!(
            m.tcp_flags,
            tcp_flags::SYN | tcp_flags::ACK | tcp_flags::PSH
        );
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut f = tcp_frame(b"");
        f.resize(60, 0);
        let m = decode(linktype::ETHERNET, 0, &f, 60).unwrap();
        assert_eq!(m.payload_len, 0);
    }

    #[test]
    fn snaplen_cut_keeps_declared_length() {
        let f = tcp_frame(&[0u8; 1000]);
        let cut = &f[..14 + 20 + 20 + 10];
        let m = decode(linktype::ETHERNET, 0, cut, f.len() as u32).unwrap();
        assert_eq!(m.payload_len, 1000);
        assert_eq!(
            decode(linktype::ETHERNET, 0, &f[..14 + 20 + 10], f.len() as u32),
            Err(SkipReason::Truncated)
        );
    }

    #[test]
    fn vlan_and_qinq() {
        let f = tcp_frame(b"x");
        for tags in [1usize, 2] {
            let mut v = f[..12].to_vec();
            for i in 0..tags {
                v.extend_from_slice(
                    &(if i == 0 && tags == 2 {
                        ETHERTYPE_QINQ
                    } else {
                        ETHERTYPE_VLAN
                    })
                    .to_be_bytes(),
                );
                v.extend_from_slice(&[0x00, 0x64]);
            }
            v.extend_from_slice(&f[12..]);
            let m = decode(linktype::ETHERNET, 0, &v, v.len() as u32).unwrap();
            assert_eq!(m.payload_len, 1, "{tags} tags");
            assert_eq!(m.dst_port, 80);
        }
    }

    #[test]
    fn ipv6_udp_with_hop_by_hop() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([1; 16], [2; 16], 64)
            .udp(5353, 53);
        let mut f = Vec::new();
        b.write(&mut f, &[9u8; 12]).unwrap();
        // Insert an 8-byte hop-by-hop header between the IPv6 header and UDP.
        let ip = 14;
        f[ip + 6] = 0; // next header: hop-by-hop
        let plen = u16::from_be_bytes([f[ip + 4], f[ip + 5]]) + 8;
        f[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
        let hbh = [17u8, 0, 1, 4, 0, 0, 0, 0];
        f.splice(ip + 40..ip + 40, hbh);
        let m = decode(linktype::ETHERNET, 0, &f, f.len() as u32).unwrap();
        assert_eq!(m.protocol, 17);
        assert_eq!(m.ip_header_len, 48);
        assert_eq!(m.payload_len, 12);
        assert_eq!((m.src_port, m.dst_port), (5353, 53));
    }

    #[test]
    fn fragments_arp_and_unknown_links_are_skipped() {
        let mut f = tcp_frame(b"abc");
        f[14 + 6] |= 0x20; // more fragments
        assert_eq!(
            decode(linktype::ETHERNET, 0, &f, f.len() as u32),
            Err(SkipReason::IpFragment)
        );
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(
            decode(linktype::ETHERNET, 0, &arp, 42),
            Err(SkipReason::NotIp)
        );
        assert_eq!(
            decode(147, 0, &arp, 42),
            Err(SkipReason::UnsupportedLinkType)
        );
        assert_eq!(
            decode(linktype::ETHERNET, 0, &[], 0),
            Err(SkipReason::Empty)
        );
    }

    #[test]
    fn raw_sll_sll2_and_null_links() {
        let f = tcp_frame(b"abcd");
        let ip = &f[14..];
        assert_eq!(
            decode(linktype::RAW, 0, ip, ip.len() as u32)
                .unwrap()
                .payload_len,
            4
        );
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        sll.extend_from_slice(ip);
        assert_eq!(
            decode(linktype::LINUX_SLL, 0, &sll, sll.len() as u32)
                .unwrap()
                .payload_len,
            4
        );
        let mut sll2 = ETHERTYPE_IPV4.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(ip);
        assert_eq!(
            decode(linktype::LINUX_SLL2, 0, &sll2, sll2.len() as u32)
                .unwrap()
                .payload_len,
            4
        );
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        assert_eq!(
            decode(linktype::NULL, 0, &null, null.len() as u32)
                .unwrap()
                .payload_len,
            4
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                       lt in proptest::sample::select(vec![0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999])) {
            let _ = decode(lt, 0, &data, data.len() as u32);
        }

        #[test]
        fn mutated_frames_never_panic(idx in 0usize..80, byte in proptest::num::u8::ANY, cut in 0usize..80) {
            let mut f = tcp_frame(b"payload bytes here");
            let i = idx % f.len();
            f[i] = byte;
            f.truncate(f.len() - cut.min(f.len()));
            let _ = decode(linktype::ETHERNET, 0, &f, 200);
        }
    }
}
