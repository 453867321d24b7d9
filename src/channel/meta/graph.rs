//! Sending through Meta's Graph API: `POST {graph_base}/{phone_number_id}/messages` with
//! `Authorization: Bearer {META_ACCESS_TOKEN}` and a JSON body — a text (at most 4,096
//! characters, longer ones split at line or word boundaries), reply buttons (at most 3,
//! titles at most 20 characters), a list (at most 10 rows, titles at most 24, descriptions at
//! most 72), or a template. What does not fit Meta's limits is sent as the numbered text the
//! message holds, which typed numbers answer just as well.
//!
//! Outside WhatsApp's 24-hour window free text is refused: a message with a template key
//! configured in `[meta.templates]` is sent as that template (its text as the body's one
//! parameter), and one without is dropped with the reason.
//!
//! Retried by the queue: the network, HTTP 429 and 5xx, and Meta's throughput errors
//! (130429, 131056 pair rate, 4 and 80007 app rate, 131000 and 133004 server trouble).
//! Anything else is refused for good.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

use crate::config::MetaSettings;
use crate::config::meta::MetaTemplate;
use crate::desk::outbound::{Deliver, Delivered, Delivery, SendFailure};
use crate::domain::{Choice, Choices, Outgoing};

/// The longest text message.
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest body of an interactive message.
pub const MAX_INTERACTIVE_BODY: usize = 1024;
/// Reply buttons per message.
pub const MAX_BUTTONS: usize = 3;
/// A button's title.
pub const MAX_BUTTON_TITLE: usize = 20;
/// Rows per list.
pub const MAX_LIST_ROWS: usize = 10;
/// A row's title.
pub const MAX_ROW_TITLE: usize = 24;
/// A row's description.
pub const MAX_ROW_DESCRIPTION: usize = 72;
/// The list's button label.
pub const MAX_LIST_BUTTON: usize = 20;

/// Meta's error codes worth retrying: throughput (130429), pair rate (131056), app rate
/// limits (4, 80007), and server trouble (131000, 133004).
const RETRYABLE_CODES: &[i64] = &[4, 80007, 130429, 131056, 131000, 133004];

/// Why a Graph API call failed.
#[derive(Debug, Error)]
pub enum GraphError {
    /// Meta refused it.
    #[error("Meta answered HTTP {status}: error {code:?}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Meta's error code.
        code: Option<i64>,
        /// Meta's message.
        message: String,
    },
    /// Meta could not be reached.
    #[error("cannot reach Meta's Graph API: {0}")]
    Network(String),
    /// The settings cannot form a request.
    #[error("Meta's Graph API: {0}")]
    Config(String),
}

impl GraphError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            GraphError::Network(_) => true,
            GraphError::Refused { status, code, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS.as_u16()
                    || *status >= 500
                    || code.is_some_and(|c| RETRYABLE_CODES.contains(&c))
            }
            GraphError::Config(_) => false,
        }
    }
}

#[derive(Deserialize)]
struct Sent {
    #[serde(default)]
    messages: Vec<SentId>,
}

#[derive(Deserialize)]
struct SentId {
    id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<i64>,
    message: Option<String>,
}

/// The Graph API client for one business phone number.
#[derive(Debug, Clone)]
pub struct GraphClient {
    client: reqwest::Client,
    base: Url,
    messages: Url,
    token: SecretString,
    templates: BTreeMap<String, MetaTemplate>,
}

/// `base` with `segment` appended as a path segment.
pub(super) fn join(base: &Url, segment: &str) -> Result<Url, GraphError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|_| GraphError::Config(format!("{base} cannot be a base")))?
        .pop_if_empty()
        .push(segment);
    Ok(url)
}

impl GraphClient {
    /// A client for the settings' phone number; `None` when the channel is off.
    pub fn new(settings: &MetaSettings) -> Result<Option<GraphClient>, GraphError> {
        let (Some(phone), Some(token)) = (&settings.phone_number_id, &settings.access_token) else {
            return Ok(None);
        };
        let base = settings.graph_url().map_err(|e| GraphError::Config(e.to_string()))?;
        let messages = join(&join(&base, phone)?, "messages")?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("wabot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Network(e.to_string()))?;
        Ok(Some(GraphClient {
            client,
            base,
            messages,
            token: token.clone(),
            templates: settings.templates.clone(),
        }))
    }

    /// The Graph API's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The bearer token, for the media download beside it.
    pub(super) fn token(&self) -> &SecretString {
        &self.token
    }

    /// The HTTP client.
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// Posts one message body; the `wamid` Meta gave it.
    pub async fn post(&self, body: &Value) -> Result<Option<String>, GraphError> {
        let bytes = serde_json::to_vec(body).map_err(|e| GraphError::Config(e.to_string()))?;
        let response = self
            .client
            .post(self.messages.clone())
            .bearer_auth(self.token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| {
                GraphError::Network(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                })
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let sent: Option<Sent> = serde_json::from_str(&text).ok();
            return Ok(sent.and_then(|s| s.messages.into_iter().next()).map(|m| m.id));
        }
        let detail = serde_json::from_str::<ErrorBody>(&text).ok().and_then(|b| b.error);
        Err(GraphError::Refused {
            status: status.as_u16(),
            code: detail.as_ref().and_then(|d| d.code),
            message: detail
                .and_then(|d| d.message)
                .unwrap_or_else(|| text.chars().take(200).collect::<String>()),
        })
    }

    /// Marks the message `wamid` as read (the user sees blue ticks).
    pub async fn mark_read(&self, wamid: &str) -> Result<(), GraphError> {
        let body = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": wamid });
        self.post(&body).await.map(|_| ())
    }

    /// The bodies that send `message` to `to`: one per part.
    pub fn bodies(&self, to: &str, message: &Outgoing, in_window: bool) -> Result<Vec<Value>, String> {
        if !in_window {
            let Some(key) = &message.template else {
                return Err("outside the 24-hour window, and the message has no template".into());
            };
            let Some(t) = self.templates.get(key) else {
                return Err(format!(
                    "outside the 24-hour window, and no template meta.templates.{key} is configured"
                ));
            };
            return Ok(vec![template(to, t, &message.text)]);
        }
        if let (Some(prompt), Some(choices)) = (&message.prompt, &message.choices)
            && let Some(bodies) = interactive(to, prompt, choices)
        {
            return Ok(bodies);
        }
        Ok(split(&message.text, MAX_TEXT_CHARS).into_iter().map(|part| text(to, &part)).collect())
    }
}

fn envelope(to: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("messaging_product".into(), json!("whatsapp"));
    m.insert("recipient_type".into(), json!("individual"));
    m.insert("to".into(), json!(to));
    m
}

fn text(to: &str, body: &str) -> Value {
    let mut m = envelope(to);
    m.insert("type".into(), json!("text"));
    m.insert("text".into(), json!({ "preview_url": false, "body": body }));
    Value::Object(m)
}

fn template(to: &str, t: &MetaTemplate, body: &str) -> Value {
    let mut m = envelope(to);
    m.insert("type".into(), json!("template"));
    let parameter: String = truncate(body, MAX_INTERACTIVE_BODY);
    m.insert(
        "template".into(),
        json!({
            "name": t.name,
            "language": { "code": t.language },
            "components": [{ "type": "body", "parameters": [{ "type": "text", "text": parameter }] }],
        }),
    );
    Value::Object(m)
}

/// Pages of a list at most: a longer one is sent as the numbered text.
pub const MAX_LIST_PAGES: usize = 3;

/// Buttons or lists for `choices`, when they fit Meta's limits (else `None`: the text). A
/// list of more than [`MAX_LIST_ROWS`] rows goes as several lists, their rows keeping their
/// ids (the numbers the dialog reads), each prompt marked with its page.
fn interactive(to: &str, prompt: &str, choices: &Choices) -> Option<Vec<Value>> {
    let items = choices.items();
    if items.is_empty() || prompt.trim().is_empty() || prompt.chars().count() > MAX_INTERACTIVE_BODY - 8 {
        return None;
    }
    let message = |kind: &str, body: &str, action: Value| {
        let mut m = envelope(to);
        m.insert("type".into(), json!("interactive"));
        m.insert("interactive".into(), json!({ "type": kind, "body": { "text": body }, "action": action }));
        Value::Object(m)
    };
    if let Choices::Buttons { .. } = choices
        && items.len() <= MAX_BUTTONS
    {
        let buttons: Vec<Value> = items
            .iter()
            .map(|c| json!({ "type": "reply", "reply": { "id": c.id, "title": truncate(&c.title, MAX_BUTTON_TITLE) } }))
            .collect();
        return Some(vec![message("button", prompt, json!({ "buttons": buttons }))]);
    }
    let pages: Vec<&[Choice]> = items.chunks(MAX_LIST_ROWS).collect();
    if pages.len() > MAX_LIST_PAGES {
        return None;
    }
    let label = match choices {
        Choices::List { button, .. } => button.as_str(),
        Choices::Buttons { .. } => "Options",
    };
    let count = pages.len();
    let bodies = pages
        .into_iter()
        .enumerate()
        .map(|(i, rows)| {
            let body = if count > 1 { format!("{prompt} ({}/{count})", i + 1) } else { prompt.to_owned() };
            let rows: Vec<Value> = rows.iter().map(row).collect();
            let action =
                json!({ "button": truncate(label, MAX_LIST_BUTTON), "sections": [{ "rows": rows }] });
            message("list", &body, action)
        })
        .collect();
    Some(bodies)
}

/// A list row: a title that fits, and the rest of a long title as its description.
fn row(c: &Choice) -> Value {
    let title = truncate(&c.title, MAX_ROW_TITLE);
    let description = match &c.description {
        Some(d) => Some(d.clone()),
        None if c.title.chars().count() > MAX_ROW_TITLE => Some(c.title.clone()),
        None => None,
    };
    match description {
        Some(d) => json!({ "id": c.id, "title": title, "description": truncate(&d, MAX_ROW_DESCRIPTION) }),
        None => json!({ "id": c.id, "title": title }),
    }
}

/// `s` cut to `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out = out.trim_end().to_owned();
    out.push('…');
    out
}

/// `text` in parts of at most `max` characters, cut at a line break, else a space, when
/// there is one in the part's second half.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest: Vec<char> = text.chars().collect();
    while rest.len() > max {
        let window = &rest[..max];
        let cut = window
            .iter()
            .rposition(|c| *c == '\n')
            .filter(|i| *i >= max / 2)
            .or_else(|| window.iter().rposition(|c| c.is_whitespace()).filter(|i| *i >= max / 2))
            .map_or(max, |i| i + 1);
        parts.push(rest[..cut].iter().collect::<String>().trim_end().to_owned());
        rest = rest[cut..].to_vec();
    }
    parts.push(rest.into_iter().collect());
    parts.retain(|p| !p.trim().is_empty());
    parts
}

impl Deliver for GraphClient {
    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<Delivered, SendFailure>> {
        Box::pin(async move {
            let bodies = self
                .bodies(delivery.to.id(), &delivery.message, delivery.in_window)
                .map_err(|message| SendFailure { message, retryable: false })?;
            let mut last = None;
            for body in &bodies {
                match self.post(body).await {
                    Ok(id) => last = id.or(last),
                    Err(e) => {
                        tracing::warn!(error = %e, "sending through Meta's Graph API failed");
                        return Err(SendFailure { retryable: e.is_retryable(), message: e.to_string() });
                    }
                }
            }
            Ok(Delivered { provider_message_id: last })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> GraphClient {
        let settings = MetaSettings {
            phone_number_id: Some("1234".into()),
            access_token: Some(SecretString::from("t".to_owned())),
            ..MetaSettings::default()
        };
        GraphClient::new(&settings).unwrap().unwrap()
    }

    fn choice(i: usize, title: &str) -> Choice {
        Choice { id: i.to_string(), title: title.into(), description: None }
    }

    #[test]
    fn the_messages_url_is_the_phone_numbers() {
        assert_eq!(client().messages.as_str(), "https://graph.facebook.com/v23.0/1234/messages");
    }

    #[test]
    fn a_long_text_is_split_within_the_limit_at_line_breaks() {
        let text = format!("{}\n{}", "a".repeat(3000), "b".repeat(3000));
        let parts = split(&text, MAX_TEXT_CHARS);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT_CHARS));
        assert_eq!(parts[0], "a".repeat(3000));
    }

    #[test]
    fn a_list_keeps_to_metas_limits_and_too_many_rows_fall_back_to_text() {
        let long = "A question far longer than twenty-four characters";
        let rows: Vec<Choice> = (1..=10).map(|i| choice(i, long)).collect();
        let m = Outgoing {
            text: "Menu\n1. …".into(),
            prompt: Some("Menu".into()),
            choices: Some(Choices::List {
                button: "See the topics of the FAQ".into(),
                choices: rows.clone(),
            }),
            template: None,
        };
        let body = &client().bodies("33612345678", &m, true).unwrap()[0];
        let action = &body["interactive"]["action"];
        assert_eq!(action["sections"][0]["rows"].as_array().unwrap().len(), 10);
        assert!(action["button"].as_str().unwrap().chars().count() <= MAX_LIST_BUTTON);
        let row = &action["sections"][0]["rows"][0];
        assert!(row["title"].as_str().unwrap().chars().count() <= MAX_ROW_TITLE);
        assert_eq!(row["description"], long);
        let mut more = rows;
        more.push(choice(11, "Eleven"));
        let m = Outgoing { choices: Some(Choices::List { button: "Topics".into(), choices: more }), ..m };
        let pages = client().bodies("1", &m, true).unwrap();
        assert_eq!(pages.len(), 2, "eleven rows: two lists");
        assert_eq!(pages[1]["interactive"]["body"]["text"], "Menu (2/2)");
        assert_eq!(pages[1]["interactive"]["action"]["sections"][0]["rows"][0]["id"], "11");
        let many: Vec<Choice> = (1..=31).map(|i| choice(i, "Row")).collect();
        let m = Outgoing { choices: Some(Choices::List { button: "Topics".into(), choices: many }), ..m };
        assert_eq!(client().bodies("1", &m, true).unwrap()[0]["type"], "text", "past three pages: the text");
    }

    #[test]
    fn outside_the_window_a_template_is_sent_or_the_reason_given() {
        let mut c = client();
        let m =
            Outgoing { template: Some("notice".into()), ..Outgoing::text("REQ-2026-000001 was e-mailed") };
        let err = c.bodies("1", &m, false).unwrap_err();
        assert!(err.contains("meta.templates.notice"), "{err}");
        c.templates
            .insert("notice".into(), MetaTemplate { name: "wabot_notice".into(), language: "en".into() });
        let body = &c.bodies("1", &m, false).unwrap()[0];
        assert_eq!(body["template"]["name"], "wabot_notice");
        assert_eq!(
            body["template"]["components"][0]["parameters"][0]["text"],
            "REQ-2026-000001 was e-mailed"
        );
    }

    #[test]
    fn throughput_errors_are_retried_and_others_are_not() {
        let refused = |status, code| GraphError::Refused { status, code, message: String::new() };
        assert!(refused(400, Some(130429)).is_retryable());
        assert!(refused(400, Some(131056)).is_retryable());
        assert!(refused(429, None).is_retryable());
        assert!(refused(503, None).is_retryable());
        assert!(!refused(400, Some(131026)).is_retryable());
    }
}
