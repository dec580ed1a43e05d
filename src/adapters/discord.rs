//! The reconciler's Discord port ([`Messenger`]) over the delivery queue:
//! rendered bodies become Discord payloads (the lossless conversion the
//! `discord` module owns), answers become [`SendError`]s.

use crate::discord::types::MessagePayload;
use crate::discord::{Delivery, DeliveryError, DiscordError, Op};
use crate::reconcile::{Messenger, SendError};
use crate::render::MessageBody;

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

impl DiscordMessenger {
    async fn deliver(&self, op: Op) -> Result<crate::discord::Message, SendError> {
        let pending = self
            .delivery
            .enqueue(op)
            .await
            .map_err(|e| SendError::Retryable(e.to_string()))?;
        pending.wait().await.map_err(send_error)
    }
}

impl Messenger for DiscordMessenger {
    async fn create(
        &self,
        channel: &str,
        nonce: &str,
        body: &MessageBody,
    ) -> Result<String, SendError> {
        let payload = MessagePayload::from(body);
        let op = Op::Create {
            channel_id: channel.to_owned(),
            nonce: nonce.to_owned(),
            payload: payload.clone(),
        };
        let message = self.deliver(op).await?;
        // `enforce_nonce` answers a repeated create with the message the first
        // one made, showing what was true then (a poster that crashed before
        // recording it): bring it up to date.
        if !shows(&message, &payload) {
            tracing::info!(channel_id = %channel, message_id = %message.id, "create answered with an earlier message of this request; updating it");
            let op = Op::Edit {
                channel_id: channel.to_owned(),
                message_id: message.id.clone(),
                payload,
            };
            self.deliver(op).await?;
        }
        Ok(message.id)
    }

    async fn edit(
        &self,
        channel: &str,
        message: &str,
        body: &MessageBody,
    ) -> Result<(), SendError> {
        let op = Op::Edit {
            channel_id: channel.to_owned(),
            message_id: message.to_owned(),
            payload: MessagePayload::from(body),
        };
        self.deliver(op).await.map(|_| ())
    }
}
