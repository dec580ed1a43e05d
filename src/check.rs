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
    if config.review.enabled {
        let (part, fine) = reviews(config).await;
        text.push_str(&part);
        ok &= fine;
    }
    if config.access_list.reminders {
        text.push_str(&reminders(config).await);
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

/// `[review] enabled`: the key, the Auth Service's version, the user lookup.
async fn reviews(config: &Config) -> (String, bool) {
    let r = &config.review;
    let mut text = String::from("Reviews from Discord ([review] enabled):\n");
    let mut ok = true;
    text.push_str(if config.discord.public_key.is_some() {
        "  interactions public key: ok (a valid Ed25519 key)\n"
    } else {
        "  interactions public key: MISSING\n"
    });
    text.push_str(&format!(
        "  [review.users]: {} Discord user(s) mapped\n",
        r.users.len()
    ));
    match crate::teleport::check::probe_reviews(&config.teleport, &r.discord_user_id_trait).await {
        Ok(p) => {
            let since = crate::review::ON_BEHALF_SINCE;
            if crate::teleport::client::version_at_least(&p.server_version, since) {
                text.push_str(&format!(
                    "  Auth Service {}: takes reviews submitted for users\n",
                    p.server_version
                ));
            } else {
                ok = false;
                text.push_str(&format!(
                    "  Auth Service {}: TOO OLD: reviews submitted for users need Teleport {since} or newer\n",
                    p.server_version
                ));
            }
            match p.list_users {
                None => {
                    text.push_str("  user lookup by trait: off (discord_user_id_trait = \"\")\n")
                }
                Some(Ok(())) => text.push_str(&format!(
                    "  user lookup by trait {:?} (ListUsers): ok\n",
                    r.discord_user_id_trait
                )),
                Some(Err(e)) => {
                    ok = false;
                    text.push_str(&format!(
                        "  user lookup by trait {:?} (ListUsers): FAILED: {e}; add the rule `user: [list, read]` to the plugin's role\n",
                        r.discord_user_id_trait
                    ));
                }
            }
            text.push_str("  (Teleport checks review_requests.submit_for_users only when a review is submitted)\n");
        }
        Err(e) => {
            ok = false;
            text.push_str(&format!("  Teleport: FAILED: {e}\n"));
        }
    }
    (text, ok)
}

/// `[access_list] reminders` (on by default): whether the lists can be read.
/// A failure is reported, not fatal: reminders are optional.
async fn reminders(config: &Config) -> String {
    match crate::teleport::check::probe_reviews(&config.teleport, "").await {
        Ok(p) => match p.access_lists {
            Ok(n) => format!("Access list reminders: ok ({n} access list(s) readable)\n"),
            Err(e) => format!(
                "Access list reminders: OFF: {e}; add the rule `access_list: [list, read]` to the plugin's role, or set [access_list] reminders = false\n"
            ),
        },
        Err(e) => format!("Access list reminders: Teleport FAILED: {e}\n"),
    }
}
