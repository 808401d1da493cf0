//! The engine for JavaScript: load a GGUF from bytes, generate one token per call on the
//! browser's WebGPU or on the CPU (wasm SIMD, and threads in the multi-threaded build). The npm
//! package (pkg/) wraps this in a Web Worker; nothing else binds to JS.
//!
//! Errors reach JS as `Error` objects with a `code` property (`model_format`,
//! `unsupported_model`, `webgpu_unavailable`, `device_lost`, `bad_request`) and a readable
//! message.

mod bench;
mod chat_js;

/// `initThreadPool(n)` in JS: start `n` Web Workers sharing this module's memory for rayon.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;
mod idb_store;
mod memory_js;

use std::cell::RefCell;
use std::rc::Rc;

use llm::device::AdapterInfo;
use llm::{ChatMessage, GenerateOptions, Generator, LlmError, ModelInfo, SamplingParams};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

fn llm_error(e: LlmError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

/// Every value the bindings return goes through here: as JSON text parsed by the browser, so
/// numbers keep the short form Rust prints (an f32 score 0.1, not 0.10000000149).
pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(value).map_err(|e| js_error("bad_request", &e.to_string()))?;
    js_sys::JSON::parse(&text)
}

pub(crate) fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value).map_err(|e| js_error("bad_request", &format!("{what}: {e}")))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfoJs {
    name: String,
    display_name: String,
    arch: String,
    params: u64,
    quant: String,
    context_length: usize,
    vocab_size: usize,
    layers: usize,
    chat_template: String,
}

impl From<&ModelInfo> for ModelInfoJs {
    fn from(m: &ModelInfo) -> Self {
        Self {
            name: m.name.clone(),
            display_name: m.display_name.clone(),
            arch: m.architecture.clone(),
            params: m.parameters,
            quant: m.quantization.clone(),
            context_length: m.context_length,
            vocab_size: m.vocab_size,
            layers: m.layers,
            chat_template: m.chat_template.clone(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdapterJs {
    name: String,
    vendor: String,
    backend: String,
    driver: String,
    device_type: String,
}

impl From<&AdapterInfo> for AdapterJs {
    fn from(a: &AdapterInfo) -> Self {
        Self { name: a.name.clone(), vendor: a.vendor.clone(), backend: a.backend.clone(), driver: a.driver.clone(), device_type: a.device_type.clone() }
    }
}

/// Generation options as JS passes them (OpenAI-style names).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct OptionsJs {
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<usize>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    dry_multiplier: Option<f32>,
    dry_base: Option<f32>,
    dry_allowed_length: Option<usize>,
    dry_penalty_last_n: Option<i32>,
    dry_sequence_breakers: Option<Vec<String>>,
    seed: Option<u64>,
    ignore_eos: Option<bool>,
    cache_prompt: Option<bool>,
}

impl OptionsJs {
    pub(crate) fn into_options(self) -> GenerateOptions {
        GenerateOptions {
            max_tokens: self.max_tokens.unwrap_or(256),
            ignore_eos: self.ignore_eos.unwrap_or(false),
            cache_prompt: self.cache_prompt.unwrap_or(true),
            sampling: self.sampling(SamplingParams::default()),
        }
    }

    /// The sampling settings given, the rest from `d` (the completion API's neutral defaults,
    /// or a chat's role-play ones).
    pub(crate) fn sampling(self, d: SamplingParams) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.unwrap_or(d.top_k),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
            repeat_last_n: self.repeat_last_n.unwrap_or(d.repeat_last_n),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            dry: llm::DryParams {
                multiplier: self.dry_multiplier.unwrap_or(d.dry.multiplier),
                base: self.dry_base.unwrap_or(d.dry.base),
                allowed_length: self.dry_allowed_length.unwrap_or(d.dry.allowed_length),
                penalty_last_n: self.dry_penalty_last_n.unwrap_or(d.dry.penalty_last_n),
                sequence_breakers: self.dry_sequence_breakers.unwrap_or(d.dry.sequence_breakers),
            },
            seed: self.seed.unwrap_or(d.seed),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepJs {
    token: u32,
    text: String,
}

#[derive(Serialize)]
struct ProgressJs {
    done: usize,
    total: usize,
}

/// A generation's counts and speeds, in the same types (and casing) as a chat reply's.
#[derive(Serialize)]
struct StatsJs {
    usage: engine::Usage,
    timings: engine::Timings,
    finish_reason: Option<&'static str>,
}

/// Where the model and the embedder run. The package resolves `'auto'` before it picks the
/// wasm build, so this side only ever sees a concrete choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    WebGpu,
    Cpu,
}

impl Backend {
    pub(crate) fn parse(name: &str) -> Result<Self, JsValue> {
        match name {
            "webgpu" => Ok(Self::WebGpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(js_error("bad_request", &format!("unknown backend {other:?}: expected 'webgpu' or 'cpu'"))),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }
}

thread_local! {
    /// The WebGPU device, acquired once per page or worker: burn's runtime cannot be set up twice.
    #[cfg(feature = "webgpu")]
    static WEBGPU: RefCell<Option<(llm::Device, AdapterInfo)>> = const { RefCell::new(None) };
}

/// The device of `backend`, acquired on first use.
pub(crate) async fn device(backend: Backend) -> Result<(llm::Device, AdapterInfo), JsValue> {
    match backend {
        Backend::Cpu => Ok(llm::device::init_cpu()),
        #[cfg(feature = "webgpu")]
        Backend::WebGpu => {
            if let Some(found) = WEBGPU.with(|d| d.borrow().clone()) {
                return Ok(found);
            }
            let acquired = llm::device::init_webgpu().await.map_err(|e| js_error("webgpu_unavailable", &e.to_string()))?;
            WEBGPU.with(|d| *d.borrow_mut() = Some(acquired.clone()));
            Ok(acquired)
        }
        #[cfg(not(feature = "webgpu"))]
        Backend::WebGpu => Err(js_error("webgpu_unavailable", "this build of the engine runs on the CPU only")),
    }
}

/// Describe a GGUF from its first bytes and check that the engine can run it. `fileLength` is
/// the whole file's size. Throws `unsupported_model` or `model_format`; a prefix too short for
/// the header throws with code `need_more_bytes` and a `needed` property (a lower bound).
#[wasm_bindgen(js_name = inspectModel)]
pub fn inspect_model(prefix: &[u8], file_length: f64) -> Result<JsValue, JsValue> {
    let parsed = gguf::Gguf::parse_prefix(prefix, file_length as u64);
    let header = match parsed {
        Ok(h) => h,
        Err(gguf::GgufError::Truncated { needed, .. }) if (prefix.len() as f64) < file_length => {
            let error = js_error("need_more_bytes", "the header continues past the bytes given");
            let _ = js_sys::Reflect::set(&error, &"needed".into(), &(needed as f64).into());
            return Err(error);
        }
        Err(e) => return Err(llm_error(e.into())),
    };
    let info = ModelInfo::from_gguf(&header).map_err(llm_error)?;
    // A file too short for the tensors its header lists is broken, however much of it arrived.
    header.check_data(file_length as u64).map_err(|e| llm_error(e.into()))?;
    to_js(&ModelInfoJs::from(&info))
}

pub(crate) struct Inner {
    pub(crate) generator: Generator,
    backend: Backend,
    adapter: AdapterInfo,
    model: ModelInfo,
}

/// A loaded model. Calls must not overlap: wait for each promise before the next.
#[wasm_bindgen]
pub struct Engine {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

#[wasm_bindgen]
impl Engine {
    /// Load a GGUF held in `bytes` on `backend` (`'webgpu'` or `'cpu'`). `maxContext` caps
    /// prompt + reply.
    pub async fn load(bytes: Vec<u8>, max_context: usize, backend: String) -> Result<Engine, JsValue> {
        console_error_panic_hook::set_once();
        let backend = Backend::parse(&backend)?;
        let header = gguf::Gguf::parse(&bytes).map_err(|e| llm_error(e.into()))?;
        let model = ModelInfo::from_gguf(&header).map_err(llm_error)?;
        let (device, adapter) = device(backend).await?;
        let generator = Generator::from_gguf(&bytes, &device, max_context.max(16)).map_err(llm_error)?;
        Ok(Engine { inner: Rc::new(RefCell::new(Inner { generator, backend, adapter, model })) })
    }

    /// `{ backend, adapter, model: { name, arch, params, quant, contextLength, … } }`
    pub fn info(&self) -> Result<JsValue, JsValue> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Info {
            backend: &'static str,
            adapter: AdapterJs,
            model: ModelInfoJs,
            context_length: usize,
        }
        let inner = self.inner.borrow();
        to_js(&Info {
            backend: inner.backend.name(),
            adapter: (&inner.adapter).into(),
            model: (&inner.model).into(),
            context_length: inner.generator.context_length(),
        })
    }

    /// Token ids of a raw prompt (special tokens in the text recognised, as llama.cpp does).
    #[wasm_bindgen(js_name = encodeRaw)]
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        self.inner.borrow().generator.encode_raw(text).map_err(llm_error)
    }

    /// Token ids of `[{ role, content }]` rendered through the model's chat template.
    #[wasm_bindgen(js_name = encodeChat)]
    pub fn encode_chat(&self, messages: JsValue) -> Result<Vec<u32>, JsValue> {
        #[derive(Deserialize)]
        struct Message {
            role: String,
            content: String,
        }
        let messages: Vec<Message> = from_js(messages, "messages")?;
        let messages: Vec<ChatMessage> = messages.into_iter().map(|m| ChatMessage::new(m.role, m.content)).collect();
        self.inner.borrow().generator.encode_chat(&messages).map_err(llm_error)
    }

    /// The chat template's text for `[{ role, content }]`, for debugging views.
    #[wasm_bindgen(js_name = renderChat)]
    pub fn render_chat(&self, messages: JsValue) -> Result<String, JsValue> {
        #[derive(Deserialize)]
        struct Message {
            role: String,
            content: String,
        }
        let messages: Vec<Message> = from_js(messages, "messages")?;
        let messages: Vec<ChatMessage> = messages.into_iter().map(|m| ChatMessage::new(m.role, m.content)).collect();
        self.inner.borrow().generator.template().render(&messages, true).map_err(|e| llm_error(e.into()))
    }

    pub fn decode(&self, ids: Vec<u32>) -> Result<String, JsValue> {
        self.inner.borrow().generator.tokenizer().decode(&ids, true).map_err(|e| llm_error(e.into()))
    }

    /// Start generating after `prompt` (token ids) with OpenAI-style options
    /// (`max_tokens`, `temperature`, `top_k`, `top_p`, `min_p`, `repeat_penalty`,
    /// `repeat_last_n`, `presence_penalty`, `frequency_penalty`, `dry_multiplier`, `dry_base`,
    /// `dry_allowed_length`, `dry_penalty_last_n`, `dry_sequence_breakers`, `seed`,
    /// `ignore_eos`, `cache_prompt`).
    pub fn begin(&self, prompt: Vec<u32>, options: JsValue) -> Result<(), JsValue> {
        let options: OptionsJs = if options.is_undefined() || options.is_null() { OptionsJs::default() } else { from_js(options, "options")? };
        self.inner.borrow_mut().generator.begin(prompt, options.into_options()).map_err(llm_error)
    }

    /// Where the prompt under way stands: `{ done, total }` tokens (those not reused from the
    /// cache), or `null` once its first token is out.
    #[wasm_bindgen(js_name = prefillProgress)]
    pub fn prefill_progress(&self) -> Result<JsValue, JsValue> {
        match self.inner.borrow().generator.prefill_progress() {
            Some(p) => to_js(&ProgressJs { done: p.done, total: p.total }),
            None => Ok(JsValue::NULL),
        }
    }

    /// Run the next `chunk` prompt tokens when more than `chunk` are left: resolves to
    /// `{ done, total }`, or to `null` when the rest goes with the next `step()`. Optional:
    /// `step()` alone runs the whole prompt.
    pub fn prefill(&self, chunk: usize) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut inner = inner.try_borrow_mut().map_err(|_| js_error("busy", "a step is already running"))?;
            match inner.generator.prefill(chunk).await.map_err(llm_error)? {
                Some(p) => to_js(&ProgressJs { done: p.done, total: p.total }),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// The next token: resolves to `{ token, text }`, or `null` when the generation is over.
    pub fn step(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            // Calls never overlap (the worker serialises them), so the borrow is never contended.
            let mut inner = inner.try_borrow_mut().map_err(|_| js_error("busy", "a step is already running"))?;
            match inner.generator.step().await.map_err(llm_error)? {
                Some(step) => to_js(&StepJs { token: step.token, text: step.text }),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Raw logits of `ids` at the latest step (for checks against reference implementations).
    #[wasm_bindgen(js_name = lastLogits)]
    pub fn last_logits(&self, ids: Vec<u32>) -> Vec<f32> {
        let inner = self.inner.borrow();
        let logits = inner.generator.last_logits();
        ids.iter().map(|&i| logits.get(i as usize).copied().unwrap_or(f32::NAN)).collect()
    }

    /// Stop the generation under way; the engine stays usable.
    pub fn abort(&self) {
        self.inner.borrow_mut().generator.abort();
    }

    /// `{ usage, timings, finish_reason }` of the current or last generation (`usage` and
    /// `timings` as a chat reply's `done` event has them).
    pub fn stats(&self) -> Result<JsValue, JsValue> {
        let inner = self.inner.borrow();
        let s = inner.generator.stats();
        to_js(&StatsJs { usage: engine::Usage::of(s), timings: engine::Timings::of(s), finish_reason: s.finish_reason.map(|r| r.as_str()) })
    }
}
