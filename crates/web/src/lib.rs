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
use llm::{ChatMessage, DType, GenerateOptions, Generator, LlmError, ModelInfo, SamplingParams};
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
    /// The template's text, where an engine has one loaded (not from `inspectModel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    chat_template_source: Option<String>,
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
            chat_template_source: None,
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

/// Which GPU kernels run prompts (the package's `gpuPrefill`): `"rows"` runs them through the
/// decode kernels over blocks of rows (to compare), `"tiled"` and `"auto"` through the tiled
/// ones (the default). Throws `bad_request` for any other value.
#[wasm_bindgen(js_name = setPrefillKernels)]
pub fn set_prefill_kernels(choice: &str) -> Result<(), JsValue> {
    use llm::kernels::PrefillKernels;
    let kernels = match choice {
        "auto" | "tiled" => PrefillKernels::Tiled,
        "rows" => PrefillKernels::Rows,
        other => return Err(js_error("bad_request", &format!("gpuPrefill must be 'auto', 'rows' or 'tiled', not {other:?}"))),
    };
    llm::kernels::set_prefill_kernels(kernels);
    Ok(())
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
/// Check a model from the first bytes of its file (`fileLength` long): what it is, whether this
/// engine runs it, and what it needs in memory at `contextLength` (`memory: { weights, kvCache }`
/// in bytes). With `memoryLimit`, a model whose weights and cache do not fit in it is refused
/// with `out_of_memory`, naming the numbers; with `bufferLimit` (a GPU's most bytes in one buffer:
/// the smaller of its `maxBufferSize` and `maxStorageBufferBindingSize`), so is a model with a
/// larger buffer (a key/value cache too long for the GPU). The first part of a split model is checked for its
/// architecture and tokenizer only (its tensors are spread over the parts): that gives `null`.
#[wasm_bindgen(js_name = inspectModel)]
pub fn inspect_model(prefix: &[u8], file_length: f64, context_length: Option<usize>, memory_limit: Option<f64>, buffer_limit: Option<f64>) -> Result<JsValue, JsValue> {
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
    match header.split_part().map_err(|e| llm_error(e.into()))? {
        Some(part) if part.no > 0 => {
            return Err(llm_error(gguf::GgufError::Split(format!("this file is part {} of {} of a split model: give all its parts, or the URL of the first", part.no + 1, part.count)).into()));
        }
        Some(_) => {
            llm::Architecture::of(&header).map_err(llm_error)?;
            llm::Tokenizer::check_supported(&header).map_err(|e| llm_error(e.into()))?;
            return Ok(JsValue::NULL);
        }
        None => {}
    }
    let info = ModelInfo::from_gguf(&header).map_err(llm_error)?;
    // A file too short for the tensors its header lists is broken, however much of it arrived.
    header.check_data(file_length as u64).map_err(|e| llm_error(e.into()))?;
    let context = context_length.unwrap_or(info.context_length);
    // Before a device is chosen: the cache counted in f32, as on an adapter without shader-f16.
    let need = check_fits(&header, context, memory_limit, DType::F32)?;
    if let Some(limit) = buffer_limit {
        llm::MemoryNeed::check_gpu_buffers(&header, context, limit as u64).map_err(llm_error)?;
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Inspected {
        #[serde(flatten)]
        model: ModelInfoJs,
        memory: MemoryJs,
    }
    to_js(&Inspected { model: ModelInfoJs::from(&info), memory: need.into() })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemoryJs {
    weights: u64,
    kv_cache: u64,
    largest_tensor: u64,
    largest_buffer: u64,
}

impl From<llm::MemoryNeed> for MemoryJs {
    fn from(need: llm::MemoryNeed) -> Self {
        Self { weights: need.weights, kv_cache: need.kv_cache, largest_tensor: need.largest_tensor, largest_buffer: need.largest_buffer }
    }
}

/// `header` when it is a whole model, not one part of a split.
fn whole_model(header: gguf::Gguf) -> gguf::Result<gguf::Gguf> {
    match header.split_part()? {
        Some(part) => Err(gguf::GgufError::Split(format!("this file is part {} of {} of a split model: give all its parts", part.no + 1, part.count))),
        None => Ok(header),
    }
}

/// What the model needs at `context` positions; `out_of_memory` when over `limit` bytes.
fn check_fits(header: &gguf::Gguf, context: usize, limit: Option<f64>, cache: DType) -> Result<llm::MemoryNeed, JsValue> {
    let need = llm::MemoryNeed::with_cache(header, context, cache).map_err(llm_error)?;
    if let Some(limit) = limit.filter(|&l| (need.total() as f64) > l) {
        let mb = |n: f64| format!("{:.0} MB", n / 1e6);
        return Err(js_error(
            "out_of_memory",
            &format!(
                "the model needs {} for its weights and {} for its cache at {context} tokens of context, {} in all; at most {} is available here",
                mb(need.weights as f64),
                mb(need.kv_cache as f64),
                mb(need.total() as f64),
                mb(limit)
            ),
        ));
    }
    Ok(need)
}

/// The model's file read by JavaScript a range at a time (`read(start, end)` returns those
/// bytes as a Uint8Array, synchronously: FileReaderSync over Blob slices in a worker), so that
/// only one tensor's bytes are in wasm memory at once while loading.
struct JsSource {
    read: js_sys::Function,
    len: u64,
}

impl llm::weights::TensorSource for JsSource {
    fn file_len(&self) -> u64 {
        self.len
    }

    fn read(&self, range: std::ops::Range<usize>) -> llm::Result<std::borrow::Cow<'_, [u8]>> {
        let failed = |what: String| LlmError::Read(format!("bytes {range:?} of the model file: {what}"));
        let value = self.read.call2(&JsValue::NULL, &(range.start as f64).into(), &(range.end as f64).into()).map_err(|e| failed(format!("{e:?}")))?;
        let bytes = value.dyn_into::<js_sys::Uint8Array>().map_err(|_| failed("the reader gave no Uint8Array".into()))?;
        if bytes.length() as usize != range.len() {
            return Err(failed(format!("the reader gave {} bytes", bytes.length())));
        }
        Ok(std::borrow::Cow::Owned(bytes.to_vec()))
    }
}

pub(crate) struct Inner {
    pub(crate) generator: Generator,
    backend: Backend,
    adapter: AdapterInfo,
    model: ModelInfo,
    /// What the weights and the cache at the loaded context take.
    need: llm::MemoryNeed,
    /// The model's own chat template (its source and its name in `info()`), for undoing an override.
    own_template: (String, String),
}

/// A loaded model. Calls must not overlap: wait for each promise before the next.
#[wasm_bindgen]
pub struct Engine {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

impl Engine {
    /// The model of `header`, its tensors read from `source`, on `backend`; refused with
    /// `out_of_memory` when its weights and cache at `max_context` exceed `memory_limit`.
    async fn load_from(header: &gguf::Gguf, source: &dyn llm::weights::TensorSource, max_context: usize, backend: Backend, memory_limit: Option<f64>) -> Result<Engine, JsValue> {
        let max_context = max_context.max(16);
        let model = ModelInfo::from_gguf(header).map_err(llm_error)?;
        let (device, adapter) = device(backend).await?;
        // The cache's type on this device: f16 where WebGPU has shader-f16, half the bytes.
        let cache = llm::KvPrecision::Auto.dtype_on(&device);
        let need = check_fits(header, max_context, memory_limit, cache)?;
        if let Some(max_buffer) = adapter.max_buffer {
            llm::MemoryNeed::check_gpu_buffers_with_cache(header, max_context, max_buffer, cache).map_err(llm_error)?;
        }
        let generator = Generator::from_source(header, source, &device, max_context).map_err(llm_error)?;
        let own_template = (generator.template().source().to_string(), model.chat_template.clone());
        Ok(Engine { inner: Rc::new(RefCell::new(Inner { generator, backend, adapter, model, need, own_template })) })
    }
}

#[wasm_bindgen]
impl Engine {
    /// Load a GGUF held in `bytes` on `backend` (`'webgpu'` or `'cpu'`). `maxContext` caps
    /// prompt + reply. A GGUF split in parts comes as its parts end to end, `partLengths` their
    /// lengths in order.
    pub async fn load(bytes: Vec<u8>, max_context: usize, backend: String, part_lengths: Option<Box<[f64]>>) -> Result<Engine, JsValue> {
        console_error_panic_hook::set_once();
        let backend = Backend::parse(&backend)?;
        let header = match part_lengths.as_deref() {
            Some(lengths) if lengths.len() > 1 => gguf::parse_parts(&bytes, &lengths.iter().map(|&l| l as u64).collect::<Vec<_>>()),
            _ => gguf::Gguf::parse(&bytes).and_then(whole_model),
        };
        let header = header.map_err(|e| llm_error(e.into()))?;
        Self::load_from(&header, &bytes, max_context, backend, None).await
    }

    /// Load a GGUF that JavaScript reads a range at a time: `read(start, end)` returns those
    /// bytes (a Uint8Array, synchronously), `partLengths` are the lengths of the file, or of the
    /// parts of a split model laid end to end. Only the header and one tensor at a time pass
    /// through wasm memory, plus the weights on the CPU backend. With `memoryLimit`, a model
    /// whose weights and cache at `maxContext` do not fit in it is refused with `out_of_memory`
    /// before anything is loaded.
    #[wasm_bindgen(js_name = loadStreamed)]
    pub async fn load_streamed(read: js_sys::Function, part_lengths: Box<[f64]>, max_context: usize, backend: String, memory_limit: Option<f64>) -> Result<Engine, JsValue> {
        console_error_panic_hook::set_once();
        let backend = Backend::parse(&backend)?;
        let lengths: Vec<u64> = part_lengths.iter().map(|&l| l as u64).collect();
        let source = JsSource { read, len: lengths.iter().sum() };
        let mut headers = Vec::with_capacity(lengths.len());
        let mut start = 0;
        for &len in &lengths {
            headers.push(llm::weights::read_header(&source, start, len).map_err(llm_error)?);
            start += len;
        }
        let header = if headers.len() == 1 { whole_model(headers.remove(0)) } else { gguf::Gguf::merge_splits(&headers) };
        let header = header.map_err(|e| llm_error(e.into()))?;
        Self::load_from(&header, &source, max_context, backend, memory_limit).await
    }

    /// `{ backend, adapter, model: { name, arch, params, quant, contextLength, … }, memory:
    /// { weights, kvCache, largestTensor, wasm }, kvCacheType }`: `wasm` is the engine's wasm
    /// memory now, which is also its high-water mark (a wasm memory never shrinks);
    /// `kvCacheType` is `"f16"` where WebGPU has shader-f16, else `"f32"`.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Info {
            backend: &'static str,
            adapter: AdapterJs,
            model: ModelInfoJs,
            context_length: usize,
            memory: MemoryInfo,
            kv_cache_type: &'static str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct MemoryInfo {
            #[serde(flatten)]
            need: MemoryJs,
            wasm: f64,
        }
        let inner = self.inner.borrow();
        // An ArrayBuffer, or a SharedArrayBuffer in the multi-threaded build: read its length by name.
        let wasm = wasm_bindgen::memory()
            .dyn_into::<js_sys::WebAssembly::Memory>()
            .ok()
            .and_then(|m| js_sys::Reflect::get(&m.buffer(), &"byteLength".into()).ok())
            .and_then(|length| length.as_f64())
            .unwrap_or(0.0);
        to_js(&Info {
            backend: inner.backend.name(),
            adapter: (&inner.adapter).into(),
            model: ModelInfoJs { chat_template_source: Some(inner.generator.template().source().to_string()), ..(&inner.model).into() },
            context_length: inner.generator.context_length(),
            memory: MemoryInfo { need: inner.need.into(), wasm },
            kv_cache_type: if inner.generator.kv_cache_dtype() == DType::F16 { "f16" } else { "f32" },
        })
    }

    /// Render chats through `source` (Jinja, as a GGUF's `tokenizer.chat_template`) instead of
    /// the model's own template; `null` goes back to the model's. `info().model.chatTemplate`
    /// is then `custom`. A template that does not compile is refused with `bad_request`.
    #[wasm_bindgen(js_name = setChatTemplate)]
    pub fn set_chat_template(&self, source: Option<String>) -> Result<(), JsValue> {
        let mut inner = self.inner.borrow_mut();
        let (source, name) = match source {
            Some(source) => (source, "custom".to_string()),
            None => inner.own_template.clone(),
        };
        let template = inner.generator.template().with_source(source).map_err(|e| js_error("bad_request", &format!("the chat template cannot be used: {e}")))?;
        inner.generator.replace_template(template);
        inner.model.chat_template = name;
        Ok(())
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
