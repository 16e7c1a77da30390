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
    /// IP protocol number of the transport (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub protocol: u8,
    /// Frame length on the wire (pcap `orig_len`).
    pub wire_len: u32,
    /// IPv4 header (options included) or IPv6 header plus extension headers, in bytes.
    pub ip_header_len: u16,
    /// Transport header bytes: TCP header with options, 8 for UDP, 8 for ICMP.
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
