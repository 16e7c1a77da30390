//! The packet-flood rule: one source sending a fast, unanswered packet stream inside a single
//! flow (a DHCP starvation burst, a UDP or ICMP flood with fixed ports or ids). Such a flood is
//! one flow: the host context, which counts flows, cannot see it, and the flow detector's
//! features are shapes, not rates. The flow table reports a flow's packet count at 1,024, 2,048,
//! … packets ([`FlowVolume`]); the rule judges it then, while the flood lasts.

use std::net::IpAddr;

use crate::flow::FlowVolume;

/// The rule's thresholds (`[sessions] flood_packets`, `flood_rate`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodRule {
    /// Packets the sending side must have sent (0 = off).
    pub packets: u64,
    /// Its average rate since the flow's first packet, packets per second.
    pub rate: f64,
}

impl Default for FloodRule {
    fn default() -> Self {
        FloodRule {
            packets: 1000,
            rate: 5000.0,
        }
    }
}

/// At most this share of the sender's packet count may come back for the stream to count as
/// unanswered (a bulk transfer's ACKs are 5% or more of its data packets).
pub const ANSWERED_MAX: f64 = 0.01;

/// A one-flow packet flood.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodFinding {
    pub ts_us: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The receiving side's port when the sender opened the flow (0 for ICMP and when the
    /// flood comes from the side that answered first).
    pub dst_port: u16,
    pub protocol: u8,
    /// Packets the sender sent, the receiver's, and the sender's average rate (packets/s).
    pub packets: u64,
    pub answered: u64,
    pub rate: f64,
    /// Seconds since the flow's first packet.
    pub window_s: f64,
}

impl FloodRule {
    /// A finding when the flow's busier side has sent at least `packets` at `rate` or more and
    /// the other side at most [`ANSWERED_MAX`] of that.
    pub fn judge(&self, v: &FlowVolume) -> Option<FloodFinding> {
        if self.packets == 0 {
            return None;
        }
        let bwd = v.bwd_packets.min(v.packets);
        let fwd = v.packets - bwd;
        let (sent, answered, src, dst, dst_port) = if fwd >= bwd {
            (fwd, bwd, v.opener_ip, v.responder_ip, v.responder_port)
        } else {
            (bwd, fwd, v.responder_ip, v.opener_ip, 0)
        };
        let window_s = (v.ts_us.saturating_sub(v.start_us)).max(0) as f64 / 1e6;
        // All at one timestamp (a capture's coarse clock): as fast as can be.
        let rate = if window_s > 0.0 {
            sent as f64 / window_s
        } else {
            f64::INFINITY
        };
        let unanswered = answered as f64 <= ANSWERED_MAX * sent as f64;
        (sent >= self.packets && rate >= self.rate && unanswered).then_some(FloodFinding {
            ts_us: v.ts_us,
            src,
            dst,
            dst_port,
            protocol: v.protocol,
            packets: sent,
            answered,
            rate,
            window_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(packets: u64, bwd: u64, seconds: f64) -> FlowVolume {
        FlowVolume {
            start_us: 1_000_000,
            ts_us: 1_000_000 + (seconds * 1e6) as i64,
            opener_ip: IpAddr::from([10, 0, 0, 1]),
            responder_ip: IpAddr::from([10, 0, 0, 2]),
            responder_port: 67,
            protocol: 17,
            packets,
            bwd_packets: bwd,
        }
    }

    #[test]
    fn a_fast_unanswered_stream_is_a_flood_from_its_sender() {
        let r = FloodRule::default();
        let f = r
            .judge(&v(2048, 0, 0.2))
            .expect("10,240 packets/s unanswered");
        assert_eq!(
            (f.src, f.dst, f.dst_port),
            (v(0, 0, 0.0).opener_ip, v(0, 0, 0.0).responder_ip, 67)
        );
        assert_eq!((f.packets, f.answered), (2048, 0));
        assert!((f.rate - 10_240.0).abs() < 1e-6);
        // One timestamp for all (the shared DHCP flood capture): infinitely fast.
        assert!(r.judge(&v(1024, 0, 0.0)).is_some());
        // 1% answered still counts; a bulk transfer's ACKs do not.
        assert!(r.judge(&v(2048, 20, 0.1)).is_some());
        assert!(
            r.judge(&v(2048, 120, 0.1)).is_none(),
            "6% answered: iperf3-like"
        );
        // Too slow, or too few.
        assert!(r.judge(&v(2048, 0, 1.0)).is_none(), "2,048 packets/s");
        let few = FloodRule {
            packets: 5000,
            ..FloodRule::default()
        };
        assert!(few.judge(&v(4096, 0, 0.1)).is_none());
        let off = FloodRule {
            packets: 0,
            ..FloodRule::default()
        };
        assert!(off.judge(&v(1 << 20, 0, 0.1)).is_none());
    }

    #[test]
    fn a_flood_from_the_answering_side_names_that_side() {
        // The capture began mid-flood with one packet of the victim: the responder floods.
        let f = FloodRule::default()
            .judge(&v(4096, 4095, 0.5))
            .expect("responder flood");
        assert_eq!(f.src, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(f.dst, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(f.dst_port, 0);
        assert_eq!((f.packets, f.answered), (4095, 1));
    }
}
