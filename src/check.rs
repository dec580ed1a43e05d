//! `teleport-discord check`: after the config validates, connect to what it
//! names and report what works: Teleport (ping, watch, plugin data write) and
//! Discord (token, each configured channel).

use crate::config::Config;

/// What `check` found beyond the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Human-readable lines.
    pub text: String,
    /// Whether everything the plugin needs works.
    pub ok: bool,
}

/// Runs the connectivity checks.
pub async fn connectivity(config: &Config) -> Report {
    let mut text = String::new();
    let mut ok = true;
    match crate::teleport::check_connectivity(&config.teleport).await {
        Ok(r) => {
            ok &= r.ok();
            text.push_str(&r.to_string());
        }
        Err(e) => {
            ok = false;
            text.push_str(&format!(
                "Teleport ({}): FAILED: {e}\n",
                config.teleport.addr
            ));
        }
    }
    Report { text, ok }
}
