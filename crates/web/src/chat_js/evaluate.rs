//! `engine.debug.evaluate` in the npm package: a case set of `confidant eval` (eval/cases/) run
//! through crates/eval on the loaded model and embedder, as the native command runs it, so the
//! browser's numbers can be set beside the native ones. The run keeps its characters, chats and
//! memories in memory only: the person's own data in IndexedDB is not touched.

use std::collections::HashMap;
use std::rc::Rc;

use eval::{ChatRunner, EvalError, Limits};
use memory::{Embedder, Embedding, TextEmbedder};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use super::{ChatEngineJs, no_model};
use crate::{from_js, js_error, to_js};

fn eval_error(e: EvalError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// The page's embedding model, shared with the run's own memory.
struct SharedEmbedder(Rc<Embedder>);

impl TextEmbedder for SharedEmbedder {
    async fn embed(&self, texts: &[&str]) -> memory::Result<Vec<Embedding>> {
        self.0.embed(texts).await
    }
}

/// `{ limit, turns, files }`: `limit` and `turns` as the command's `--limit` and `--turns`;
/// `files` the texts of files the set names, by their paths relative to the set's file.
#[derive(Deserialize, Default)]
#[serde(default)]
struct EvaluateOptions {
    limit: Option<usize>,
    turns: Option<usize>,
    files: HashMap<String, String>,
}

#[derive(Serialize)]
struct Evaluated {
    report: eval::Report,
    /// Every scored reply, as `confidant eval --transcript` writes them.
    transcript: Vec<serde_json::Value>,
}

#[wasm_bindgen(js_class = ChatEngine)]
impl ChatEngineJs {
    /// Run the case set `caseSet` (its file's JSON text) → `{ report: { set, description,
    /// columns, rows, notes, seconds }, transcript }`.
    pub fn evaluate(&self, case_set: String, options: JsValue) -> js_sys::Promise {
        let options: EvaluateOptions = if options.is_undefined() || options.is_null() {
            EvaluateOptions::default()
        } else {
            match from_js(options, "options") {
                Ok(options) => options,
                Err(e) => return js_sys::Promise::reject(&e),
            }
        };
        // The run takes the model's cache: a summary under way starts again later.
        if let Err(e) = self.cancel_background() {
            return js_sys::Promise::reject(&e);
        }
        let (chat, model, memory) = (self.chat.clone(), self.model.borrow().clone(), self.memory.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            let model = model.ok_or_else(no_model)?;
            // Held through the run: no reply of the person's chats starts meanwhile.
            let _chat = chat.try_borrow_mut().map_err(|_| js_error("busy", "another chat call is still running"))?;
            let embedder = memory
                .try_borrow()
                .map_err(|_| js_error("busy", "the memory is busy"))?
                .embedder()
                .shared()
                .ok_or_else(|| js_error("bad_request", "the embedding model is not loaded yet (it loads with the language model)"))?;
            let mut model = model.try_borrow_mut().map_err(|_| js_error("busy", "the model is busy"))?;
            let adapter = model.adapter.summary();
            let mut runner = ChatRunner::new(&mut model.generator, SharedEmbedder(embedder), adapter).await.map_err(eval_error)?;
            let files = options.files;
            let read_file = |path: &str| files.get(path).cloned().ok_or_else(|| EvalError::Case(format!("the case set needs the file {path:?}: pass its text in options.files")));
            let mut transcript = Vec::new();
            let limits = Limits { chats: options.limit, turns: options.turns };
            let report = eval::run_case_set(&mut runner, &case_set, &read_file, limits, &mut transcript).await.map_err(eval_error)?;
            to_js(&Evaluated { report, transcript })
        })
    }
}
