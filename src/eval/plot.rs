//! SVG plots for `evaluate`: ROC curve, precision–recall curve, confusion matrix. Written as
//! plain SVG text (no font or image library needed).

use std::fmt::Write;

use super::Confusion;

const W: f64 = 480.0;
const H: f64 = 480.0;
const M: f64 = 60.0;

fn frame(title: &str, xlabel: &str, ylabel: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="{cx}" y="24" text-anchor="middle" font-size="16">{title}</text>
<rect x="{M}" y="{M}" width="{pw}" height="{pw}" fill="none" stroke="black"/>
<text x="{cx}" y="{xl}" text-anchor="middle">{xlabel}</text>
<text x="18" y="{cx}" text-anchor="middle" transform="rotate(-90 18 {cx})">{ylabel}</text>
"#,
        cx = W / 2.0,
        pw = W - 2.0 * M,
        xl = H - 18.0,
    );
    for k in 0..=4 {
        let v = f64::from(k) / 4.0;
        let (x, y) = (M + v * (W - 2.0 * M), H - M - v * (H - 2.0 * M));
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{}" text-anchor="middle">{v}</text>"#,
            H - M + 16.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{v}</text>"#,
            M - 6.0,
            y + 4.0
        );
    }
    s
}

fn polyline(points: &[(f64, f64)], color: &str) -> String {
    let mut p = String::new();
    for (x, y) in points {
        let _ = write!(
            p,
            "{:.2},{:.2} ",
            M + x * (W - 2.0 * M),
            H - M - y * (H - 2.0 * M)
        );
    }
    format!(
        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
        p.trim_end()
    )
}

/// ROC curve with the diagonal and the AUC in the title.
pub fn roc_svg(points: &[(f64, f64)], auc: f64) -> String {
    let mut s = frame(
        &format!("ROC curve (AUC {auc:.3})"),
        "false positive rate",
        "true positive rate",
    );
    s.push_str(&polyline(&[(0.0, 0.0), (1.0, 1.0)], "#bbbbbb"));
    s.push_str(&polyline(points, "#1f77b4"));
    s.push_str("\n</svg>\n");
    s
}

/// Precision–recall curve with the average precision in the title.
pub fn pr_svg(points: &[(f64, f64)], ap: f64) -> String {
    let mut s = frame(
        &format!("Precision-recall (AP {ap:.3})"),
        "recall",
        "precision",
    );
    s.push_str(&polyline(points, "#d62728"));
    s.push_str("\n</svg>\n");
    s
}

/// 2×2 confusion matrix.
pub fn confusion_svg(c: &Confusion, threshold: f64) -> String {
    let mut s = String::new();
    let cells = [
        ("TN", c.tn, 0.0, 0.0),
        ("FP", c.fp, 1.0, 0.0),
        ("FN", c.fn_, 0.0, 1.0),
        ("TP", c.tp, 1.0, 1.0),
    ];
    let max = cells.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="420" height="400" font-family="sans-serif" font-size="14">
<rect width="100%" height="100%" fill="white"/>
<text x="210" y="24" text-anchor="middle" font-size="16">Confusion matrix (threshold {threshold:.4})</text>
<text x="245" y="385" text-anchor="middle">predicted (benign | anomaly)</text>
<text x="20" y="200" text-anchor="middle" transform="rotate(-90 20 200)">actual (benign | attack)</text>"#
    );
    for (name, n, col, row) in cells {
        let (x, y) = (90.0 + col * 150.0, 50.0 + row * 150.0);
        let shade = 255.0 - 180.0 * (n as f64 / max);
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{y}" width="150" height="150" fill="rgb({shade:.0},{shade:.0},255)" stroke="black"/><text x="{}" y="{}" text-anchor="middle">{name}</text><text x="{}" y="{}" text-anchor="middle" font-size="18">{n}</text>"#,
            x + 75.0,
            y + 65.0,
            x + 75.0,
            y + 92.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svgs_are_well_formed_enough() {
        let r = roc_svg(&[(0.0, 0.0), (0.5, 0.9), (1.0, 1.0)], 0.85);
        assert!(
            r.starts_with("<svg") && r.trim_end().ends_with("</svg>") && r.contains("AUC 0.850")
        );
        let c = confusion_svg(
            &Confusion {
                tp: 5,
                fp: 1,
                tn: 7,
                fn_: 2,
            },
            0.5,
        );
        assert!(c.contains(">5<") && c.contains(">7<"));
    }
}
