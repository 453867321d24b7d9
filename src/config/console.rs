//! The `[console]` settings: the web console at `/console`, its sessions and its sign-in
//! throttle, and handing conversations over to a person (idle time, office hours,
//! how long transcripts are kept).

use serde::Deserialize;

/// Settings of the web console (TOML `[console]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleSettings {
    /// On, off, or (`None`) on when at least one console account exists.
    pub enabled: Option<bool>,
    /// How long a sign-in lasts, hours.
    pub session_hours: u64,
    /// Failed sign-ins allowed per account, and per client address, within the window.
    pub max_failures: u32,
    /// The throttle's window, seconds.
    pub failure_window_secs: u64,
    /// A conversation handed over to a person returns to the bot after this long without a
    /// message from the employee, minutes.
    pub handoff_idle_mins: u64,
    /// When HR colleagues answer, as the employee is told, in English.
    pub office_hours_en: String,
    /// The same in French.
    pub office_hours_fr: String,
    /// How long conversations' transcripts are kept, days.
    pub transcript_days: u64,
    /// Where a handover is e-mailed (through the outbox, with a link to the
    /// conversation); none: no e-mail.
    pub hr_email: Option<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            enabled: None,
            session_hours: 12,
            max_failures: 5,
            failure_window_secs: 15 * 60,
            handoff_idle_mins: 4 * 60,
            office_hours_en: "Monday to Friday, 9:00 to 17:00".into(),
            office_hours_fr: "du lundi au vendredi, de 9 h à 17 h".into(),
            transcript_days: 30,
            hr_email: None,
        }
    }
}

/// The `[console]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleFile {
    enabled: Option<bool>,
    session_hours: Option<u64>,
    max_failures: Option<u32>,
    failure_window_secs: Option<u64>,
    handoff_idle_mins: Option<u64>,
    office_hours_en: Option<String>,
    office_hours_fr: Option<String>,
    transcript_days: Option<u64>,
    hr_email: Option<String>,
}

impl ConsoleSettings {
    /// Applies the file's `[console]` table.
    pub fn apply_file(&mut self, f: ConsoleFile) {
        self.enabled = f.enabled.or(self.enabled);
        self.session_hours = f.session_hours.unwrap_or(self.session_hours);
        self.max_failures = f.max_failures.unwrap_or(self.max_failures);
        self.failure_window_secs = f.failure_window_secs.unwrap_or(self.failure_window_secs);
        self.handoff_idle_mins = f.handoff_idle_mins.unwrap_or(self.handoff_idle_mins);
        self.office_hours_en = f.office_hours_en.unwrap_or(std::mem::take(&mut self.office_hours_en));
        self.office_hours_fr = f.office_hours_fr.unwrap_or(std::mem::take(&mut self.office_hours_fr));
        self.transcript_days = f.transcript_days.unwrap_or(self.transcript_days);
        self.hr_email = f.hr_email.or(self.hr_email.take());
    }

    /// Applies `WABOT_CONSOLE` (`on`, `off`) and `WABOT_HR_EMAIL`.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), (&'static str, String)> {
        if let Some(v) = env("WABOT_HR_EMAIL").filter(|v| !v.trim().is_empty()) {
            self.hr_email = Some(v.trim().to_owned());
        }
        if let Some(v) = env("WABOT_CONSOLE") {
            self.enabled = Some(match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                other => return Err(("WABOT_CONSOLE", format!("expected on or off, got {other:?}"))),
            });
        }
        Ok(())
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_hours == 0 || self.session_hours > 24 * 30 {
            return Err("console.session_hours must be between 1 and 720".into());
        }
        if self.max_failures == 0 {
            return Err("console.max_failures must be at least 1".into());
        }
        if self.failure_window_secs == 0 {
            return Err("console.failure_window_secs must be at least 1".into());
        }
        if let Some(e) = &self.hr_email
            && e.parse::<lettre::Address>().is_err()
        {
            return Err(format!("console.hr_email: {e:?} is not an e-mail address"));
        }
        if self.handoff_idle_mins == 0 || self.transcript_days == 0 {
            return Err("console.handoff_idle_mins and console.transcript_days must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_follows_the_accounts_unless_told_and_the_environment_wins() {
        let mut s = ConsoleSettings::default();
        assert_eq!(s.enabled, None);
        s.apply_file(toml::from_str("enabled = false\nsession_hours = 2").unwrap());
        assert_eq!((s.enabled, s.session_hours), (Some(false), 2));
        s.apply_env(&|k| (k == "WABOT_CONSOLE").then(|| "on".to_owned())).unwrap();
        assert_eq!(s.enabled, Some(true));
        assert!(s.apply_env(&|_| Some("maybe".into())).is_err());
    }
}
