//! Evaluation of a model against labeled flows: metrics, threshold tuning, plots.
