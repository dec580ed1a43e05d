//! Request payloads and the parts of Discord's answers we read.
//!
//! Payloads serialize to the shapes of the OpenAPI `MessageCreateRequest` /
//! `MessageEditRequestPartial`; empty optional parts are left out. Mentions
//! are suppressed by default (`allowed_mentions: {"parse": []}`): a request's
//! text must never ping anyone unless the caller names the user explicitly.

use serde::{Deserialize, Serialize};

/// The visible part of a message, for both create and edit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagePayload {
    /// Text, ≤ 2000 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Up to 10 rich embeds.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub embeds: Vec<Embed>,
    /// Up to 5 action rows. On edit, an empty list removes the buttons.
    #[serde(default)]
    pub components: Vec<ActionRow>,
    /// Who may be pinged; nobody by default.
    #[serde(default)]
    pub allowed_mentions: AllowedMentions,
    /// Message flags (e.g. 4096 SUPPRESS_NOTIFICATIONS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
}

impl MessagePayload {
    /// A text-only payload.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: Some(content.into()),
            ..Self::default()
        }
    }
}

/// A rich embed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    /// ≤ 256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// ≤ 4096.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Link of the title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// 0..=0xFFFFFF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<u32>,
    /// ≤ 25 fields.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<EmbedField>,
    /// Footer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<EmbedFooter>,
    /// ISO 8601 timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Author (upstream puts the reviewer here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<EmbedAuthor>,
}

/// An embed's author.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedAuthor {
    /// ≤ 256.
    pub name: String,
}

/// An embed field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedField {
    /// ≤ 256.
    pub name: String,
    /// ≤ 1024.
    pub value: String,
    /// Side by side with neighbours.
    #[serde(default)]
    pub inline: bool,
}

/// An embed footer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedFooter {
    /// ≤ 2048.
    pub text: String,
}

/// A legacy action row (type 1) of up to 5 buttons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    /// Always 1.
    #[serde(rename = "type")]
    pub kind: u8,
    /// The buttons.
    pub components: Vec<Button>,
}

impl ActionRow {
    /// A row of buttons.
    pub fn new(buttons: Vec<Button>) -> Self {
        Self {
            kind: 1,
            components: buttons,
        }
    }
}

/// A button (type 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Button {
    /// Always 2.
    #[serde(rename = "type")]
    pub kind: u8,
    /// 1 primary, 2 secondary, 3 success, 4 danger, 5 link.
    pub style: u8,
    /// ≤ 80.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// 1–100 chars, unique in the message; not for link buttons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    /// Link buttons only, ≤ 512.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Greyed out.
    #[serde(default)]
    pub disabled: bool,
}

impl Button {
    /// An interactive button.
    pub fn action(style: u8, label: impl Into<String>, custom_id: impl Into<String>) -> Self {
        Self {
            kind: 2,
            style,
            label: Some(label.into()),
            custom_id: Some(custom_id.into()),
            url: None,
            disabled: false,
        }
    }
    /// A link button.
    pub fn link(label: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            kind: 2,
            style: 5,
            label: Some(label.into()),
            custom_id: None,
            url: Some(url.into()),
            disabled: false,
        }
    }
}

/// `allowed_mentions`. The default pings nobody (`{"parse": []}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AllowedMentions {
    /// Types parsed from content: `users`, `roles`, `everyone`.
    #[serde(default)]
    pub parse: Vec<String>,
    /// Users that may be pinged (exclusive with `parse: ["users"]`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub users: Vec<String>,
    /// Roles that may be pinged (exclusive with `parse: ["roles"]`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub roles: Vec<String>,
}

/// A message as Discord returns it (the fields we use).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    /// Snowflake.
    pub id: String,
    /// Channel snowflake.
    pub channel_id: String,
    /// Current text.
    #[serde(default)]
    pub content: String,
    /// Current embeds (title and description are compared after a create
    /// that `enforce_nonce` answered with an existing message).
    #[serde(default)]
    pub embeds: Vec<Embed>,
}

/// `GET /users/@me`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BotUser {
    /// Snowflake.
    pub id: String,
    /// User name.
    pub username: String,
    /// Whether the account is a bot.
    #[serde(default)]
    pub bot: bool,
}

/// `GET /channels/{id}` (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Channel {
    /// Snowflake.
    pub id: String,
    /// 0 guild text, 1 DM, 5 announcement, 10–12 threads, …
    #[serde(rename = "type")]
    pub kind: u8,
    /// Name (absent for DMs).
    #[serde(default)]
    pub name: Option<String>,
}
