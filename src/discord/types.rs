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
    /// Up to 10 rich embeds. `None` leaves a message's embeds as they are on
    /// edit (and sends none on create); `Some(vec![])` removes them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub embeds: Option<Vec<Embed>>,
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

impl From<&crate::render::MessageBody> for MessagePayload {
    /// The rendered body as Discord's payload, field for field: what
    /// serialises is exactly what `render` produced (a test checks the JSON).
    fn from(body: &crate::render::MessageBody) -> Self {
        Self {
            content: Some(body.content.clone()),
            embeds: body.embeds.as_ref().map(|embeds| {
                embeds
                    .iter()
                    .map(|e| Embed {
                        title: Some(e.title.clone()),
                        description: (!e.description.is_empty()).then(|| e.description.clone()),
                        color: Some(e.color),
                        author: Some(EmbedAuthor {
                            name: e.author.name.clone(),
                        }),
                        ..Embed::default()
                    })
                    .collect()
            }),
            components: body
                .components
                .iter()
                .map(|row| ActionRow {
                    kind: row.kind,
                    components: row
                        .components
                        .iter()
                        .map(|b| Button {
                            kind: b.kind,
                            style: b.style,
                            label: Some(b.label.clone()),
                            custom_id: b.custom_id.clone(),
                            url: b.url.clone(),
                            disabled: false,
                        })
                        .collect(),
                })
                .collect(),
            allowed_mentions: AllowedMentions {
                parse: body.allowed_mentions.parse.clone(),
                ..AllowedMentions::default()
            },
            flags: None,
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
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{self, RequestView, Status, StatusField};

    fn view(status: Status) -> RequestView {
        RequestView {
            id: "3fa85f64-5717-4562-b3fc-2c963f66afa6".into(),
            cluster: "example".into(),
            user: "alice@example.com".into(),
            roles: vec!["dev".into()],
            reason: "deploy".into(),
            status: StatusField(status),
            reviews: vec![render::ReviewView {
                author: "bob".into(),
                approved: true,
                reason: "ok".into(),
                created_unix: 1_136_214_245,
                via: None,
            }],
            web_proxy_url: Some("https://teleport.example.com".into()),
            ..RequestView::default()
        }
    }

    #[test]
    fn the_payload_says_exactly_what_render_produced() {
        let mut no_reviews = view(Status::Pending);
        no_reviews.reviews.clear();
        for body in [
            render::render(&view(Status::Pending), true),
            // Embeds left alone on edit (upstream's EXPIRED edit) …
            render::render(&view(Status::Expired), false),
            // … versus none to show: the empty list clears them.
            render::render(&no_reviews, true),
        ] {
            let payload = MessagePayload::from(&body);
            assert_eq!(
                serde_json::to_value(&payload).expect("payload"),
                serde_json::to_value(&body).expect("body"),
            );
        }
        let left = MessagePayload::from(&render::render(&view(Status::Expired), false));
        assert_eq!(left.embeds, None);
        let cleared = MessagePayload::from(&render::render(&no_reviews, true));
        assert_eq!(cleared.embeds, Some(Vec::new()));
    }
}
