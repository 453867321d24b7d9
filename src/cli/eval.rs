//! `wabot eval`: matching quality on a labelled query set, or on the FAQ's own questions
//! held out in turn, written as a report or as JSON.

use std::io::Write;
use std::path::Path;

use super::{CliError, print_report};
use crate::engine::{Engine, EngineParams};
use crate::eval;

/// Evaluates `engine` on the labelled `queries`, or on its own questions without them;
/// `semantic_only` ranks with the sentence encoders alone (an ablation).
pub fn run(
    engine: &Engine,
    queries: Option<&Path>,
    semantic_only: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    if semantic_only && !engine.is_semantic() {
        return Err(CliError::NoSemantic);
    }
    let params = EngineParams { lexical_evidence: !semantic_only, ..engine.params() };
    match queries {
        Some(queries) => {
            let set = eval::load_queries(queries, engine)?;
            print_report(&eval::evaluate_with(engine, &set, &params), json, out)
        }
        None => print_report(&eval::self_check::self_evaluate(engine), json, out),
    }
}
