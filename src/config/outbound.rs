//! The `[outbound]` settings: how the sender worker drains the outbound queue — how many
//! messages at once, how long a claim holds, how retries back off and when to give up.

use serde::Deserialize;

/// The sender worker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSettings {
    /// Messages attempted at once (`max_concurrent`, `WABOT_OUTBOUND_MAX_CONCURRENT`).
    pub max_concurrent: usize,
    /// How long a claimed message is held before another worker may take it
    /// (`lease_ms`, `WABOT_OUTBOUND_LEASE_MS`): longer than one attempt can take.
    pub lease_ms: u64,
    /// The first retry's delay (`retry_initial_ms`, `WABOT_OUTBOUND_RETRY_INITIAL_MS`),
    /// doubled at each failure up to `retry_max_ms` (`WABOT_OUTBOUND_RETRY_MAX_MS`).
    pub retry_initial_ms: u64,
    /// The longest delay between two attempts.
    pub retry_max_ms: u64,
    /// Attempts before a message failing again and again is dropped (`max_attempts`,
    /// `WABOT_OUTBOUND_MAX_ATTEMPTS`).
    pub max_attempts: u32,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        OutboundSettings {
            max_concurrent: 8,
            lease_ms: 60_000,
            retry_initial_ms: 2_000,
            retry_max_ms: 600_000,
            max_attempts: 30,
        }
    }
}

/// The `[outbound]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundFile {
    max_concurrent: Option<usize>,
    lease_ms: Option<u64>,
    retry_initial_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    max_attempts: Option<u32>,
}

impl OutboundSettings {
    /// Applies the file's `[outbound]` table.
    pub fn apply_file(&mut self, f: OutboundFile) {
        self.max_concurrent = f.max_concurrent.unwrap_or(self.max_concurrent);
        self.lease_ms = f.lease_ms.unwrap_or(self.lease_ms);
        self.retry_initial_ms = f.retry_initial_ms.unwrap_or(self.retry_initial_ms);
        self.retry_max_ms = f.retry_max_ms.unwrap_or(self.retry_max_ms);
        self.max_attempts = f.max_attempts.unwrap_or(self.max_attempts);
    }

    /// Applies the `WABOT_OUTBOUND_*` variables.
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
        parse(env, "WABOT_OUTBOUND_MAX_CONCURRENT", &mut self.max_concurrent)?;
        parse(env, "WABOT_OUTBOUND_LEASE_MS", &mut self.lease_ms)?;
        parse(env, "WABOT_OUTBOUND_RETRY_INITIAL_MS", &mut self.retry_initial_ms)?;
        parse(env, "WABOT_OUTBOUND_RETRY_MAX_MS", &mut self.retry_max_ms)?;
        parse(env, "WABOT_OUTBOUND_MAX_ATTEMPTS", &mut self.max_attempts)?;
        Ok(())
    }

    /// Checks values that each parse but may still be wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrent == 0 || self.max_attempts == 0 {
            return Err("outbound.max_concurrent and outbound.max_attempts must be at least 1".into());
        }
        if self.lease_ms < 1000 {
            return Err("outbound.lease_ms must be at least 1000".into());
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err("outbound.retry_initial_ms must be positive and at most retry_max_ms".into());
        }
        Ok(())
    }
}
