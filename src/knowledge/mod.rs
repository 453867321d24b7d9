//! What the bot knows, on disk and live: the corpus formats and the journal of admin changes
//! ([`corpus`]), the live FAQ built from them ([`faq`]), the sentence encoders' files and
//! their vectors cached on disk ([`semantic_models`], [`vector_cache`]), and the employee
//! directory ([`directory`]).
//!
//! Must not: converse, run a use case, speak to a channel or HTTP. The dialog reads what is
//! here (the engine, the live knowledge base); nothing here reads the dialog.

pub mod corpus;
pub mod directory;
pub mod faq;
pub mod semantic_models;
pub mod vector_cache;
