//! Named feature sets for training. Every list is built from the schema table, never spelled
//! out by name.

use crate::features::{FEATURES, Feature};

/// Features that are all zero in the original CIC-IDS2017 CSVs (a documented defect of the tool
/// that made them) and so carry no information for a model trained on them.
pub const ALWAYS_ZERO_IN_CIC2017: [Feature; 8] = [
    Feature::BwdPshFlags,
    Feature::BwdUrgFlags,
    Feature::FwdAvgBytesPerBulk,
    Feature::FwdAvgPacketsPerBulk,
    Feature::FwdAvgBulkRate,
    Feature::BwdAvgBytesPerBulk,
    Feature::BwdAvgPacketsPerBulk,
    Feature::BwdAvgBulkRate,
];

/// Names accepted by `--feature-set`.
pub const NAMES: [&str; 5] = [
    "default",
    "cic2017",
    "cic2017-nonzero",
    "cic2017+port",
    "all",
];

/// Resolves a feature-set name. `available` are the features the training input provides.
pub fn feature_set(name: &str, available: &[Feature]) -> Result<Vec<Feature>, String> {
    let cic2017 = || {
        FEATURES
            .iter()
            .filter(|d| !d.id.is_identifier() && d.cic2017.is_some())
            .map(|d| d.id)
    };
    let v: Vec<Feature> = match name {
        // The shipped model's set: measured best on held-out rows (see model/README.md).
        "default" | "cic2017" => cic2017().collect(),
        "cic2017-nonzero" => cic2017()
            .filter(|f| !ALWAYS_ZERO_IN_CIC2017.contains(f))
            .collect(),
        "cic2017+port" => std::iter::once(Feature::DstPort).chain(cic2017()).collect(),
        "all" => available
            .iter()
            .copied()
            .filter(|f| !f.is_identifier())
            .collect(),
        other => {
            return Err(format!(
                "unknown feature set {other:?}; known: {}",
                NAMES.join(", ")
            ));
        }
    };
    Ok(v)
}

/// Parses a comma-separated list of feature names (either spelling).
pub fn parse_list(list: &str) -> Result<Vec<Feature>, String> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| Feature::from_name(s).ok_or_else(|| format!("unknown feature {:?}", s.trim())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_resolve() {
        assert_eq!(feature_set("cic2017", &[]).unwrap().len(), 76);
        assert_eq!(feature_set("default", &[]).unwrap().len(), 76);
        assert_eq!(feature_set("cic2017-nonzero", &[]).unwrap().len(), 68);
        assert_eq!(
            feature_set("cic2017+port", &[]).unwrap()[0],
            Feature::DstPort
        );
        assert!(feature_set("nope", &[]).is_err());
        assert_eq!(
            parse_list(" Flow Duration,Total Fwd Packet").unwrap(),
            [Feature::FlowDuration, Feature::TotalFwdPackets]
        );
        assert!(parse_list("Flow Duration,bogus").is_err());
    }
}
