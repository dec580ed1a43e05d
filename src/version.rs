//! Build identification: version, git commit and compiler, as `version` prints
//! them and `teleport_discord_build_info` exports them.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the binary was built from, or `unknown`.
pub const GIT_COMMIT: &str = env!("TELEPORT_DISCORD_GIT_COMMIT");
/// The compiler version, e.g. `1.95.0`.
pub const RUSTC: &str = env!("TELEPORT_DISCORD_RUSTC");

/// One line: `teleport-discord v0.1.0 git:abc123 rustc 1.95.0`.
pub fn version_line() -> String {
    format!("teleport-discord v{VERSION} git:{GIT_COMMIT} rustc {RUSTC}")
}

/// `User-Agent`-style identification, `teleport-discord/0.1.0`.
pub fn short() -> String {
    format!("teleport-discord/{VERSION}")
}
