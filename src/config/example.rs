//! The example config printed by `teleport-discord configure`. A test loads it
//! with the real loader, so it stays valid.

/// A complete, commented config with every key.
pub const EXAMPLE_CONFIG: &str = include_str!("example.toml");
