//! `confidant eval`: the case sets of crates/eval (versioned, scripted chats run through the
//! chat engine as the demo runs a chat) on a model loaded from files, with a table printed per
//! set and written to its own section of EVAL.md. EVAL.md keeps one section per set version and
//! model, replaced when the same pair runs again and left alone otherwise.

use std::path::{Path, PathBuf};

use clap::Args;
use evaluation::{ChatRunner, EvalError, Limits, Report};
use memory::Embedder;

use crate::{Backend, CliError, load};

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
    /// Run only the first N user turns of each chat (a quick look, as --limit).
    #[arg(long)]
    turns: Option<usize>,
    /// Print each set's report as one line of JSON (the browser's `engine.debug.evaluate`
    /// returns the same) instead of the table.
    #[arg(long)]
    json: bool,
}

impl From<EvalError> for CliError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::Engine(e) => CliError::Engine(e),
            EvalError::Llm(e) => CliError::Llm(e),
            EvalError::Memory(e) => CliError::Engine(e.into()),
            other => CliError::Eval(other.to_string()),
        }
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Eval(format!("cannot read {}: {e}", path.display())))
}

pub(crate) fn eval(args: EvalArgs) -> Result<(), CliError> {
    let model_name = args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let (mut model, adapter, _) = load(&args.model, args.backend, args.context, llm::KvPrecision::Auto)?;
    let device = model.model().device().clone();
    let embedder = Embedder::load(
        &read_bytes(&args.embedder.join("model.safetensors"))?,
        &read_bytes(&args.embedder.join("tokenizer.json"))?,
        &read_bytes(&args.embedder.join("config.json"))?,
        &device,
    )
    .map_err(engine::EngineError::from)?;
    let limits = Limits { chats: args.limit, turns: args.turns };
    pollster::block_on(async {
        let mut runner = ChatRunner::new(&mut model, embedder, adapter.summary()).await?;
        runner.on_progress(|line| eprintln!("{line}"));
        let mut transcript = Vec::new();
        for path in &args.cases {
            let text = read(path)?;
            let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let read_file = |relative: &str| read(&base.join(relative)).map_err(|e| EvalError::Case(e.to_string()));
            let report = evaluation::run_case_set(&mut runner, &text, &read_file, limits, &mut transcript).await.map_err(|e| match e {
                EvalError::Case(what) => CliError::Eval(format!("{}: {what}", path.display())),
                other => other.into(),
            })?;
            if args.json {
                println!("{}", serde_json::to_string(&report).map_err(|e| CliError::Eval(e.to_string()))?);
            } else {
                println!("\n{} on {model_name} ({}):\n{}", report.set, runner.adapter(), report.markdown());
                for note in &report.notes {
                    println!("{note}");
                }
            }
            if !args.no_write && limits.is_none() {
                write_section(&args.out, &report.set, &model_name, runner.adapter(), &report)?;
                eprintln!("wrote the {} table for {model_name} to {}", report.set, args.out.display());
            }
        }
        if let Some(path) = &args.transcript {
            let json = serde_json::to_string_pretty(&transcript).map_err(|e| CliError::Eval(e.to_string()))?;
            std::fs::write(path, json).map_err(|e| CliError::Eval(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    })
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
        Report { set: String::new(), seconds: 0.0, description: "What it measures.".into(), columns: vec!["A".into(), "B".into()], rows: vec![vec!["x".into(), value.into()]], notes: vec!["- a note".into()] }
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
