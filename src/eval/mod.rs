//! Evaluation of anomaly scores against labels: precision, recall, F1, ROC AUC, PR AUC (average
//! precision), the confusion matrix at a threshold, recall and ROC AUC per attack label, F1
//! threshold tuning, and SVG plots ([`plot`]). Plain numbers in, a [`Report`] out.

pub mod plot;

use std::collections::BTreeMap;

use serde::Serialize;

/// Confusion matrix at a threshold (positive = attack = flagged anomalous).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// Per-label detection.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LabelStats {
    pub rows: u64,
    pub flagged: u64,
    /// For attack labels: flagged / rows (recall). For the benign label: the false-positive rate.
    pub rate: f64,
    /// This label's rows against the benign rows (attack labels only).
    pub roc_auc: Option<f64>,
}

/// Everything `evaluate` prints.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub rows: u64,
    pub attacks: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub threshold: f64,
    pub confusion: Confusion,
    pub per_label: BTreeMap<String, LabelStats>,
}

/// Confusion matrix for `score > threshold`.
pub fn confusion(scores: &[f64], attack: &[bool], threshold: f64) -> Confusion {
    let mut c = Confusion::default();
    for (s, a) in scores.iter().zip(attack) {
        match (*s > threshold, *a) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// (precision, recall, F1) of a confusion matrix.
pub fn prf(c: &Confusion) -> (f64, f64, f64) {
    let p = ratio(c.tp, c.tp + c.fp);
    let r = ratio(c.tp, c.tp + c.fn_);
    let f = if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    };
    (p, r, f)
}

/// ROC AUC by the rank-sum (Mann–Whitney) statistic, ties counted one half. `None` without
/// both classes.
pub fn roc_auc(scores: &[f64], attack: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut pos, mut i) = (0.0, 0u64, 0);
    while i < idx.len() {
        let mut j = i;
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        for k in &idx[i..j] {
            if attack[*k] {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j;
    }
    let neg = scores.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64))
}

/// Points of a curve at every distinct score threshold, from the strictest: (threshold, tp, fp).
fn sweep(scores: &[f64], attack: &[bool]) -> Vec<(f64, u64, u64)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut fp, mut out, mut i) = (0u64, 0u64, Vec::new(), 0);
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if attack[idx[i]] {
                tp += 1
            } else {
                fp += 1
            }
            i += 1;
        }
        out.push((s, tp, fp));
    }
    out
}

/// Average precision (scikit-learn's definition): Σ (Rₙ − Rₙ₋₁)·Pₙ over distinct thresholds.
pub fn average_precision(scores: &[f64], attack: &[bool]) -> Option<f64> {
    let pos = attack.iter().filter(|a| **a).count() as u64;
    if pos == 0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_r = 0.0;
    for (_, tp, fp) in sweep(scores, attack) {
        let r = tp as f64 / pos as f64;
        ap += (r - prev_r) * ratio(tp, tp + fp);
        prev_r = r;
    }
    Some(ap)
}

/// ROC curve points (fpr, tpr), from (0,0) to (1,1).
pub fn roc_curve(scores: &[f64], attack: &[bool]) -> Vec<(f64, f64)> {
    let pos = attack.iter().filter(|a| **a).count() as u64;
    let neg = attack.len() as u64 - pos;
    let mut v = vec![(0.0, 0.0)];
    v.extend(
        sweep(scores, attack)
            .into_iter()
            .map(|(_, tp, fp)| (ratio(fp, neg), ratio(tp, pos))),
    );
    v
}

/// Precision–recall curve points (recall, precision).
pub fn pr_curve(scores: &[f64], attack: &[bool]) -> Vec<(f64, f64)> {
    let pos = attack.iter().filter(|a| **a).count() as u64;
    sweep(scores, attack)
        .into_iter()
        .map(|(_, tp, fp)| (ratio(tp, pos), ratio(tp, tp + fp)))
        .collect()
}

/// The threshold maximising F1 for `score > threshold`: midway between the last flagged
/// distinct score and the next lower one.
pub fn best_f1_threshold(scores: &[f64], attack: &[bool]) -> f64 {
    let pos = attack.iter().filter(|a| **a).count() as u64;
    let pts = sweep(scores, attack);
    let mut best = (f64::NEG_INFINITY, 1.0);
    for (k, (_, tp, fp)) in pts.iter().enumerate() {
        let c = Confusion {
            tp: *tp,
            fp: *fp,
            tn: 0,
            fn_: pos - tp,
        };
        let f1 = prf(&c).2;
        if f1 > best.0 {
            let below = pts.get(k + 1).map_or(0.0, |p| p.0);
            best = (f1, (pts[k].0 + below) / 2.0);
        }
    }
    best.1
}

/// The full report. `labels[i]` is row i's label; rows labeled `benign` are negatives.
pub fn report(scores: &[f64], labels: &[String], benign: &str, threshold: f64) -> Report {
    let attack: Vec<bool> = labels
        .iter()
        .map(|l| !l.eq_ignore_ascii_case(benign))
        .collect();
    let c = confusion(scores, &attack, threshold);
    let (precision, recall, f1) = prf(&c);
    let mut per_label: BTreeMap<String, LabelStats> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        let e = per_label.entry(l.clone()).or_default();
        e.rows += 1;
        e.flagged += u64::from(scores[i] > threshold);
    }
    for (l, e) in per_label.iter_mut() {
        e.rate = ratio(e.flagged, e.rows);
        if !l.eq_ignore_ascii_case(benign) {
            let (s, a): (Vec<f64>, Vec<bool>) = scores
                .iter()
                .zip(labels)
                .filter(|(_, x)| *x == l || x.eq_ignore_ascii_case(benign))
                .map(|(s, x)| (*s, x == l))
                .unzip();
            e.roc_auc = roc_auc(&s, &a);
        }
    }
    Report {
        rows: scores.len() as u64,
        attacks: attack.iter().filter(|a| **a).count() as u64,
        precision,
        recall,
        f1,
        roc_auc: roc_auc(scores, &attack).unwrap_or(f64::NAN),
        pr_auc: average_precision(scores, &attack).unwrap_or(f64::NAN),
        threshold,
        confusion: c,
        per_label,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_metrics() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4];
        let a = [true, false, true, true, false, false];
        let c = confusion(&s, &a, 0.65);
        assert_eq!(
            c,
            Confusion {
                tp: 2,
                fp: 1,
                tn: 2,
                fn_: 1
            }
        );
        let (p, r, f) = prf(&c);
        assert!(
            (p - 2.0 / 3.0).abs() < 1e-12
                && (r - 2.0 / 3.0).abs() < 1e-12
                && (f - 2.0 / 3.0).abs() < 1e-12
        );
        // Pairs (attack, benign) ranked correctly: 0.9 beats 3, 0.7 beats 2, 0.6 beats 2 → 7 of 9.
        assert!((roc_auc(&s, &a).unwrap() - 7.0 / 9.0).abs() < 1e-12);
        // AP = 1/3·1 + 1/3·2/3 + 1/3·3/4
        let ap = (1.0 + 2.0 / 3.0 + 0.75) / 3.0;
        assert!((average_precision(&s, &a).unwrap() - ap).abs() < 1e-12);
        // Best F1: flag the top 4 (tp 3, fp 1): F1 = 6/7.
        let t = best_f1_threshold(&s, &a);
        assert!(t < 0.6 && t > 0.55, "{t}");
    }

    #[test]
    fn ties_count_half() {
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, true]), None);
    }

    #[test]
    fn per_label_recall() {
        let s = [0.9, 0.2, 0.8, 0.1];
        let l: Vec<String> = ["DDoS", "DDoS", "BENIGN", "BENIGN"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        let r = report(&s, &l, "BENIGN", 0.5);
        assert_eq!(r.per_label["DDoS"].rate, 0.5);
        assert_eq!(r.per_label["BENIGN"].rate, 0.5);
        // Pairs: 0.9 beats both benign rows, 0.2 beats 0.1 only → 3 of 4.
        assert_eq!(r.per_label["DDoS"].roc_auc, Some(0.75));
    }
}
