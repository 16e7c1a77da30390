//! Feature families on hand-built packet sequences, with expected values worked out by hand
//! from the definitions in the README's feature reference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};

use flowsentry::decode::{PacketMeta, tcp_flags as tf};
use flowsentry::features::{EndReason, Feature as F, FlowRecord};
use flowsentry::flow::{Compat, FlowConfig, FlowTable};

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [10, 0, 0, 2];

/// Capture times start here (the reference uses 0 as "no bulk run yet", as real clocks never do).
const T0: i64 = 1_500_000_000_000_000;

/// A TCP packet client→server (`fwd`) or back, at T0 + `t` µs, with `len` payload bytes.
fn tcp(t: i64, fwd: bool, flags: u8, len: u32) -> PacketMeta {
    let (a, b, pa, pb) = if fwd {
        (C, S, 40000, 80)
    } else {
        (S, C, 80, 40000)
    };
    PacketMeta {
        ts_us: T0 + t,
        src_ip: IpAddr::V4(Ipv4Addr::from(a)),
        dst_ip: IpAddr::V4(Ipv4Addr::from(b)),
        src_port: pa,
        dst_port: pb,
        protocol: 6,
        wire_len: 54 + len,
        ip_header_len: 20,
        transport_header_len: if flags & tf::SYN != 0 { 40 } else { 32 },
        payload_len: len,
        tcp_flags: flags,
        tcp_window: if fwd { 1000 } else { 2000 + (t % 7) as u16 },
        tcp_seq: 0,
        tcp_ack: 0,
        icmp_type: 0,
        icmp_code: 0,
    }
}

fn run(cfg: FlowConfig, pkts: &[PacketMeta]) -> Vec<FlowRecord> {
    let mut t = FlowTable::new(cfg);
    let mut out = Vec::new();
    for p in pkts {
        t.push(p, &mut |r| out.push(r));
    }
    t.flush(&mut |r| out.push(r));
    out
}

fn one(pkts: &[PacketMeta]) -> FlowRecord {
    let v = run(FlowConfig::default(), pkts);
    assert_eq!(v.len(), 1, "{v:#?}");
    v.into_iter().next().unwrap()
}

const ACK: u8 = tf::ACK;
const PA: u8 = tf::PSH | tf::ACK;

#[test]
fn counts_lengths_and_header_bytes() {
    let r = one(&[
        tcp(0, true, tf::SYN, 0),
        tcp(100, false, tf::SYN | ACK, 0),
        tcp(300, true, ACK, 0),
        tcp(400, true, PA, 100),
        tcp(1000, false, PA, 300),
        tcp(1100, true, ACK, 0),
    ]);
    assert_eq!((r.src_port, r.dst_port), (40000, 80));
    assert_eq!(r.get(F::TotalFwdPackets), 4.0);
    assert_eq!(r.get(F::TotalBwdPackets), 2.0);
    assert_eq!(r.get(F::TotalLenFwdPackets), 100.0);
    assert_eq!(r.get(F::TotalLenBwdPackets), 300.0);
    assert_eq!(r.get(F::FwdPktLenMax), 100.0);
    assert_eq!(r.get(F::FwdPktLenMean), 25.0);
    // fwd lengths 0,0,100,0: sample std = sqrt(7500/3) = 50
    assert!((r.get(F::FwdPktLenStd) - 50.0).abs() < 1e-12);
    assert_eq!(r.get(F::PktLenMax), 300.0);
    assert!((r.get(F::PktLenMean) - 400.0 / 6.0).abs() < 1e-12);
    assert!((r.get(F::AvgPacketSize) - 400.0 / 6.0).abs() < 1e-12);
    assert_eq!(r.get(F::AvgFwdSegmentSize), 25.0);
    assert_eq!(r.get(F::AvgBwdSegmentSize), 150.0);
    // Header bytes: SYN 40 + three 32 forward; SYN-ACK 40 + 32 backward.
    assert_eq!(r.get(F::FwdHeaderLength), 136.0);
    assert_eq!(r.get(F::BwdHeaderLength), 72.0);
    assert_eq!(r.get(F::MinSegSizeFwd), 32.0);
    assert_eq!(r.get(F::ActDataPktFwd), 1.0);
    assert_eq!(r.get(F::DownUpRatio), 0.5);
    assert_eq!(r.get(F::FlowDuration), 1100.0);
    assert!((r.get(F::FlowBytesPerSec) - 400.0 / 0.0011).abs() < 1e-6);
    assert!((r.get(F::FwdPacketsPerSec) - 4.0 / 0.0011).abs() < 1e-6);
}

#[test]
fn inter_arrival_times() {
    let r = one(&[
        tcp(0, true, ACK, 1),
        tcp(100, false, ACK, 1),
        tcp(300, true, ACK, 1),
        tcp(700, true, ACK, 1),
        tcp(1500, false, ACK, 1),
    ]);
    // Flow gaps 100, 200, 400, 800.
    assert_eq!(r.get(F::FlowIatMean), 375.0);
    assert_eq!(r.get(F::FlowIatMax), 800.0);
    assert_eq!(r.get(F::FlowIatMin), 100.0);
    let mean: f64 = 375.0;
    let var = [100.0f64, 200.0, 400.0, 800.0]
        .iter()
        .map(|x| (x - mean).powi(2))
        .sum::<f64>()
        / 3.0;
    assert!((r.get(F::FlowIatStd) - var.sqrt()).abs() < 1e-9);
    // Forward gaps 300, 400; backward gap 1400.
    assert_eq!(r.get(F::FwdIatTotal), 700.0);
    assert_eq!(r.get(F::FwdIatMean), 350.0);
    assert_eq!((r.get(F::FwdIatMin), r.get(F::FwdIatMax)), (300.0, 400.0));
    assert_eq!(r.get(F::BwdIatTotal), 1400.0);
    assert_eq!(r.get(F::BwdIatStd), 0.0);
}

#[test]
fn active_and_idle_periods() {
    let s = 1_000_000;
    let r = one(&[
        tcp(0, true, ACK, 1),
        tcp(s, true, ACK, 1),
        tcp(8 * s, true, ACK, 1),
        tcp(9 * s, true, ACK, 1),
        tcp(20 * s, true, ACK, 1),
    ]);
    // Active 0→1 s, idle 7 s, active 8→9 s, idle 11 s, then a last active period (not recorded).
    assert_eq!(r.get(F::ActiveMean), 1_000_000.0);
    assert_eq!(r.get(F::ActiveStd), 0.0);
    assert_eq!(r.get(F::IdleMean), 9_000_000.0);
    assert_eq!(
        (r.get(F::IdleMin), r.get(F::IdleMax)),
        (7_000_000.0, 11_000_000.0)
    );
}

#[test]
fn bulk_runs_and_their_interruptions() {
    // Five forward data packets 100 µs apart: one bulk of 5 packets, 500 bytes, 400 µs.
    let mut p: Vec<PacketMeta> = (0..5).map(|i| tcp(i * 100, true, PA, 100)).collect();
    let r = one(&p);
    assert_eq!(r.get(F::FwdAvgBytesPerBulk), 500.0);
    assert_eq!(r.get(F::FwdAvgPacketsPerBulk), 5.0);
    assert_eq!(r.get(F::FwdAvgBulkRate), 500.0 / 0.0004);
    assert_eq!(r.get(F::BwdAvgBytesPerBulk), 0.0);
    // Data from the other side after the third packet breaks the run: no forward bulk.
    p.insert(3, tcp(250, false, PA, 10));
    let r = one(&p);
    assert_eq!(r.get(F::FwdAvgPacketsPerBulk), 0.0);
    // A gap over 1 s also breaks it.
    let q = [
        tcp(0, true, PA, 10),
        tcp(10, true, PA, 10),
        tcp(2_000_000, true, PA, 10),
        tcp(2_000_010, true, PA, 10),
    ];
    assert_eq!(one(&q).get(F::FwdAvgPacketsPerBulk), 0.0);
}

#[test]
fn subflows_follow_the_published_rows() {
    let r = one(&[
        tcp(0, true, PA, 100),
        tcp(10, false, PA, 70),
        tcp(20, true, PA, 50),
    ]);
    // totals / packets, integer division: 150/3, 70/3, 2/3, 1/3
    assert_eq!(r.get(F::SubflowFwdBytes), 50.0);
    assert_eq!(r.get(F::SubflowBwdBytes), 23.0);
    assert_eq!(r.get(F::SubflowFwdPackets), 0.0);
    assert_eq!(r.get(F::SubflowBwdPackets), 0.0);
}

#[test]
fn flags_and_windows() {
    let r = one(&[
        tcp(0, true, tf::SYN | tf::ECE | tf::CWR, 0),
        tcp(5, false, tf::SYN | ACK | tf::ECE, 0),
        tcp(10, true, ACK | tf::URG, 0),
        tcp(20, false, PA, 5),
        tcp(30, false, ACK, 0),
    ]);
    assert_eq!(r.get(F::SynFlagCount), 2.0);
    assert_eq!(r.get(F::AckFlagCount), 4.0);
    assert_eq!(r.get(F::EceFlagCount), 2.0);
    assert_eq!(r.get(F::CwrFlagCount), 1.0);
    assert_eq!(r.get(F::UrgFlagCount), 1.0);
    assert_eq!((r.get(F::FwdUrgFlags), r.get(F::BwdPshFlags)), (1.0, 1.0));
    assert_eq!(r.get(F::InitWinBytesFwd), 1000.0);
    // The last backward packet's window (the published data's overwrite).
    assert_eq!(r.get(F::InitWinBytesBwd), f64::from(2000 + 30 % 7));
}

#[test]
fn a_syn_ack_first_makes_the_client_forward() {
    let r = one(&[tcp(0, false, tf::SYN | ACK, 0), tcp(10, true, ACK, 0)]);
    assert_eq!((r.src_port, r.dst_port), (40000, 80));
    assert_eq!(
        (r.get(F::TotalFwdPackets), r.get(F::TotalBwdPackets)),
        (1.0, 1.0)
    );
    assert_eq!(r.get(F::InitWinBytesFwd), 0.0);
}

fn teardown() -> Vec<PacketMeta> {
    vec![
        tcp(0, true, tf::SYN, 0),
        tcp(10, false, tf::SYN | ACK, 0),
        tcp(20, true, ACK, 0),
        tcp(30, true, tf::FIN | ACK, 0),
        tcp(40, false, tf::FIN | ACK, 0),
        tcp(50, true, ACK, 0),
        // the same tuple reused by a new connection
        tcp(1000, true, tf::SYN, 0),
        tcp(1010, false, tf::SYN | ACK, 0),
    ]
}

#[test]
fn tcp_teardown_in_both_modes() {
    let v = run(FlowConfig::default(), &teardown());
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].end_reason, EndReason::TcpClose);
    assert_eq!(
        v[0].get(F::TotalFwdPackets) + v[0].get(F::TotalBwdPackets),
        6.0
    );
    assert_eq!(v[0].get(F::FinFlagCount), 2.0);
    assert_eq!(
        v[1].get(F::TotalFwdPackets) + v[1].get(F::TotalBwdPackets),
        2.0
    );

    // The original tool: the first FIN ends the flow; the rest of the teardown starts a new flow
    // (opened by the server's FIN, so the server is its forward side), which the next
    // connection's packets then join.
    let v = run(
        FlowConfig {
            compat: Compat::Cic2017,
            ..FlowConfig::default()
        },
        &teardown(),
    );
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[0].get(F::TotalFwdPackets) + v[0].get(F::TotalBwdPackets),
        4.0
    );
    assert_eq!(v[1].src_port, 80);
    assert_eq!(v[1].get(F::FinFlagCount), 1.0);
    assert_eq!(
        v[1].get(F::TotalFwdPackets) + v[1].get(F::TotalBwdPackets),
        4.0
    );
}

#[test]
fn rst_ends_after_the_next_syn_or_timeout() {
    let v = run(
        FlowConfig::default(),
        &[
            tcp(0, true, tf::SYN, 0),
            tcp(10, false, tf::RST | ACK, 0),
            tcp(20, true, tf::SYN, 0),
        ],
    );
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].get(F::RstFlagCount), 1.0);
    assert_eq!(v[0].get(F::BwdRstFlags), 1.0);
}

#[test]
fn flow_timeout_splits_and_continues_the_connection() {
    let cfg = FlowConfig {
        flow_timeout_us: 1_000,
        ..FlowConfig::default()
    };
    let v = run(
        cfg,
        &[
            tcp(0, true, ACK, 1),
            tcp(500, false, ACK, 1),
            tcp(1500, false, ACK, 1),
            tcp(1600, true, ACK, 1),
        ],
    );
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].end_reason, EndReason::Timeout);
    assert_eq!(v[0].get(F::FlowDuration), 500.0);
    // The continuation keeps the client as forward although its first packet is the server's.
    assert_eq!(
        (
            v[1].src_port,
            v[1].get(F::TotalBwdPackets),
            v[1].get(F::TotalFwdPackets)
        ),
        (40000, 1.0, 1.0)
    );
    // Total TCP Flow Time: 500 + gap 1000 + 100.
    assert_eq!(v[1].get(F::TotalTcpFlowTime), 1600.0);
}

#[test]
fn zero_duration_rates_per_mode() {
    let p = [tcp(0, true, tf::SYN, 0)];
    let r = one(&p);
    assert_eq!(
        (r.get(F::FlowBytesPerSec), r.get(F::FlowPacketsPerSec)),
        (-1.0, -1.0)
    );
    assert_eq!(r.get(F::FwdPacketsPerSec), 0.0);
    let v = run(
        FlowConfig {
            compat: Compat::Cic2017,
            ..FlowConfig::default()
        },
        &p,
    );
    assert!(v[0].get(F::FlowBytesPerSec).is_nan());
    assert!(v[0].get(F::FlowPacketsPerSec).is_infinite());
}

#[test]
fn the_cap_bounds_memory_under_a_syn_flood() {
    let mut t = FlowTable::new(FlowConfig {
        max_flows: 1000,
        ..FlowConfig::default()
    });
    let mut emitted = 0u64;
    for i in 0..100_000u32 {
        let mut p = tcp(i64::from(i), true, tf::SYN, 0);
        p.src_ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        t.push(&p, &mut |_| emitted += 1);
        assert!(t.len() <= 1000);
    }
    assert_eq!(t.stats().evicted, 99_000);
    assert_eq!(emitted, 99_000);
    t.flush(&mut |_| emitted += 1);
    assert_eq!(emitted, 100_000);
}

#[test]
fn icmp_echo_is_one_flow_and_a_new_type_and_code_splits() {
    let icmp = |t: i64, fwd: bool, ty: u8, code: u8| {
        let mut p = tcp(t, fwd, 0, 56);
        p.protocol = 1;
        p.src_port = 0;
        p.dst_port = 0;
        p.transport_header_len = 8;
        p.icmp_type = ty;
        p.icmp_code = code;
        p
    };
    let v = run(
        FlowConfig::default(),
        &[
            icmp(0, true, 8, 0),
            icmp(10, false, 0, 0),
            icmp(20, true, 3, 3),
        ],
    );
    assert_eq!(v.len(), 2);
    assert_eq!((v[0].get(F::IcmpType), v[0].get(F::IcmpCode)), (8.0, 0.0));
    assert_eq!(v[0].get(F::TotalBwdPackets), 1.0);
    assert_eq!(v[1].get(F::IcmpType), 3.0);
}

#[test]
fn advance_expires_on_the_clock() {
    let mut t = FlowTable::new(FlowConfig {
        flow_timeout_us: 1_000,
        ..FlowConfig::default()
    });
    let mut out = Vec::new();
    t.push(&tcp(0, true, ACK, 1), &mut |r| out.push(r));
    t.advance(T0 + 900, &mut |r| out.push(r));
    assert!(out.is_empty());
    t.advance(T0 + 1001, &mut |r| out.push(r));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].end_reason, EndReason::Timeout);
    assert!(t.is_empty());
}

/// A connection closed by FIN / FIN / ACK ends one linger after its last packet, on the clock,
/// not at the flow timeout; a late packet inside the linger joins it and restarts the linger.
#[test]
fn closed_tcp_flow_ends_after_the_linger() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut out = Vec::new();
    let fin = tf::FIN | ACK;
    for p in [
        tcp(0, true, tf::SYN, 0),
        tcp(10, false, tf::SYN | ACK, 0),
        tcp(20, true, ACK, 0),
        tcp(30, true, fin, 0),
        tcp(40, false, fin, 0),
        tcp(50, true, ACK, 0),
    ] {
        t.push(&p, &mut |r| out.push(r));
    }
    t.advance(T0 + 1_000_000, &mut |r| out.push(r));
    assert!(out.is_empty(), "ended inside the linger");
    // A retransmitted final ACK 1.5 s later still joins the flow and restarts the linger.
    t.push(&tcp(1_500_050, true, ACK, 0), &mut |r| out.push(r));
    t.advance(T0 + 2_100_000, &mut |r| out.push(r));
    assert!(out.is_empty(), "the late packet restarts the linger");
    t.advance(T0 + 3_600_000, &mut |r| out.push(r));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].end_reason, EndReason::TcpClose);
    assert_eq!(out[0].get(F::TotalFwdPackets), 5.0);
    assert_eq!(out[0].get(F::TotalBwdPackets), 2.0);
    assert!(t.is_empty());
}

/// An RST ends the flow one linger later too.
#[test]
fn reset_flow_ends_after_the_linger() {
    let mut t = FlowTable::new(FlowConfig {
        tcp_linger_us: 500_000,
        ..FlowConfig::default()
    });
    let mut out = Vec::new();
    t.push(&tcp(0, true, tf::SYN, 0), &mut |r| out.push(r));
    t.push(&tcp(10, false, tf::RST | ACK, 0), &mut |r| out.push(r));
    t.advance(T0 + 400_000, &mut |r| out.push(r));
    assert!(out.is_empty());
    t.advance(T0 + 600_000, &mut |r| out.push(r));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].end_reason, EndReason::TcpClose);
}

/// The table tells a sink when a flow starts and when its opener gets the first answer.
#[test]
fn starts_and_first_replies_reach_the_sink() {
    use flowsentry::flow::{FlowClose, FlowReply, FlowSink, FlowStart};
    #[derive(Default)]
    struct Seen {
        starts: Vec<FlowStart>,
        replies: Vec<FlowReply>,
        closes: Vec<FlowClose>,
        ended: usize,
    }
    impl FlowSink for Seen {
        fn ended(&mut self, _r: FlowRecord) {
            self.ended += 1;
        }
        fn started(&mut self, s: &FlowStart) {
            self.starts.push(*s);
        }
        fn replied(&mut self, r: &FlowReply) {
            self.replies.push(*r);
        }
        fn closed(&mut self, c: &FlowClose) {
            self.closes.push(*c);
        }
    }
    let mut t = FlowTable::new(FlowConfig::default());
    let mut seen = Seen::default();
    for p in [
        tcp(0, true, tf::SYN, 0),
        tcp(10, true, tf::SYN, 0),
        tcp(20, false, tf::RST | ACK, 0),
        tcp(30, false, ACK, 0),
    ] {
        t.push(&p, &mut seen);
    }
    t.flush(&mut seen);
    assert_eq!(seen.starts.len(), 1);
    assert_eq!(seen.starts[0].src_ip, IpAddr::V4(Ipv4Addr::from(C)));
    assert_eq!(seen.starts[0].dst_port, 80);
    assert_eq!(seen.starts[0].tcp_flags, tf::SYN);
    assert_eq!(seen.replies.len(), 1, "only the first answer counts");
    assert_eq!(seen.replies[0].responder_ip, IpAddr::V4(Ipv4Addr::from(S)));
    assert_eq!(seen.replies[0].opener_ip, IpAddr::V4(Ipv4Addr::from(C)));
    assert_eq!(seen.replies[0].tcp_flags, tf::RST | ACK);
    // The reset closed the connection at once (the flow itself ends after the linger), told
    // once, with the opener's side first.
    assert_eq!(seen.closes.len(), 1);
    let c = seen.closes[0];
    assert_eq!(c.opener_ip, IpAddr::V4(Ipv4Addr::from(C)));
    assert_eq!(c.responder_ip, IpAddr::V4(Ipv4Addr::from(S)));
    assert_eq!(c.responder_port, 80);
    assert_eq!((c.start_us, c.ts_us), (T0, T0 + 20));
    assert!(c.answered);
    assert_eq!(seen.ended, 1);
}

/// A flow's packet count is reported at 1,024, 2,048, … packets (the packet-flood rule judges
/// one-flow floods then), with the counts per side and the opener's side first.
#[test]
fn packet_counts_reach_the_sink_at_powers_of_two() {
    use flowsentry::flow::{FlowSink, FlowVolume, VOLUME_FIRST};
    #[derive(Default)]
    struct Seen(Vec<FlowVolume>);
    impl FlowSink for Seen {
        fn ended(&mut self, _r: FlowRecord) {}
        fn volume(&mut self, v: &FlowVolume) {
            self.0.push(*v);
        }
    }
    let mut t = FlowTable::new(FlowConfig::default());
    let mut seen = Seen::default();
    // 4,100 packets from the client, every 100th answered by the server, 100 µs apart.
    for i in 0..4100i64 {
        t.push(&tcp(i * 100, true, ACK, 10), &mut seen);
        if i % 100 == 99 {
            t.push(&tcp(i * 100 + 50, false, ACK, 0), &mut seen);
        }
    }
    let counts: Vec<u64> = seen.0.iter().map(|v| v.packets).collect();
    assert_eq!(counts, [VOLUME_FIRST, 2048, 4096]);
    let v = seen.0[0];
    assert_eq!(v.opener_ip, IpAddr::V4(Ipv4Addr::from(C)));
    assert_eq!(v.responder_ip, IpAddr::V4(Ipv4Addr::from(S)));
    assert_eq!(v.responder_port, 80);
    assert_eq!(v.protocol, 6);
    assert_eq!(v.start_us, T0);
    // The 1,024th packet: 1,014 from the client, 10 answers.
    assert_eq!(v.bwd_packets, 10);
    assert_eq!(v.ts_us, T0 + 1013 * 100);
}
