//! Logging: human-readable lines by default, one JSON object per line by option, and the
//! masking of phone numbers so that logs at info level never hold a full one.
//!
//! Each webhook message runs in a `message` span carrying its MessageSid and the masked
//! sender (see [`crate::server`]); what the user typed is never logged.

pub mod metrics;
pub mod progress;

use std::str::FromStr;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `tracing`'s human-readable lines.
    #[default]
    Human,
    /// One JSON object per line, for a log collector.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "human" | "text" | "pretty" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format must be `human` or `json`, got {other:?}")),
        }
    }
}

/// Installs the global subscriber writing to stderr; the filter comes from `WABOT_LOG`
/// (`info` by default). Call once, from the binary.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WABOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).init(),
    }
}

/// `whatsapp:+33612345678` → `whatsapp:+33•••••••78`: the channel, the country code's first
/// digits and the last two digits, enough to tell senders apart in a log, not to call them.
pub fn mask_sender(sender: &str) -> String {
    let (prefix, number) = match sender.rfind(':') {
        Some(i) => sender.split_at(i + 1),
        None => ("", sender),
    };
    let (plus, digits) = match number.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", number),
    };
    let chars: Vec<char> = digits.chars().collect();
    if chars.len() < 6 {
        return format!("{prefix}{plus}{}", "•".repeat(chars.len()));
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{prefix}{plus}{head}{}{tail}", "•".repeat(chars.len() - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_is_masked_but_stays_distinguishable() {
        assert_eq!(mask_sender("whatsapp:+33612345678"), "whatsapp:+33•••••••78");
        assert_eq!(mask_sender("+14155238886"), "+14•••••••86");
        assert_eq!(mask_sender("whatsapp:+123"), "whatsapp:+•••", "too short to show any digit");
        assert!(!mask_sender("whatsapp:+33612345678").contains("612345"));
    }

    #[test]
    fn the_log_format_parses_from_its_names() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("human".parse::<LogFormat>(), Ok(LogFormat::Human));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
