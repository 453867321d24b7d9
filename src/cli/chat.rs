//! `wabot chat`: the same dialog as the webhook, in a terminal, with no network.
//!
//! [`start`] runs each line through the same turn as the webhook (the durable store, the
//! request form, the e-mail outbox); [`run`] only handles the terminal.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use super::CliError;
use crate::config::Settings;
use crate::dialog::{Dialog, Incoming};
use crate::domain::{Address, Channel};
use crate::engine::Engine;
use crate::knowledge::corpus::KnowledgeBase;

/// The user id a terminal conversation runs under, as a Twilio user: `wabot chat` rehearses
/// the webhook's turns.
pub const CHAT_USER: &str = "terminal";

/// Converses over `input`/`output` until end of input or `/quit`, handing each line to
/// `respond`; `entries` is the FAQ's size, for the banner.
pub fn run<E: std::fmt::Display>(
    entries: usize,
    mut respond: impl FnMut(Incoming) -> Result<Vec<String>, E>,
    input: impl BufRead,
    mut output: impl Write,
) -> io::Result<()> {
    writeln!(
        output,
        "wabot chat — {entries} FAQ entries. Type a question (or hi, menu, aide, request, demande); \
         /quit or Ctrl-D to leave."
    )?;
    write!(output, "> ")?;
    output.flush()?;
    let user = Address::parse(Channel::Twilio, CHAT_USER).map_err(io::Error::other)?;
    for line in input.lines() {
        let line = line?;
        if matches!(line.trim(), "/quit" | "/exit") {
            break;
        }
        let incoming = Incoming { user: user.clone(), text: line, profile_name: None };
        match respond(incoming) {
            Ok(messages) => {
                for m in messages {
                    writeln!(output, "{m}\n")?;
                }
            }
            Err(e) => writeln!(output, "(error: {e})")?,
        }
        write!(output, "> ")?;
        output.flush()?;
    }
    writeln!(output)?;
    Ok(())
}

/// `wabot chat`: the terminal conversation over `engine`, through the same turns as the
/// webhook — requests filed here are stored in `settings.db` and e-mailed like any other.
pub fn start(settings: &Settings, kb: Arc<KnowledgeBase>, engine: Arc<Engine>) -> Result<(), CliError> {
    let dialog = Arc::new(Dialog::new(kb, Arc::clone(&engine)));
    if let Some(dir) = settings.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| CliError::Create { path: dir.to_owned(), source })?;
    }
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    let (desk, outbox) = runtime.block_on(crate::server::open_desk(settings, dialog))?;
    if let Some(outbox) = outbox {
        runtime.spawn(outbox.run());
    }
    let respond = |msg| runtime.block_on(desk.handle(msg, None)).map(|h| h.messages);
    run(engine.len(), respond, io::stdin().lock(), io::stdout().lock())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::Dialog;
    use crate::domain::Session;
    use crate::engine::Engine;
    use crate::knowledge::corpus::KnowledgeBase;
    use std::sync::Arc;

    #[test]
    fn a_terminal_conversation_uses_the_dialog() {
        let kb = Arc::new(KnowledgeBase::embedded().unwrap());
        let engine = Arc::new(Engine::build(kb.entries(), kb.lexicon()));
        let dialog = Dialog::new(kb, engine);
        let mut out = Vec::new();
        let mut session = Session::default();
        let respond = |msg: Incoming| {
            let reply = dialog.respond(&mut session, &msg);
            session.lang = Some(reply.lang);
            Ok::<_, std::convert::Infallible>(reply.messages)
        };
        run(dialog.engine().len(), respond, "bonjour\nmenu\n/quit\nhi\n".as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("Bonjour ! Je suis"), "{out}");
        assert!(out.contains("\n1. "), "{out}");
        assert!(!out.contains("Hello!"), "stopped at /quit: {out}");
    }
}
