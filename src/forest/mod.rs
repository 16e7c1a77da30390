//! Stage 5: score. The Isolation Forest: model format, loading and validation, scoring, training.
