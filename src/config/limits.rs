//! The `[limits]` settings: request timeout, load shedding, the per-sender rate limit and the
//! connection bounds. The layers that enforce them are in [`crate::limits`].

/// The limits' settings (see the configuration table in [`crate::config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSettings {
    /// The longest a request may take, body upload included, in milliseconds.
    pub request_timeout_ms: u64,
    /// Requests handled at once; more are shed with 503.
    pub max_in_flight: usize,
    /// Messages a sender may send per minute, sustained; 0 turns the rate limit off.
    pub sender_per_minute: u32,
    /// Messages a sender may send in a burst above the sustained rate.
    pub sender_burst: u32,
    /// The longest a client may take to send a request's headers, and the longest a
    /// keep-alive connection may sit idle waiting for the next request, in milliseconds
    /// (one timer: hyper's header read timeout, which starts when a request is awaited).
    pub header_read_timeout_ms: u64,
    /// Connections open at once; more wait to be accepted. 0: the open-file limit less
    /// [`RESERVED_FDS`].
    pub max_connections: usize,
}

/// File descriptors kept for everything but client connections (the database, SMTP, media
/// downloads, the corpus) when the connection cap is sized from the open-file limit.
pub const RESERVED_FDS: usize = 256;

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            request_timeout_ms: 10_000,
            max_in_flight: 1024,
            sender_per_minute: 30,
            sender_burst: 10,
            header_read_timeout_ms: 10_000,
            max_connections: 0,
        }
    }
}

/// The `[limits]` table of the configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    request_timeout_ms: Option<u64>,
    max_in_flight: Option<usize>,
    sender_per_minute: Option<u32>,
    sender_burst: Option<u32>,
    header_read_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
}

impl LimitSettings {
    /// Applies the file's `[limits]` table.
    pub fn apply_file(&mut self, f: LimitsFile) {
        self.request_timeout_ms = f.request_timeout_ms.unwrap_or(self.request_timeout_ms);
        self.max_in_flight = f.max_in_flight.unwrap_or(self.max_in_flight);
        self.sender_per_minute = f.sender_per_minute.unwrap_or(self.sender_per_minute);
        self.sender_burst = f.sender_burst.unwrap_or(self.sender_burst);
        self.header_read_timeout_ms = f.header_read_timeout_ms.unwrap_or(self.header_read_timeout_ms);
        self.max_connections = f.max_connections.unwrap_or(self.max_connections);
    }

    /// Applies `WABOT_REQUEST_TIMEOUT_MS`, `WABOT_MAX_IN_FLIGHT`, `WABOT_SENDER_PER_MINUTE`,
    /// `WABOT_SENDER_BURST`, `WABOT_HEADER_READ_TIMEOUT_MS`, `WABOT_MAX_CONNECTIONS`; an
    /// error names the variable.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), (&'static str, String)> {
        fn parse<T: std::str::FromStr>(
            env: &dyn Fn(&str) -> Option<String>,
            name: &'static str,
            into: &mut T,
        ) -> Result<(), (&'static str, String)>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(v) = env(name) {
                *into = v.trim().parse().map_err(|e: T::Err| (name, e.to_string()))?;
            }
            Ok(())
        }
        parse(env, "WABOT_REQUEST_TIMEOUT_MS", &mut self.request_timeout_ms)?;
        parse(env, "WABOT_MAX_IN_FLIGHT", &mut self.max_in_flight)?;
        parse(env, "WABOT_SENDER_PER_MINUTE", &mut self.sender_per_minute)?;
        parse(env, "WABOT_SENDER_BURST", &mut self.sender_burst)?;
        parse(env, "WABOT_HEADER_READ_TIMEOUT_MS", &mut self.header_read_timeout_ms)?;
        parse(env, "WABOT_MAX_CONNECTIONS", &mut self.max_connections)?;
        Ok(())
    }

    /// Checks values that each parse but may still be wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_timeout_ms == 0 {
            return Err("limits.request_timeout_ms must be at least 1".into());
        }
        if self.max_in_flight == 0 {
            return Err("limits.max_in_flight must be at least 1".into());
        }
        if self.sender_per_minute > 0 && self.sender_burst == 0 {
            return Err("limits.sender_burst must be at least 1 when the rate limit is on".into());
        }
        if self.header_read_timeout_ms == 0 {
            return Err("limits.header_read_timeout_ms must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_override_and_name_themselves_when_wrong() {
        let mut s = LimitSettings::default();
        s.apply_env(&|k| (k == "WABOT_SENDER_PER_MINUTE").then(|| "5".to_owned())).unwrap();
        assert_eq!(s.sender_per_minute, 5);
        let err = s.apply_env(&|k| (k == "WABOT_MAX_IN_FLIGHT").then(|| "many".to_owned())).unwrap_err();
        assert_eq!(err.0, "WABOT_MAX_IN_FLIGHT");
    }
}
