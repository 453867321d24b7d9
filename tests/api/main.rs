//! End-to-end tests: the real server on a random loopback port, spoken to over HTTP.

mod admin;
mod badge;
mod helpers;
mod hostile;
mod limits;
mod metrics;
#[path = "../support/python.rs"]
mod python;
mod requests;
#[path = "../support/smtp.rs"]
mod smtp;
mod unanswered;
mod webhook;
