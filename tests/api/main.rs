//! End-to-end tests: the real server on a random loopback port, spoken to over HTTP; the
//! `wabot` binary itself (`cli`, and `process`: killed mid-request, then restarted).

mod admin;
mod badge;
mod browser;
mod cli;
mod console;
mod helpers;
mod hostile;
mod limits;
mod meta;
mod metrics;
mod postgres;
mod process;
#[path = "../support/python.rs"]
mod python;
mod requests;
#[path = "../support/smtp.rs"]
mod smtp;
mod unanswered;
mod webhook;
