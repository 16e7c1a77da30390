//! Writes finished flows ([`FlowRecord`]) as CSV rows in either column layout of the schema:
//! the original CIC-IDS2017 TrafficLabelling header (default) or the CICFlowMeter-4 names.
//! Values are printed like the reference tool prints them (Java `long` / `double`).

use std::fmt;
use std::io::{self, Write};

use super::{Column, ColumnSet, FlowRecord, Kind};

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
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header at once. `label`, when given, adds a Label column with that text.
    pub fn new(out: W, set: ColumnSet, label: Option<&str>) -> io::Result<Self> {
        Self::with_community_id(out, set, label, None)
    }

    /// Like [`CsvWriter::new`]; with a seed, a last column `Community ID` (v1, that seed).
    pub fn with_community_id(
        mut out: W,
        set: ColumnSet,
        label: Option<&str>,
        community_id: Option<u16>,
    ) -> io::Result<Self> {
        let columns = set.columns(label.is_some());
        let label = label.map(quote);
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(set.name(*c).as_bytes())?;
        }
        if community_id.is_some() {
            out.write_all(b",Community ID")?;
        }
        out.write_all(b"\n")?;
        Ok(CsvWriter {
            out,
            set,
            columns,
            label,
            community_id,
            rows: 0,
        })
    }

    /// Writes one row.
    pub fn write(&mut self, r: &FlowRecord) -> io::Result<()> {
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            match c {
                Column::FlowId => write!(
                    self.out,
                    "{}-{}-{}-{}-{}",
                    r.src_ip, r.dst_ip, r.src_port, r.dst_port, r.protocol
                )?,
                Column::SrcIp => write!(self.out, "{}", r.src_ip)?,
                Column::DstIp => write!(self.out, "{}", r.dst_ip)?,
                Column::Timestamp => write!(self.out, "{}", CicTimestamp(r.start_us))?,
                Column::Value(f) => write!(self.out, "{}", CicValue(f.def().kind, r.get(*f)))?,
                Column::Label => self
                    .out
                    .write_all(self.label.as_deref().unwrap_or("").as_bytes())?,
            }
        }
        if let Some(seed) = self.community_id {
            write!(
                self.out,
                ",{}",
                crate::flow::community_id::of_record(r, seed)
            )?;
        }
        self.out.write_all(b"\n")?;
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

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
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
}
