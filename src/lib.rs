//! wabot — a self-hosted WhatsApp assistant for an organisation's employee helpdesk.
//!
//! Employees message the organisation's WhatsApp number through Twilio; wabot answers from a
//! bilingual (English/French) FAQ, reads badge photos and files administrative requests by
//! e-mail. The crate is a library with a thin binary (`src/main.rs`).
//!
//! # Map, by layer
//!
//! Every dependency points down this table; `tests/architecture.rs` fails on a cycle or a
//! broken rule (see `ARCHITECTURE.md`).
//!
//! | layer | module | owns |
//! |---|---|---|
//! | pure cores | [`engine`] | Matching: TF-IDF + cosine (tokenizer, stop words, stemming, lexicon expansion, index, scoring), two sentence encoders and their dense index ([`engine::semantic`]), fused into one confidence ([`engine::hybrid`]); with the `synthetic` feature (benches, tests), seeded synthetic corpora. No I/O, no async. |
//! | | [`ocr`] | Badge OCR: PP-OCRv6 detection + recognition on `rten`, the employee ID in the text, a bounded worker pool, behind the [`ocr::BadgeReader`] trait. |
//! | shared nouns | [`domain`] | Plain data every layer shares: a user's [`domain::Address`] (channel + id) and a [`domain::MessageId`], the session, the employee, requests and their records, the unanswered row, safe user text, one bilingual sentence type, the [`domain::Clock`]. |
//! | leaves | [`config`] | Typed settings: TOML file plus environment overrides, one file per feature's settings (a channel's in its own, [`config::twilio`], [`config::meta`]); secrets only from the environment. |
//! | | [`telemetry`] | Logging (human or JSON), masking of phone numbers, the metrics registry ([`telemetry::metrics`]), progress of long work ([`telemetry::progress`]: an indicatif bar on a terminal, log lines otherwise). |
//! | | [`web`] | What every route shares, the server's and the channels' webhooks: [`web::HttpError`], one JSON error shape logged once, and the content-type check. |
//! | knowledge | [`knowledge::corpus`] | The knowledge base on disk: TOML, FAQ JSONL, the embedded corpus and lexicon, the journal of live changes. |
//! | | [`knowledge::faq`] | The live FAQ: changes journaled then served, reloads of the corpus; its engine and live knowledge base, which the dialog reads. |
//! | | [`knowledge::semantic_models`], [`knowledge::vector_cache`] | The sentence encoders' files (SHA-256 checked) and their vectors cached on disk. |
//! | | [`knowledge::directory`] | The employee directory (CSV). |
//! | | [`eval`] | Accuracy of the engine on a labelled query set, or on the FAQ's own questions. |
//! | conversation | [`dialog`] | What the bot says, in both languages: commands, menu, FAQ answers, the request form ([`dialog::form`]). A pure state machine over a session: no store, no transport. |
//! | data | [`store`] | The durable store as async role traits ([`store::roles`]: sessions as opaque values with a version, turns deduplicated by message id, the outbox, photo jobs, reports, maintenance), keyed by address and channel, on SQLite and in memory, both held to one conformance suite. |
//! | use cases | [`desk`] | The webhook's turn (per-sender limits, session, dialog, one commit with dedup, reply), the outbound queue's sender ([`desk::outbound`]: claim with a lease, deliver, retry or drop) and badge reading ([`desk::badge`]: download → OCR pool → directory → session → queued reply), behind ports the channels implement. |
//! | e-mail | [`mail`] | The outbox worker (lettre, SMTP): composes a request's message and delivers it with retries. |
//! | channels | [`channel`] | One folder per provider: [`channel::twilio`] (the webhook, its form, signature and TwiML, its spelling of addresses, the REST sender, the media download) and [`channel::meta`] (Meta's Cloud API: the webhook's verification, signature and JSON, the Graph API sender with buttons, lists and templates, the media lookup). |
//! | HTTP | [`server`] | The axum server: the router, `GET /healthz`, `GET /metrics`, the admin API ([`server::admin`]), the limits' layers, the accept loop. |
//! | composition | [`startup`] | [`startup::Application`]: everything wired from the settings, bound, run until stopped. |
//! | | [`cli`] | What each `wabot` subcommand does and prints. |
//!
//! A text message: [`channel::twilio::webhook`] receives it, parses the form, checks the
//! signature and reads `whatsapp:+…` as a Twilio [`domain::Address`] → [`desk`] applies the
//! sender's limits, loads the session from [`store`], runs the [`dialog`] (which asks the
//! [`engine`]) and commits the turn with its message id before the reply →
//! [`channel::twilio`] renders TwiML.
//! A request e-mail: the [`dialog::form`] produces a confirmed request; the [`desk`] commits
//! it with its ticket and outbox row; the [`mail`] worker e-mails it from the outbox.
//! A badge photo: [`channel::twilio::webhook`] hands it to [`desk::badge`], which answers at
//! once; in the background [`channel::twilio::media`] downloads it, [`ocr`] reads it on a
//! worker, [`knowledge::directory`] names the employee, [`store`] remembers them and
//! [`channel::twilio::rest`] sends the result.
//! An admin change: [`server::admin`] checks the bearer token → [`knowledge::faq`] writes it
//! to the [`knowledge::corpus::journal`], then to the [`engine`], which the next message sees.
//! The HR team's web console: [`console`] (mounted by [`server`] at `/console`) signs an
//! account in against the store's [`store::Accounts`] and serves its pages over the dialog,
//! the live FAQ and the store's reports; `wabot users` ([`cli::users`]) manages the accounts.
//!
//! ```
//! let kb = wabot::knowledge::corpus::KnowledgeBase::embedded().unwrap();
//! let engine = wabot::engine::Engine::build(kb.entries(), kb.lexicon());
//! let best = engine.best("how do I get my payslip?").unwrap();
//! assert!(best.entry.id.starts_with("payslip"));
//! ```
#![warn(missing_docs)]

pub mod channel;
pub mod cli;
pub mod config;
pub mod console;
pub mod desk;
pub mod dialog;
pub mod domain;
pub mod engine;
pub mod eval;
pub mod knowledge;
pub mod mail;
pub mod ocr;
pub mod server;
pub mod startup;
pub mod store;
/// [`engine::synthetic`], where the benches have always found it.
#[cfg(feature = "synthetic")]
pub use engine::synthetic;
pub mod telemetry;
pub mod web;
