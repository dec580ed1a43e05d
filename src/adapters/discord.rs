//! The reconciler's Discord port ([`Messenger`]) over the delivery queue:
//! rendered bodies become Discord payloads (the lossless conversion the
//! `discord` module owns), answers become [`SendError`]s and are handed to
//! the reconciler's callback; nothing here waits for Discord.

use crate::discord::types::MessagePayload;
use crate::discord::{Delivery, DeliveryError, DiscordError, Op};
use crate::reconcile::{Answer, MessageOp, Messenger, SendError};

/// Messages through the Discord delivery queue.
#[derive(Debug, Clone)]
pub struct DiscordMessenger {
    delivery: Delivery,
}

impl DiscordMessenger {
    /// Wraps a running delivery queue.
    pub fn new(delivery: Delivery) -> Self {
        Self { delivery }
    }
}

/// Whether a message Discord returned shows `payload` (text and embeds).
fn shows(m: &crate::discord::Message, payload: &MessagePayload) -> bool {
    let embeds = payload.embeds.as_deref().unwrap_or_default();
    payload.content.as_deref().unwrap_or_default() == m.content
        && m.embeds.len() == embeds.len()
        && m.embeds
            .iter()
            .zip(embeds)
            .all(|(a, b)| a.title == b.title && a.description == b.description)
}

fn send_error(e: DeliveryError) -> SendError {
    match e {
        // A bad token is fixed by the operator; the message must not be given up.
        DeliveryError::Discord(DiscordError::Unauthorized { message }) => {
            SendError::Retryable(format!("bot token rejected: {message}"))
        }
        e if e.is_retryable() => SendError::Retryable(e.to_string()),
        e => SendError::Permanent(e.to_string()),
    }
}

impl Messenger for DiscordMessenger {
    fn submit(&self, op: MessageOp, answer: Answer) {
        match op {
            MessageOp::Create {
                channel,
                nonce,
                body,
            } => {
                let payload = MessagePayload::from(&*body);
                let op = Op::Create {
                    channel_id: channel.clone(),
                    nonce,
                    payload: payload.clone(),
                };
                let delivery = self.delivery.clone();
                self.delivery.submit(
                    op,
                    Box::new(move |result| match result {
                        // `enforce_nonce` answers a repeated create with the
                        // message the first one made, showing what was true
                        // then (a poster that crashed before recording it):
                        // bring it up to date before answering.
                        Ok(message) if !shows(&message, &payload) => {
                            tracing::info!(channel_id = %channel, message_id = %message.id, "create answered with an earlier message of this request; updating it");
                            let id = message.id;
                            let op = Op::Edit {
                                channel_id: channel,
                                message_id: id.clone(),
                                payload,
                            };
                            delivery.submit(
                                op,
                                Box::new(move |r| answer(r.map(|_| id).map_err(send_error))),
                            );
                        }
                        Ok(message) => answer(Ok(message.id)),
                        Err(e) => answer(Err(send_error(e))),
                    }),
                );
            }
            MessageOp::Edit {
                channel,
                message,
                body,
            } => {
                let op = Op::Edit {
                    channel_id: channel,
                    message_id: message,
                    payload: MessagePayload::from(&*body),
                };
                self.delivery.submit(
                    op,
                    Box::new(move |r| answer(r.map(|m| m.id).map_err(send_error))),
                );
            }
        }
    }
}

/// The review desk's Discord port ([`crate::review::FollowUps`]): interaction
/// webhooks through the Discord client (their own buckets, no global limit).
#[derive(Debug, Clone)]
pub struct DiscordFollowUps {
    client: crate::discord::DiscordClient,
}

impl DiscordFollowUps {
    /// Over the bot's client.
    pub fn new(client: crate::discord::DiscordClient) -> Self {
        Self { client }
    }
}

impl crate::review::FollowUps for DiscordFollowUps {
    fn edit_original<'a>(
        &'a self,
        acting: &'a crate::interactions::Acting,
        content: &'a str,
    ) -> crate::review::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .edit_original_response(&acting.application_id, &acting.id, &acting.token, content)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The notices' Discord port ([`crate::notify::DirectPort`]): DM channels
/// opened with `POST /users/@me/channels` (remembered per user), messages
/// through the delivery queue like every other message.
pub struct DiscordDirect {
    client: crate::discord::DiscordClient,
    delivery: Delivery,
    dm_channels: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for DiscordDirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordDirect").finish_non_exhaustive()
    }
}

impl DiscordDirect {
    /// Over the bot's client and queue.
    pub fn new(client: crate::discord::DiscordClient, delivery: Delivery) -> Self {
        Self {
            client,
            delivery,
            dm_channels: std::sync::Mutex::default(),
        }
    }

    async fn post(
        &self,
        channel_id: &str,
        nonce: &str,
        text: &str,
    ) -> Result<(), crate::notify::DmError> {
        let op = Op::Create {
            channel_id: channel_id.to_owned(),
            nonce: nonce.to_owned(),
            payload: MessagePayload::text(text),
        };
        let pending = self
            .delivery
            .enqueue(op)
            .await
            .map_err(|e| crate::notify::DmError::Retryable(e.to_string()))?;
        pending.wait().await.map(drop).map_err(dm_error)
    }
}

/// A 4xx that is not a rate limit is Discord's final word (50007 "Cannot
/// send messages to this user", 50033 "Invalid Recipient(s)", …); a bad
/// token is fixed by the operator, so it is worth trying again.
fn dm_error(e: DeliveryError) -> crate::notify::DmError {
    match e {
        DeliveryError::Discord(DiscordError::Api { status, .. })
            if (400..500).contains(&status) =>
        {
            crate::notify::DmError::Refused(e.to_string())
        }
        DeliveryError::Discord(DiscordError::Invalid(_)) => {
            crate::notify::DmError::Refused(e.to_string())
        }
        other => crate::notify::DmError::Retryable(other.to_string()),
    }
}

impl crate::notify::DirectPort for DiscordDirect {
    fn to_user<'a>(
        &'a self,
        user_id: &'a str,
        nonce: &'a str,
        text: &'a str,
    ) -> crate::notify::BoxFuture<'a, Result<(), crate::notify::DmError>> {
        Box::pin(async move {
            let known = crate::sync::lock(&self.dm_channels).get(user_id).cloned();
            let channel = match known {
                Some(c) => c,
                None => {
                    let c = self
                        .client
                        .create_dm(user_id)
                        .await
                        .map_err(|e| dm_error(DeliveryError::Discord(e)))?;
                    let mut map = crate::sync::lock(&self.dm_channels);
                    if map.len() > 10_000 {
                        map.clear();
                    }
                    map.insert(user_id.to_owned(), c.id.clone());
                    c.id
                }
            };
            self.post(&channel, nonce, text).await
        })
    }

    fn to_channel<'a>(
        &'a self,
        channel_id: &'a str,
        nonce: &'a str,
        text: &'a str,
    ) -> crate::notify::BoxFuture<'a, Result<(), crate::notify::DmError>> {
        Box::pin(self.post(channel_id, nonce, text))
    }
}
