//! wabot — a self-hosted WhatsApp assistant for an organisation's employee helpdesk.
//!
//! Employees message the organisation's WhatsApp number through Twilio; wabot answers from a
//! bilingual (English/French) FAQ. The crate is a library with a thin binary (`src/main.rs`).
//!
//! # Map
//!
//! | module | owns |
//! |---|---|
//! | [`engine`] | Matching: TF-IDF + cosine (tokenizer, stop words, stemming, lexicon expansion, index, scoring), two sentence encoders and their dense index ([`engine::semantic`]), fused into one confidence ([`engine::hybrid`]). Pure: no I/O, no async. |
//! | [`vector_cache`] | The semantic scorer's entry vectors cached on disk, keyed by model and text: a restart embeds only what changed. |
//! | [`semantic_models`] | Where the sentence encoder's file is and what it must be: read, SHA-256 checked, handed to [`engine::semantic`] as bytes. |
//! | [`corpus`] | The knowledge base on disk: the hand-edited TOML format, FAQ JSONL, the embedded default corpus and lexicon, the journal of live changes. |
//! | [`faq`] | The live FAQ: changes journaled then served, reloads of the corpus from disk; the engine and dialog in use. |
//! | [`dialog`] | What the bot says: greetings, menu, FAQ answers, fallback, in the user's language. Transport-agnostic. |
//! | [`directory`] | The employee directory (CSV): who an employee ID belongs to. |
//! | [`store`] | Per-user conversation state behind the [`store::SessionStore`] trait; the durable [`store::Ledger`] (sessions, requests, outbox, processed MessageSids) on SQLite. |
//! | [`requests`] | Administrative requests: configured types, the guided form, the [`requests::Desk`] committing each turn before replying. |
//! | [`mail`] | The e-mail outbox worker (lettre, SMTP): composes a request's message and delivers it with retries. |
//! | [`ocr`] | Badge OCR: PP-OCRv6 detection + recognition on `rten`, the employee ID in the text, a bounded worker pool. Behind the [`ocr::BadgeReader`] trait. |
//! | [`media`] | Downloading a user's photo safely: credentials only to Twilio's media paths, redirects without them, size, type and dimension checks. |
//! | [`twilio_rest`] | Sending a message through Twilio's REST API, with retries: replies that come after the webhook. |
//! | [`badge`] | A badge photo from webhook to reply: download → OCR pool → directory → session → REST reply. |
//! | [`synthetic`] | Deterministic synthetic FAQ corpora and queries of any size, for benches and load tests. Pure. |
//! | [`channel`] | Twilio's WhatsApp webhook format: form parsing, `X-Twilio-Signature`, TwiML replies. |
//! | [`server`] | The axum HTTP server: `POST /bot`, `GET /healthz`, limits, startup. |
//! | [`limits`] | Tower layers on every route (timeout, concurrency limit shedding with 503 + `Retry-After`) and the per-sender rate limit. |
//! | [`metrics`] | Prometheus `GET /metrics`: a registry per server; messages by outcome, latencies, scores, OCR, outbox, e-mail failures. |
//! | [`telemetry`] | Logging (human or JSON) and masking of phone numbers. |
//! | [`unanswered`] | Declined questions grouped by their folded words and counted in the store; `GET /admin/unanswered`. |
//! | [`admin`] | The admin HTTP API (`/admin/faq`): the live FAQ read and changed, behind a bearer token. |
//! | [`config`] | Typed settings: TOML file plus environment overrides; secrets only from the environment. |
//! | [`chat`] | `wabot chat`: the same dialog in a terminal. |
//! | [`eval`] | `wabot eval`: accuracy of the engine on a labelled query set, with a threshold sweep. |
//!
//! A message's path: [`server`] receives the webhook → [`channel`] parses the form and checks the
//! signature → [`dialog`] loads the sender's state from [`store`], asks [`engine`] for the best
//! FAQ entry and words the reply → [`channel`] renders TwiML → [`server`] answers.
//! On the webhook, [`requests::Desk`] wraps the dialog: a MessageSid already handled gets
//! its stored reply; otherwise the turn (session, a confirmed request with its ticket, its
//! outbox row) is committed to the [`store::Ledger`] before the reply leaves, and the
//! [`mail`] worker e-mails queued requests in the background.
//! A badge photo: [`server`] hands it to [`badge`], which answers at once; in the background
//! [`media`] downloads it, [`ocr`] reads it on a worker, [`directory`] names the employee,
//! [`store`] remembers them and [`twilio_rest`] sends the result.
//! An admin change: [`admin`] checks the bearer token → [`faq`] writes it to the
//! [`corpus::journal`], then to the [`engine`], which the next message sees.
//!
//! ```
//! let kb = wabot::corpus::KnowledgeBase::embedded().unwrap();
//! let engine = wabot::engine::Engine::build(kb.entries(), kb.lexicon());
//! let best = engine.best("how do I get my payslip?").unwrap();
//! assert!(best.entry.id.starts_with("payslip"));
//! ```
#![warn(missing_docs)]

pub mod badge;
pub mod channel;
pub mod chat;
pub mod cli;
pub mod config;
pub mod corpus;
pub mod desk;
pub mod dialog;
pub mod directory;
pub mod domain;
pub mod engine;
pub mod eval;
pub mod faq;
pub mod mail;
pub mod ocr;
pub mod semantic_models;
pub mod server;
pub mod store;
pub mod synthetic;
pub mod telemetry;
pub mod vector_cache;
