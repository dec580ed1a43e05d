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
    let client = match crate::discord::DiscordClient::new(
        &config.discord,
        crate::discord::DiscordMetrics::unregistered(),
        None,
    ) {
        Ok(c) => c,
        Err(e) => {
            text.push_str(&format!("Discord: FAILED: {e}\n"));
            return Report { text, ok: false };
        }
    };
    match client.check_token().await {
        Ok(user) => text.push_str(&format!(
            "Discord: token accepted (bot {})\n",
            user.username
        )),
        Err(e) => {
            text.push_str(&format!("Discord: FAILED: {e}\n"));
            return Report { text, ok: false };
        }
    }
    let mut channels: Vec<&str> = config
        .role_to_recipients
        .entries()
        .values()
        .flatten()
        .map(crate::config::Recipient::as_str)
        .collect();
    channels.sort_unstable();
    channels.dedup();
    for ch in channels {
        if crate::config::Recipient::new(ch).channel_id().is_none() {
            text.push_str(&format!("  channel {ch}: skipped (not a channel ID)\n"));
            continue;
        }
        match client.get_channel(ch).await {
            Ok(c) => text.push_str(&format!(
                "  channel {ch}: ok ({})\n",
                c.name.as_deref().unwrap_or("unnamed")
            )),
            Err(e) => {
                ok = false;
                text.push_str(&format!("  channel {ch}: FAILED: {e}\n"));
            }
        }
    }
    Report { text, ok }
}
