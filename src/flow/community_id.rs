//! Community ID v1 (corelight/community-id-spec): the flow hash Zeek, Suricata and others write,
//! so one flow can be found across their logs by string comparison.
//!
//! `"1:" + base64(sha1(seed:u16be · saddr · daddr · proto:u8 · 0:u8 · sport:u16be · dport:u16be))`
//! with the endpoints ordered (smaller address first, or smaller port on equal addresses). ICMP
//! and ICMPv6 use the type as source port and, for the request/reply types, the counterpart type
//! as destination port (so both directions share one id); other types use the code and are
//! one-way (never reordered). Protocols without ports hash only the addresses and protocol.
//! Checked against the reference implementation (`communityid` on PyPI) by
//! `tests/parity/communityid_parity.py` in CI.

use std::net::IpAddr;

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::features::{Feature, FlowRecord};

const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;

/// The counterpart of a request/reply ICMP type (the spec's table), if it has one.
fn icmp_counterpart(t: u8, v6: bool) -> Option<u8> {
    let pairs: &[(u8, u8)] = if v6 {
        // echo, MLD query/report, router and neighbour solicit/advert, who-are-you, home agent
        // address discovery.
        &[
            (128, 129),
            (130, 131),
            (133, 134),
            (135, 136),
            (139, 140),
            (144, 145),
        ]
    } else {
        // echo, router solicit/advert, timestamp, information, address mask.
        &[(8, 0), (10, 9), (13, 14), (15, 16), (17, 18)]
    };
    pairs.iter().find_map(|&(a, b)| {
        if t == a {
            Some(b)
        } else if t == b {
            Some(a)
        } else {
            None
        }
    })
}

fn octets(ip: IpAddr) -> ([u8; 16], usize) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

/// The Community ID of a flow tuple. `icmp` is the (type, code) for ICMP/ICMPv6 flows; `sport`
/// and `dport` are ignored for them.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    icmp: Option<(u8, u8)>,
) -> String {
    let (mut s, mut d) = (octets(src), octets(dst));
    let ports = matches!(proto, ICMP | TCP | UDP | ICMPV6 | SCTP);
    let (mut sp, mut dp, one_way) = match (proto, icmp) {
        (ICMP | ICMPV6, Some((t, c))) => match icmp_counterpart(t, proto == ICMPV6) {
            Some(other) => (u16::from(t), u16::from(other), false),
            None => (u16::from(t), u16::from(c), true),
        },
        (ICMP | ICMPV6, None) => (0, 0, true),
        _ => (sport, dport, false),
    };
    let ordered = one_way || s.0 < d.0 || (s.0 == d.0 && sp < dp);
    if !ordered {
        std::mem::swap(&mut s, &mut d);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&s.0[..s.1]);
    h.update(&d.0[..d.1]);
    h.update([proto, 0]);
    if ports {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    let digest = h.finalize();
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The Community ID of a finished flow (ICMP type and code from its first packet).
pub fn of_record(r: &FlowRecord, seed: u16) -> String {
    let icmp = matches!(r.protocol, ICMP | ICMPV6).then(|| {
        let b = |f: Feature| r.get(f).clamp(0.0, 255.0) as u8;
        (b(Feature::IcmpType), b(Feature::IcmpCode))
    });
    community_id(
        seed, r.src_ip, r.dst_ip, r.src_port, r.dst_port, r.protocol, icmp,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    // Values from the spec's baseline (corelight/community-id-spec, baseline/baseline_*.json),
    // recomputed with the `communityid` 1.5.0 reference package.
    #[test]
    fn spec_examples() {
        let tcp = community_id(
            0,
            ip("128.232.110.120"),
            ip("66.35.250.204"),
            34855,
            80,
            6,
            None,
        );
        assert_eq!(tcp, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        // Both directions, one id.
        let back = community_id(
            0,
            ip("66.35.250.204"),
            ip("128.232.110.120"),
            80,
            34855,
            6,
            None,
        );
        assert_eq!(tcp, back);
        let seeded = community_id(
            1,
            ip("128.232.110.120"),
            ip("66.35.250.204"),
            34855,
            80,
            6,
            None,
        );
        assert_eq!(seeded, "1:3V71V58M3Ksw/yuFALMcW0LAHvc=");
    }

    #[test]
    fn icmp_echo_request_and_reply_share_an_id() {
        let (a, b) = (ip("192.168.0.89"), ip("192.168.0.1"));
        let req = community_id(0, a, b, 0, 0, 1, Some((8, 0)));
        let rep = community_id(0, b, a, 0, 0, 1, Some((0, 0)));
        assert_eq!(req, rep);
        assert_eq!(req, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
        // One-way types are not reordered: the two directions differ.
        let unreach = community_id(0, a, b, 0, 0, 1, Some((3, 1)));
        assert_ne!(unreach, community_id(0, b, a, 0, 0, 1, Some((3, 1))));
    }
}
