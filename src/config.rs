//! The daemon's TOML configuration: serde schema, defaults, validation with file:line:col errors.
