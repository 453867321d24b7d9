//! The `[requests]` settings: the request types offered, and how long a form may sit idle.

use serde::Deserialize;

use crate::domain::RequestType;

/// Settings of the request form (TOML `[requests]`, with `[[requests.types]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSettings {
    /// The request types, in menu order.
    pub types: Vec<RequestType>,
    /// A form left this long without a reply is dropped; the user is told on their next
    /// message. Seconds.
    pub idle_secs: u64,
}

impl Default for RequestSettings {
    fn default() -> Self {
        RequestSettings { types: default_types(), idle_secs: 30 * 60 }
    }
}

impl RequestSettings {
    /// Checks the types: at least one, unique ids, plausible addresses, non-empty labels.
    pub fn validate(&self) -> Result<(), String> {
        if self.types.is_empty() {
            return Err("requests.types: at least one request type is needed".into());
        }
        for (i, t) in self.types.iter().enumerate() {
            if t.id.trim().is_empty() || t.label_en.trim().is_empty() || t.label_fr.trim().is_empty() {
                return Err(format!("requests.types[{i}]: id, label_en and label_fr must not be empty"));
            }
            if t.email.parse::<lettre::Address>().is_err() {
                return Err(format!(
                    "requests.types[{i}] ({}): {:?} is not an e-mail address",
                    t.id, t.email
                ));
            }
            if self.types[..i].iter().any(|o| o.id == t.id) {
                return Err(format!("requests.types: id {:?} appears twice", t.id));
            }
        }
        Ok(())
    }
}

/// The `[requests]` table of the configuration file; `types` replaces the default list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsFile {
    types: Option<Vec<RequestType>>,
    idle_secs: Option<u64>,
}

impl RequestSettings {
    /// Applies the file's `[requests]` table.
    pub fn apply_file(&mut self, f: RequestsFile) {
        if let Some(types) = f.types {
            self.types = types;
        }
        self.idle_secs = f.idle_secs.unwrap_or(self.idle_secs);
    }

    /// Applies `WABOT_REQUEST_IDLE_SECS`.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), (&'static str, String)> {
        if let Some(v) = env("WABOT_REQUEST_IDLE_SECS") {
            self.idle_secs = v.trim().parse().map_err(|e| ("WABOT_REQUEST_IDLE_SECS", format!("{e}")))?;
        }
        Ok(())
    }
}

/// The shipped request types, routed to example addresses: replace them in the
/// configuration file.
pub fn default_types() -> Vec<RequestType> {
    let t = |id: &str, en: &str, fr: &str, email: &str| RequestType {
        id: id.into(),
        label_en: en.into(),
        label_fr: fr.into(),
        email: email.into(),
    };
    vec![
        t("work-certificate", "Work certificate", "Attestation de travail", "hr@example.com"),
        t("salary-certificate", "Salary certificate", "Attestation de salaire", "payroll@example.com"),
        t("payslip-copy", "Copy of a payslip", "Duplicata de fiche de paie", "payroll@example.com"),
        t("leave-request", "Leave request", "Demande de congés", "leave@example.com"),
        t("address-change", "Change of address", "Changement d'adresse", "hr@example.com"),
        t(
            "bank-details",
            "Change of bank details",
            "Changement de coordonnées bancaires",
            "payroll@example.com",
        ),
        t("expense-claim", "Expense claim follow-up", "Suivi de note de frais", "finance@example.com"),
        t("badge-replacement", "Badge replacement", "Remplacement de badge", "security@example.com"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Lang;

    #[test]
    fn types_mail_and_the_database_come_from_the_file_and_the_environment() {
        use super::super::Settings;
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wabot.toml");
        std::fs::write(
            &path,
            r#"
db = "state/wabot.db"
[mail]
smtp_url = "smtp://bot@mail.example.com:587?tls=required"
from = "HR bot <bot@example.com>"
retry_initial_ms = 250
[requests]
idle_secs = 60
[[requests.types]]
id = "visa-letter"
label_en = "Visa invitation letter"
label_fr = "Lettre d'invitation pour visa"
email = "mobility@example.com"
"#,
        )
        .unwrap();
        let env = |k: &str| match k {
            "WABOT_SMTP_PASSWORD" => Some("s3cret-pw".to_owned()),
            "WABOT_MAIL_REPLY_TO" => Some("hr@example.com".to_owned()),
            "WABOT_REQUEST_IDLE_SECS" => Some("120".to_owned()),
            _ => None,
        };
        let s = Settings::load_with(Some(&path), env).unwrap();
        assert_eq!(s.db, dir.path().join("state/wabot.db"));
        assert_eq!(s.requests.types.len(), 1);
        assert_eq!(s.requests.types[0].label(Lang::Fr), "Lettre d'invitation pour visa");
        assert_eq!(s.requests.idle_secs, 120);
        assert_eq!(s.mail.retry_initial_ms, 250);
        assert_eq!(s.mail.reply_to.as_deref(), Some("hr@example.com"));
        assert_eq!(s.mail.smtp_password.as_ref().unwrap().expose_secret(), "s3cret-pw");
        assert_eq!(s.mail.smtp_host().as_deref(), Some("mail.example.com:587"));
        assert!(!format!("{s:?}").contains("s3cret-pw"));

        let defaults = Settings::load_with(None, |_| None).unwrap();
        assert_eq!(defaults.db, std::path::PathBuf::from("data/wabot.db"));
        assert!(defaults.mail.smtp_url.is_none(), "mail off by default");
        assert_eq!(defaults.requests, RequestSettings::default());

        std::fs::write(&path, "[mail]\nsmtp_password = \"pw-in-file\"\n").unwrap();
        let err = Settings::load_with(Some(&path), |_| None).unwrap_err().to_string();
        assert!(err.contains("set it in the environment") && !err.contains("pw-in-file"), "{err}");
        std::fs::write(&path, "[[requests.types]]\nid = \"x\"\nlabel_en = \"X\"\nlabel_fr = \"X\"\nemail = \"not an address\"\n").unwrap();
        let err = Settings::load_with(Some(&path), |_| None).unwrap_err().to_string();
        assert!(err.contains("is not an e-mail address"), "{err}");
    }

    #[test]
    fn the_default_types_are_valid() {
        RequestSettings::default().validate().unwrap();
        let mut s = RequestSettings::default();
        s.types[1].id = s.types[0].id.clone();
        assert!(s.validate().unwrap_err().contains("twice"));
        s.types.clear();
        assert!(s.validate().is_err());
    }
}
