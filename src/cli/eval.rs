//! `wabot eval`: matching quality on a labelled query set, or on the FAQ's own questions
//! held out in turn, written as a report or as JSON.

use std::io::Write;
use std::path::Path;

use super::{CliError, print_report};
use crate::engine::Engine;
use crate::eval;

/// Evaluates `engine` on the labelled `queries`, or on its own questions without them.
pub fn run(
    engine: &Engine,
    queries: Option<&Path>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match queries {
        Some(queries) => {
            let set = eval::load_queries(queries, engine)?;
            print_report(&eval::evaluate(engine, &set), json, out)
        }
        None => print_report(&eval::self_check::self_evaluate(engine), json, out),
    }
}
