//! `confidant eval`: versioned, scripted case sets run through the chat engine exactly as the
//! demo runs a chat (card import, prompt assembly, memories, sampling defaults), with a table
//! printed per set and written to its own section of EVAL.md.
//!
//! A case set is one JSON file (`eval/cases/NAME-vVERSION.json`) with a header every set
//! shares:
//!
//! ```json
//! { "set": "echo", "version": 1, "kind": "echo", "description": "…", … }
//! ```
//!
//! `kind` picks the runner ([`echo`], [`memory_sets`], [`persona_sets`]); the rest of the file is the runner's. A set's
//! cases never change under the same version: a changed set is a new version, so numbers in
//! EVAL.md stay comparable. EVAL.md keeps one section per set version and model, replaced when
//! the same pair runs again and left alone otherwise.

pub(crate) mod echo;
mod memory_sets;
mod persona_sets;
mod scripted_chat;

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::{Backend, CliError};

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// GGUF model file.
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct-Q4_1.gguf")]
    model: PathBuf,
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Folder of the embedding model for memory (model.safetensors, tokenizer.json,
    /// config.json).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    embedder: PathBuf,
    /// Case-set files to run (repeatable).
    #[arg(long = "cases", default_values = ["eval/cases/echo-v1.json", "eval/cases/memory-v1.json", "eval/cases/persona-v1.json"])]
    cases: Vec<PathBuf>,
    /// Largest prompt + reply in tokens (the demo's default).
    #[arg(long, default_value_t = 4096)]
    context: usize,
    /// Where the tables go; each set and model has its own section.
    #[arg(long, default_value = "EVAL.md")]
    out: PathBuf,
    /// Print the tables only.
    #[arg(long)]
    no_write: bool,
    /// Write every reply of every case, with its scores, to this JSON file.
    #[arg(long)]
    transcript: Option<PathBuf>,
    /// Run only the first N chats of each set (a quick look; such a run is not written to EVAL.md).
    #[arg(long)]
    limit: Option<usize>,
}

/// What every case-set file starts with.
#[derive(Deserialize)]
struct SetHeader {
    set: String,
    version: u32,
    kind: String,
}

/// One table of results.
pub(crate) struct Report {
    pub description: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Said under the table: settings, thresholds, how long it took.
    pub notes: Vec<String>,
}

impl Report {
    fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("| {} |\n", self.columns.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(self.columns.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }
}

pub(crate) fn eval(args: EvalArgs) -> Result<(), CliError> {
    let model_name = args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut runner = scripted_chat::ChatRunner::load(&args.model, args.backend, args.context, &args.embedder)?;
    let mut transcript = Vec::new();
    for path in &args.cases {
        let text = read(path)?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| CliError::Eval(format!("{}: {e}", path.display())))?;
        let header: SetHeader = serde_json::from_value(value.clone()).map_err(|e| CliError::Eval(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let report = match header.kind.as_str() {
            "echo" => echo::run_set(&mut runner, &value, base, args.limit, &mut transcript)?,
            "memory" => memory_sets::run_set(&mut runner, &value, args.limit, &mut transcript)?,
            "persona" => persona_sets::run_set(&mut runner, &value, args.limit, &mut transcript)?,
            other => return Err(CliError::Eval(format!("{}: unknown case-set kind {other:?}", path.display()))),
        };
        let set = format!("{}-v{}", header.set, header.version);
        println!("\n{set} on {model_name} ({}):\n{}", runner.adapter(), report.markdown());
        for note in &report.notes {
            println!("{note}");
        }
        if !args.no_write && args.limit.is_none() {
            write_section(&args.out, &set, &model_name, &runner.adapter(), &report)?;
            eprintln!("wrote the {set} table for {model_name} to {}", args.out.display());
        }
    }
    if let Some(path) = &args.transcript {
        let json = serde_json::to_string_pretty(&transcript).map_err(|e| CliError::Eval(e.to_string()))?;
        std::fs::write(path, json).map_err(|e| CliError::Eval(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// An error in a case set or its run.
pub(crate) fn bad(what: impl std::fmt::Display) -> CliError {
    CliError::Eval(what.to_string())
}

/// `n` of `of` as a rate with two decimals ("–" of nothing).
fn rate(n: usize, of: usize) -> String {
    if of == 0 { "–".into() } else { format!("{:.2}", n as f64 / of as f64) }
}

/// A V3 card file from a card's `data`, as the demo's card files are written.
fn v3_card(data: &serde_json::Value) -> serde_json::Value {
    let mut data = data.clone();
    if let Some(map) = data.as_object_mut() {
        map.entry("group_only_greetings").or_insert_with(|| serde_json::json!([]));
    }
    serde_json::json!({ "spec": "chara_card_v3", "spec_version": "3.0", "data": data })
}

/// What every scripted chat of a case set has: its id, its group in the table, the character's
/// card (`data` of a V3 card) and the user's name.
#[derive(Deserialize)]
struct CaseChat {
    id: String,
    group: String,
    card: serde_json::Value,
    user_name: String,
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Eval(format!("cannot read {}: {e}", path.display())))
}

const EVAL_MD_HEAD: &str = "# Evaluation\n\nTables written by `confidant eval` (crates/cli/src/eval): each scripted case set \
(eval/cases/) run through the chat engine as the demo runs a chat. One section per case-set version and model; \
running the same pair again replaces its section.\n";

/// Put the report into `out`, replacing the section of the same set and model.
fn write_section(out: &Path, set: &str, model: &str, adapter: &str, report: &Report) -> Result<(), CliError> {
    let existing = if out.exists() { read(out)? } else { EVAL_MD_HEAD.to_string() };
    let marker = format!("<!-- eval {set} {model} -->");
    let end_marker = "<!-- /eval -->";
    let mut section = format!("{marker}\n## {set} · {model}\n\n{}\n\n", report.description.trim());
    section.push_str(&report.markdown());
    section.push('\n');
    for note in &report.notes {
        section.push_str(note);
        section.push('\n');
    }
    section.push_str(&format!("\nRun on {adapter}, {}.\n{end_marker}", chrono_date()));
    let updated = match existing.find(&marker) {
        Some(start) => {
            let end = existing[start..].find(end_marker).map(|e| start + e + end_marker.len()).unwrap_or(existing.len());
            format!("{}{section}{}", &existing[..start], &existing[end..])
        }
        None => format!("{}\n{section}\n", existing.trim_end()),
    };
    std::fs::write(out, updated).map_err(|e| CliError::Eval(format!("{}: {e}", out.display())))
}

/// Today, as the section's date stamp (UTC).
fn chrono_date() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(value: &str) -> Report {
        Report { description: "What it measures.".into(), columns: vec!["A".into(), "B".into()], rows: vec![vec!["x".into(), value.into()]], notes: vec!["- a note".into()] }
    }

    #[test]
    fn each_set_and_model_has_its_own_section_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("confidant-eval-md-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("EVAL.md");
        let _ = std::fs::remove_file(&out);
        write_section(&out, "echo-v1", "m1", "cpu", &report("1")).unwrap();
        write_section(&out, "echo-v1", "m2", "cpu", &report("2")).unwrap();
        write_section(&out, "recall-v1", "m1", "cpu", &report("3")).unwrap();
        // Running echo-v1 on m1 again replaces that section only, where it was.
        write_section(&out, "echo-v1", "m1", "cpu", &report("4")).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("# Evaluation\n"));
        assert_eq!(text.matches("<!-- eval echo-v1 m1 -->").count(), 1);
        assert_eq!(text.matches("<!-- /eval -->").count(), 3);
        assert!(text.contains("| x | 4 |") && !text.contains("| x | 1 |"), "{text}");
        let order: Vec<usize> = ["## echo-v1 · m1", "## echo-v1 · m2", "## recall-v1 · m1"].iter().map(|h| text.find(h).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("| A | B |\n| --- | --- |\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
