//! Writes finished flows ([`FlowRecord`]) as CSV rows in either column layout of the schema:
//! the original CIC-IDS2017 TrafficLabelling header (default) or the CICFlowMeter-4 names.
//! Values are printed like the reference tool prints them (Java `long` / `double`).

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;

use super::{Column, ColumnSet, Feature, FlowRecord, Kind};

/// A value printed the way the reference CSVs print it: whole numbers of integer columns without
/// a decimal point, reals with one (`74.5`, `0.0`), and `Infinity` / `-Infinity` / `NaN`.
pub struct CicValue(pub Kind, pub f64);

impl fmt::Display for CicValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.1;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        }
        if self.0 == Kind::Integer && v.fract() == 0.0 && v.abs() < 9.0e15 {
            return write!(f, "{}", v as i64);
        }
        // `{:?}` is the shortest representation that reads back to the same f64 and always
        // carries a decimal point or an exponent (`5712.0`, `1e-7`).
        write!(f, "{v:?}")
    }
}

/// Flow start time as the improved CIC-IDS2017 prints it, in UTC: `2017-07-06 16:40:07.419016`.
pub struct CicTimestamp(pub i64);

impl fmt::Display for CicTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp_micros(self.0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f")),
            None => write!(f, "{}", self.0),
        }
    }
}

/// CSV writer for flow records. Fields never contain commas or quotes except the label, which
/// is quoted when needed.
pub struct CsvWriter<W: Write> {
    out: W,
    set: ColumnSet,
    columns: Vec<Column>,
    label: Option<String>,
    /// Seed of the optional last column, `Community ID`.
    community_id: Option<u16>,
    rows: u64,
    /// The row being built (kept to reuse its allocation).
    buf: Vec<u8>,
    stamp: StampCache,
    /// Columns from here on are feature values (and the label): the row's tail.
    tail_from: usize,
    /// The last short flow's tail: its values' bits and its text. A flood's one-packet flows
    /// have the same tail row after row; it is formatted once.
    tail_bits: Vec<u64>,
    tail_text: Vec<u8>,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header at once. `label`, when given, adds a Label column with that text.
    pub fn new(out: W, set: ColumnSet, label: Option<&str>) -> io::Result<Self> {
        Self::with_community_id(out, set, label, None)
    }

    /// Like [`CsvWriter::new`]; with a seed, a last column `Community ID` (v1, that seed).
    pub fn with_community_id(
        out: W,
        set: ColumnSet,
        label: Option<&str>,
        community_id: Option<u16>,
    ) -> io::Result<Self> {
        let mut w = Self::rows_only(out, set, label, community_id);
        for (i, c) in w.columns.iter().enumerate() {
            if i > 0 {
                w.out.write_all(b",")?;
            }
            w.out.write_all(set.name(*c).as_bytes())?;
        }
        if community_id.is_some() {
            w.out.write_all(b",Community ID")?;
        }
        w.out.write_all(b"\n")?;
        Ok(w)
    }

    /// Like [`CsvWriter::with_community_id`] without the header: rows to append to a file
    /// whose header another writer wrote (a worker's share of `flows --workers`).
    pub fn rows_only(
        out: W,
        set: ColumnSet,
        label: Option<&str>,
        community_id: Option<u16>,
    ) -> Self {
        let columns = set.columns(label.is_some());
        let label = label.map(quote);
        let tail_from = columns
            .iter()
            .rposition(|c| {
                !matches!(c, Column::Value(f) if !f.is_identifier()) && *c != Column::Label
            })
            .map_or(0, |i| i + 1);
        CsvWriter {
            out,
            set,
            columns,
            label,
            community_id,
            rows: 0,
            buf: Vec::with_capacity(1024),
            stamp: StampCache::default(),
            tail_from,
            tail_bits: Vec::new(),
            tail_text: Vec::new(),
        }
    }

    /// Whether `r`'s tail is the remembered one (bit for bit).
    fn same_tail(&self, r: &FlowRecord) -> bool {
        let tail = self.columns.get(self.tail_from..).unwrap_or_default();
        !self.tail_text.is_empty()
            && tail.len() == self.tail_bits.len()
            && tail.iter().zip(&self.tail_bits).all(|(c, b)| match c {
                Column::Value(f) => r.get(*f).to_bits() == *b,
                _ => true,
            })
    }

    /// Writes one row. The row is built in a reused buffer with integer (`itoa`) and float
    /// (`ryu`) formatters, one `write_all` per row; the output is the `Display` of
    /// [`CicValue`] / [`CicTimestamp`] byte for byte (tested).
    pub fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // Flows of one or two packets: the tail may be the last one's (a flood).
        let short = r.get(Feature::TotalFwdPackets) + r.get(Feature::TotalBwdPackets) <= 2.0;
        let reuse = short && self.same_tail(r);
        let end = if reuse {
            self.tail_from
        } else {
            self.columns.len()
        };
        let mut tail_at = None;
        for (i, c) in self.columns.iter().enumerate().take(end) {
            if i == self.tail_from {
                tail_at = Some(buf.len());
            }
            if i > 0 {
                buf.push(b',');
            }
            match c {
                Column::FlowId => {
                    push_ip(&mut buf, &r.src_ip);
                    buf.push(b'-');
                    push_ip(&mut buf, &r.dst_ip);
                    let mut n = itoa::Buffer::new();
                    for x in [r.src_port, r.dst_port, u16::from(r.protocol)] {
                        buf.push(b'-');
                        buf.extend_from_slice(n.format(x).as_bytes());
                    }
                }
                Column::SrcIp => push_ip(&mut buf, &r.src_ip),
                Column::DstIp => push_ip(&mut buf, &r.dst_ip),
                Column::Timestamp => self.stamp.push(&mut buf, r.start_us),
                Column::Value(f) => push_value(&mut buf, f.def().kind, r.get(*f)),
                Column::Label => {
                    buf.extend_from_slice(self.label.as_deref().unwrap_or("").as_bytes())
                }
            }
        }
        if reuse {
            buf.extend_from_slice(&self.tail_text);
        } else if short && let Some(at) = tail_at {
            self.tail_text.clear();
            self.tail_text
                .extend_from_slice(buf.get(at..).unwrap_or_default());
            self.tail_bits.clear();
            for c in self.columns.iter().skip(self.tail_from) {
                self.tail_bits.push(match c {
                    Column::Value(f) => r.get(*f).to_bits(),
                    _ => 0,
                });
            }
        }
        if let Some(seed) = self.community_id {
            write!(buf, ",{}", crate::flow::community_id::of_record(r, seed))?;
        }
        buf.push(b'\n');
        let res = self.out.write_all(&buf);
        self.buf = buf;
        res?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The layout being written.
    pub fn column_set(&self) -> ColumnSet {
        self.set
    }

    /// The inner writer (a worker empties its buffer through it).
    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// An IP address as `Display` prints it (IPv4 by hand: the hot case).
fn push_ip(buf: &mut Vec<u8>, ip: &IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                buf.extend_from_slice(n.format(*o).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

/// [`CicValue`]'s text without `fmt`: `itoa` for whole numbers, `ryu` for reals where it prints
/// what Rust's `{:?}` prints ([`short_decimal`]); other reals go through `{:?}` itself.
fn push_value(buf: &mut Vec<u8>, kind: Kind, v: f64) {
    if v.is_nan() {
        buf.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        buf.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else if kind == Kind::Integer && v.abs() < 9.0e15 && (v as i64) as f64 == v {
        // (`fract` is a libm call; the round trip through i64 is the same test here.)
        buf.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else if v == 0.0 {
        buf.extend_from_slice(if v.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
    } else if let Some(text) = short_decimal(&mut ryu::Buffer::new(), v) {
        buf.extend_from_slice(text.as_bytes());
    } else {
        let _ = write!(buf, "{v:?}");
    }
}

/// `ryu`'s text of `v` when it is certainly `{:?}`'s: a plain decimal (1e-4 ≤ |v| < 1e16) of at
/// most 15 significant digits. Two decimals of ≤ 15 digits never round to the same f64, so both
/// shortest round-trip printers must pick the same one; at 16-17 digits they may differ in the
/// last digit (seen: `655521629010420.2` vs `.3`), and `{:?}` is used instead.
fn short_decimal(b: &mut ryu::Buffer, v: f64) -> Option<&str> {
    if !(1e-4..1e16).contains(&v.abs()) {
        return None;
    }
    let text = b.format_finite(v);
    // Significant digits: from the first to the last non-zero digit.
    let (mut first, mut last, mut n) = (None, 0usize, 0usize);
    for d in text.bytes().filter(u8::is_ascii_digit) {
        if d != b'0' {
            first.get_or_insert(n);
            last = n;
        }
        n += 1;
    }
    (last - first? < 15).then_some(text)
}

/// [`CicTimestamp`]'s text, with the date and time of the last second seen kept: flows
/// that start in the same second share it, and only the microseconds are printed.
#[derive(Debug, Default)]
struct StampCache {
    second: Option<i64>,
    text: Vec<u8>,
}

impl StampCache {
    fn push(&mut self, buf: &mut Vec<u8>, us: i64) {
        let sec = us.div_euclid(1_000_000);
        if self.second != Some(sec) {
            self.text.clear();
            match chrono::DateTime::from_timestamp(sec, 0) {
                Some(t) => {
                    let _ = write!(self.text, "{}", t.format("%Y-%m-%d %H:%M:%S"));
                    self.second = Some(sec);
                }
                None => {
                    self.second = None;
                    let _ = write!(buf, "{}", CicTimestamp(us));
                    return;
                }
            }
        }
        buf.extend_from_slice(&self.text);
        let micros = us.rem_euclid(1_000_000) as u32 + 1_000_000;
        let mut n = itoa::Buffer::new();
        buf.push(b'.');
        // 1_000_000 + µs has seven digits: drop the leading 1 for six zero-padded ones.
        buf.extend_from_slice(&n.format(micros).as_bytes()[1..]);
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{EndReason, Feature, NUM_FEATURES};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn values_print_like_the_reference() {
        assert_eq!(CicValue(Kind::Integer, 5006912.0).to_string(), "5006912");
        assert_eq!(CicValue(Kind::Real, 74.5).to_string(), "74.5");
        assert_eq!(CicValue(Kind::Real, 0.0).to_string(), "0.0");
        assert_eq!(CicValue(Kind::Real, 5712.0).to_string(), "5712.0");
        assert_eq!(CicValue(Kind::Real, f64::INFINITY).to_string(), "Infinity");
        assert_eq!(CicValue(Kind::Real, f64::NAN).to_string(), "NaN");
        assert_eq!(CicValue(Kind::Integer, -1.0).to_string(), "-1");
        let x = 195.13025193971853;
        assert_eq!(
            CicValue(Kind::Real, x).to_string().parse::<f64>().ok(),
            Some(x)
        );
    }

    /// The fast row formatters print exactly what the `Display` impls print.
    #[test]
    fn fast_formatting_equals_display() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            74.5,
            5712.0,
            1e-4,
            9.99e-5,
            1e-5,
            1e15,
            1e16,
            9.999_999_999_999_998e15,
            0.1,
            1.0 / 3.0,
            195.130_251_939_718_53,
            1e300,
            -1e-300,
            4.9e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            8.9e15,
            9.0e15,
            -9.1e15,
            123_456_789.0,
        ];
        for _ in 0..20_000 {
            let r = next();
            values.push(f64::from_bits(r));
            values
                .push((r % 10_000_000) as f64 / [1.0, 3.0, 7.0, 1e3, 1e6][(r >> 60) as usize % 5]);
            values.push((r >> 11) as f64 * 2f64.powi(((r >> 3) % 120) as i32 - 60));
        }
        for v in values {
            for kind in [Kind::Integer, Kind::Real] {
                let mut buf = Vec::new();
                push_value(&mut buf, kind, v);
                assert_eq!(
                    String::from_utf8(buf).unwrap(),
                    CicValue(kind, v).to_string(),
                    "{v:e}"
                );
            }
        }
        let mut stamps = StampCache::default();
        for us in [
            0,
            -1,
            1_499_359_207_419_016,
            1_499_359_207_000_001,
            1_499_359_208_999_999,
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            stamps.push(&mut buf, us);
            stamps.push(&mut buf, us);
            let one = CicTimestamp(us).to_string();
            assert_eq!(String::from_utf8(buf).unwrap(), format!("{one}{one}"));
        }
        for ip in [
            "10.0.0.1",
            "255.255.255.0",
            "0.0.0.0",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut buf = Vec::new();
            push_ip(&mut buf, &ip);
            assert_eq!(String::from_utf8(buf).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn timestamp_is_utc_with_microseconds() {
        // 2017-07-06 16:40:07.419016 UTC
        assert_eq!(
            CicTimestamp(1_499_359_207_419_016).to_string(),
            "2017-07-06 16:40:07.419016"
        );
    }

    #[test]
    fn rows_follow_the_header() {
        let mut values = [0.0; NUM_FEATURES];
        values[Feature::SrcPort as usize] = 36196.0;
        values[Feature::DstPort as usize] = 80.0;
        values[Feature::Protocol as usize] = 6.0;
        values[Feature::FwdHeaderLength as usize] = 200.0;
        let r = FlowRecord {
            src_ip: IpAddr::V4(Ipv4Addr::new(172, 16, 0, 1)),
            dst_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 10, 50)),
            src_port: 36196,
            dst_port: 80,
            protocol: 6,
            start_us: 0,
            end_us: 0,
            end_reason: EndReason::Flushed,
            frame_bytes: [0, 0],
            values,
        };
        for set in [ColumnSet::Cic2017, ColumnSet::Cfm4] {
            let mut w = CsvWriter::new(Vec::new(), set, Some("a,b")).unwrap();
            w.write(&r).unwrap();
            let text = String::from_utf8(w.finish().unwrap()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2);
            let header: Vec<&str> = lines[0].split(',').collect();
            // The quoted label holds one comma.
            let row: Vec<&str> = lines[1].split(',').collect();
            assert_eq!(header.len() + 1, row.len());
            assert_eq!(row[0], "172.16.0.1-192.168.10.50-36196-80-6");
            assert_eq!(row[2], "36196");
            let fwd_hdr: Vec<usize> = header
                .iter()
                .enumerate()
                .filter(|(_, h)| h.trim() == "Fwd Header Length")
                .map(|(i, _)| i)
                .collect();
            assert!(!fwd_hdr.is_empty());
            for i in fwd_hdr {
                assert_eq!(row[i], "200");
            }
            assert_eq!(*row.last().unwrap(), "b\"");
        }
    }

    /// A short flow's tail is reused only when it is the same: rows written one after another
    /// equal rows each written by a fresh writer (no remembered tail), whatever changes between
    /// them (identifiers, time, one value, long flows in between).
    #[test]
    fn a_remembered_tail_prints_what_formatting_prints() {
        let base = |port: u16, t: i64, pkts: f64, iat: f64| {
            let mut v = [0.0; NUM_FEATURES];
            v[Feature::SrcPort as usize] = f64::from(port);
            v[Feature::DstPort as usize] = 80.0;
            v[Feature::Protocol as usize] = 6.0;
            v[Feature::TotalFwdPackets as usize] = pkts;
            v[Feature::FlowIatMean as usize] = iat;
            v[Feature::FwdHeaderLength as usize] = 20.0;
            FlowRecord {
                src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, (port % 250) as u8)),
                dst_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 10, 50)),
                src_port: port,
                dst_port: 80,
                protocol: 6,
                start_us: t,
                end_us: t,
                end_reason: EndReason::Flushed,
                frame_bytes: [60, 0],
                values: v,
            }
        };
        let rows = [
            base(1000, 0, 1.0, 0.0),
            base(1001, 5, 1.0, 0.0),
            base(1002, 1_000_000, 1.0, 0.0),
            base(1003, 7, 1.0, -0.0),
            base(1004, 8, 2.0, 3.5),
            base(1005, 9, 2.0, 3.5),
            base(1006, 9, 40.0, 3.5),
            base(1007, 9, 2.0, 3.5),
            base(1008, 9, 1.0, 0.0),
        ];
        for set in [ColumnSet::Cic2017, ColumnSet::Cfm4] {
            for label in [None, Some("x")] {
                let mut w = CsvWriter::rows_only(Vec::new(), set, label, Some(0));
                let mut want = Vec::new();
                for r in &rows {
                    w.write(r).unwrap();
                    let mut fresh = CsvWriter::rows_only(Vec::new(), set, label, Some(0));
                    fresh.write(r).unwrap();
                    want.extend(fresh.finish().unwrap());
                }
                let got = w.finish().unwrap();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want).unwrap()
                );
            }
        }
    }
}
