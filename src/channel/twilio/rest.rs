//! Sending a WhatsApp message outside a webhook's reply: Twilio's REST API,
//! `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json` with the form fields
//! `To`, `From` and `Body`, HTTP Basic auth with the account SID and auth token.
//!
//! Used for messages sent after the webhook answered (badge results), drained from the
//! outbound queue ([`Deliver`]). Network errors, 429 and 5xx are retried with exponential
//! backoff (`attempts`; the queue's sender uses one attempt and retries itself); other
//! failures are not (they will not get better). A failure is reported with Twilio's error
//! code and message. Twilio renders choices as the numbered text the message already holds:
//! its quick-reply buttons need pre-approved Content templates, which are not supported.

use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

use super::{MAX_MESSAGE_CHARS, split_message};
use crate::desk::outbound::{Deliver, Delivered, Delivery, SendFailure};

/// Why a message was not sent.
#[derive(Debug, Error)]
pub enum SendError {
    /// Twilio refused it.
    #[error("Twilio answered HTTP {status}: error {code:?}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Twilio's error code (e.g. 21211, invalid `To`), when given.
        code: Option<i64>,
        /// Twilio's message.
        message: String,
    },
    /// Twilio could not be reached, after every retry.
    #[error("cannot reach Twilio: {0}")]
    Network(String),
    /// The API base URL cannot form a request URL.
    #[error("invalid Twilio API URL: {0}")]
    Url(String),
}

impl SendError {
    /// True when trying again later may succeed: Twilio unreachable, rate-limited (429) or
    /// failing (5xx). A refusal of the message itself (4xx) or a bad URL will not improve.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Network(_) => true,
            SendError::Refused { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS.as_u16() || *status >= 500
            }
            SendError::Url(_) => false,
        }
    }
}

/// How a sender reaches Twilio.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// `https://api.twilio.com` (tests: a local server).
    pub api_base: Url,
    /// `TWILIO_ACCOUNT_SID`.
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN`.
    pub auth_token: SecretString,
    /// Attempts per message, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl RestConfig {
    /// Production defaults: 4 attempts, 1 s backoff, 15 s timeout.
    pub fn new(api_base: Url, account_sid: String, auth_token: SecretString) -> Self {
        RestConfig {
            api_base,
            account_sid,
            auth_token,
            attempts: 4,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Sends messages through Twilio's REST API.
#[derive(Debug, Clone)]
pub struct RestSender {
    client: reqwest::Client,
    config: RestConfig,
    url: Url,
}

#[derive(Deserialize)]
struct TwilioMessage {
    sid: Option<String>,
}

#[derive(Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl RestSender {
    /// A sender for `config`.
    pub fn new(config: RestConfig) -> Result<RestSender, SendError> {
        let path = format!("2010-04-01/Accounts/{}/Messages.json", config.account_sid);
        let mut base = config.api_base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let url = base.join(&path).map_err(|e| SendError::Url(e.to_string()))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .user_agent(concat!("wabot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Network(e.to_string()))?;
        Ok(RestSender { client, config, url })
    }

    /// Sends `body` from `from` to `to` (both `whatsapp:+…`), split into messages Twilio
    /// accepts. Logs each failure with Twilio's error; returns the first.
    /// The sid of the last part sent.
    pub async fn send(&self, from: &str, to: &str, body: &str) -> Result<Option<String>, SendError> {
        let mut sid = None;
        for part in split_message(body, MAX_MESSAGE_CHARS) {
            match self.send_one(from, to, &part).await {
                Ok(s) => sid = s,
                Err(e) => {
                    tracing::error!(error = %e, "sending a message through Twilio's REST API failed");
                    return Err(e);
                }
            }
        }
        Ok(sid)
    }

    async fn send_one(&self, from: &str, to: &str, body: &str) -> Result<Option<String>, SendError> {
        let mut wait = self.config.backoff;
        let mut attempt = 1;
        loop {
            let result = self.post(from, to, body).await;
            let retry = match &result {
                Ok(sid) => return Ok(sid.clone()),
                Err(e) => e.is_retryable(),
            };
            if !retry || attempt >= self.config.attempts {
                return result;
            }
            if let Err(e) = &result {
                tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "Twilio send failed; retrying");
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
            attempt += 1;
        }
    }

    async fn post(&self, from: &str, to: &str, body: &str) -> Result<Option<String>, SendError> {
        let response = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.config.account_sid, Some(self.config.auth_token.expose_secret()))
            .form(&[("To", to), ("From", from), ("Body", body)])
            .send()
            .await
            .map_err(|e| {
                SendError::Network(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                })
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(serde_json::from_str::<TwilioMessage>(&text).ok().and_then(|m| m.sid));
        }
        let parsed: Option<TwilioError> = serde_json::from_str(&text).ok();
        Err(SendError::Refused {
            status: status.as_u16(),
            code: parsed.as_ref().and_then(|e| e.code),
            message: parsed
                .and_then(|e| e.message)
                .unwrap_or_else(|| text.chars().take(200).collect::<String>()),
        })
    }
}

impl Deliver for RestSender {
    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<Delivered, SendFailure>> {
        Box::pin(async move {
            let Some(from) = &delivery.from else {
                return Err(SendFailure { message: "no From number to send from".into(), retryable: false });
            };
            let (from, to) = (super::whatsapp_address(from), super::whatsapp_address(&delivery.to));
            RestSender::send(self, &from, &to, &delivery.message.text)
                .await
                .map(|sid| Delivered { provider_message_id: sid })
                .map_err(|e| SendFailure { retryable: e.is_retryable(), message: e.to_string() })
        })
    }
}
