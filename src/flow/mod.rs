//! Stage 3: flow. The bidirectional flow table: keys, per-flow accumulators, expiry and the cap.
