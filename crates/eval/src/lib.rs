//! `confidant eval`'s case sets: versioned, scripted chats run through the chat engine exactly
//! as the demo runs a chat (card import, prompt assembly, memories, sampling defaults), scored
//! into a table per set. The native command (crates/cli) and the browser bindings (crates/web,
//! `engine.debug.evaluate` in the npm package) both run them through [`run_case_set`], so a case
//! set gives the same table wherever it runs.
//!
//! A case set is one JSON file (`eval/cases/NAME-vVERSION.json`) with a header every set
//! shares:
//!
//! ```json
//! { "set": "echo", "version": 1, "kind": "echo", "description": "…", … }
//! ```
//!
//! `kind` picks the runner ([`echo`], [`memory_sets`], [`persona_sets`]); the rest of the file
//! is the runner's. A set's cases never change under the same version: a changed set is a new
//! version, so numbers in EVAL.md stay comparable.

pub mod echo;
pub mod memory_sets;
pub mod persona_sets;
mod runner;

pub use runner::ChatRunner;

use memory::TextEmbedder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a case set's run can fail with; each kind has the code the JS bindings use for it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A case set (or a file it names) cannot be read or makes no sense.
    #[error("eval: {0}")]
    Case(String),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Memory(#[from] memory::MemoryError),
    #[error(transparent)]
    Llm(#[from] llm::LlmError),
    /// Logits could not be read back from the device.
    #[error("{0}")]
    Device(String),
}

impl EvalError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Case(_) => "bad_request",
            Self::Engine(e) => e.code(),
            Self::Memory(e) => e.code(),
            Self::Llm(e) => e.code(),
            Self::Device(_) => "device_lost",
        }
    }
}

pub type Result<T> = std::result::Result<T, EvalError>;

/// An error in a case set or its run.
pub(crate) fn bad(what: impl std::fmt::Display) -> EvalError {
    EvalError::Case(what.to_string())
}

/// How much of a set to run: a quick look rather than the table of record.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct Limits {
    /// Only the first this many chats of the set.
    pub chats: Option<usize>,
    /// Only the first this many user turns of each chat (a memory set's questions are still
    /// asked).
    pub turns: Option<usize>,
}

impl Limits {
    /// Whether the whole set runs (only such a run is a table of record).
    pub fn is_none(&self) -> bool {
        self.chats.is_none() && self.turns.is_none()
    }

    pub(crate) fn chats<'a, T>(&self, chats: &'a [T]) -> &'a [T] {
        &chats[..self.chats.unwrap_or(usize::MAX).min(chats.len())]
    }

    pub(crate) fn turns<'a, T>(&self, turns: &'a [T]) -> &'a [T] {
        &turns[..self.turns.unwrap_or(usize::MAX).min(turns.len())]
    }
}

/// What every case-set file starts with.
#[derive(Deserialize)]
struct SetHeader {
    set: String,
    version: u32,
    kind: String,
}

/// One table of results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The set and its version, "persona-v1".
    pub set: String,
    pub description: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Said under the table: settings and thresholds (the first ends with how long it took).
    pub notes: Vec<String>,
    /// How long the set took.
    pub seconds: f64,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("| {} |\n", self.columns.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(self.columns.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }
}

/// Run one case set (the JSON text of its file) through `runner`. `read_file` gives the text of
/// a file the set names, by its path relative to the set's file (the echo set's cards). Every
/// scored reply goes to `transcript`.
pub async fn run_case_set<E: TextEmbedder>(
    runner: &mut ChatRunner<'_, E>,
    set_json: &str,
    read_file: &dyn Fn(&str) -> Result<String>,
    limits: Limits,
    transcript: &mut Vec<Value>,
) -> Result<Report> {
    let value: Value = serde_json::from_str(set_json).map_err(|e| bad(format!("case set: {e}")))?;
    let header: SetHeader = serde_json::from_value(value.clone()).map_err(|e| bad(format!("case set: {e}")))?;
    let started = web_time::Instant::now();
    let mut report = match header.kind.as_str() {
        "echo" => echo::run_set(runner, &value, read_file, limits, transcript).await?,
        "memory" => memory_sets::run_set(runner, &value, limits, transcript).await?,
        "persona" => persona_sets::run_set(runner, &value, limits, transcript).await?,
        other => return Err(bad(format!("unknown case-set kind {other:?}"))),
    };
    report.set = format!("{}-v{}", header.set, header.version);
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(first) = report.notes.first_mut() {
        let end = first.trim_end().len();
        first.insert_str(end, &format!(" Took {:.0} s.", report.seconds));
    }
    Ok(report)
}

/// `n` of `of` as a rate with two decimals ("–" of nothing).
pub(crate) fn rate(n: usize, of: usize) -> String {
    if of == 0 { "–".into() } else { format!("{:.2}", n as f64 / of as f64) }
}

/// A V3 card file from a card's `data`, as the demo's card files are written.
pub(crate) fn v3_card(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(map) = data.as_object_mut() {
        map.entry("group_only_greetings").or_insert_with(|| serde_json::json!([]));
    }
    serde_json::json!({ "spec": "chara_card_v3", "spec_version": "3.0", "data": data })
}

/// What every scripted chat of a case set has: its id, its group in the table, the character's
/// card (`data` of a V3 card) and the user's name.
#[derive(Deserialize)]
pub(crate) struct CaseChat {
    pub id: String,
    pub group: String,
    pub card: Value,
    pub user_name: String,
}
