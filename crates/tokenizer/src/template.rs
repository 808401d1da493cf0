//! Chat templates: the GGUF's `tokenizer.chat_template` (Jinja) rendered with `minijinja` the
//! way Hugging Face's `apply_chat_template` renders it: `trim_blocks` and `lstrip_blocks` on,
//! loop controls, Python string and dict methods (`.strip()`, `.startswith()`, `.items()`),
//! `raise_exception`, `strftime_now`, and a `tojson` that writes JSON as Python's `json.dumps`.

use std::fmt::Write as _;

use gguf::Gguf;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, ErrorKind, context};

use crate::error::{Result, TokenizerError};
use crate::limits::{MAX_RENDERED_OVERHEAD_BYTES, MAX_TEMPLATE_BYTES, TEMPLATE_FUEL};
use crate::vocab::optional_str;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// ChatML, used when the GGUF has no `tokenizer.chat_template`: the format of Qwen, SmolLM and
/// many other small instruction-tuned models.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Gemma's turn markers, used for Gemma-family models whose GGUF has no template (base models
/// such as Gemma 3 270M): the layout of Gemma's own template (`<start_of_turn>user` …
/// `<end_of_turn>`, the assistant's role written `model`, system messages put at the start of
/// the next user turn since Gemma has no system role), without its checks that roles alternate,
/// so that any conversation renders.
pub const GEMMA_TEMPLATE: &str = "{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}{% if message['role'] == 'system' %}{% set ns.system = ns.system + message['content'] + '\n\n' %}{% elif message['role'] == 'assistant' %}{{ '<start_of_turn>model\n' + message['content'] + '<end_of_turn>\n' }}{% else %}{{ '<start_of_turn>user\n' + ns.system + message['content'] + '<end_of_turn>\n' }}{% set ns.system = '' %}{% endif %}{% endfor %}{% if ns.system %}{{ '<start_of_turn>user\n' + ns.system + '<end_of_turn>\n' }}{% endif %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

/// The template a model without one gets: its family's known format, else ChatML.
/// Returns the family's name and the template.
pub fn family_template(architecture: &str) -> (&'static str, &'static str) {
    if architecture.starts_with("gemma") { ("gemma", GEMMA_TEMPLATE) } else { ("chatml", CHATML_TEMPLATE) }
}

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template with the BOS and EOS texts it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    /// The family template used because the GGUF has none ("chatml", "gemma").
    fallback: Option<&'static str>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

/// Carries the message of `raise_exception` through minijinja's error so that it can be told
/// apart from the template engine's own errors.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

impl ChatTemplate {
    /// The template of a GGUF, or when it has none its family's (see [`family_template`]:
    /// [`GEMMA_TEMPLATE`] for Gemma models, else [`CHATML_TEMPLATE`]). `bos_token` and
    /// `eos_token` are the texts of the tokens named by `tokenizer.ggml.bos_token_id` and
    /// `tokenizer.ggml.eos_token_id` (empty when absent).
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let source = optional_str(g, "tokenizer.chat_template")?;
        let token_text = |key: &str| -> String {
            let tokens = g.get_strings("tokenizer.ggml.tokens").ok();
            let id = g.get(key).and_then(|v| v.as_u64());
            match (tokens, id) {
                (Some(tokens), Some(id)) => tokens.get(id as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            }
        };
        let bos = token_text("tokenizer.ggml.bos_token_id");
        let eos = token_text("tokenizer.ggml.eos_token_id");
        let Some(source) = source else {
            let (family, fallback) = family_template(g.architecture().unwrap_or_default());
            let mut template = Self::new(fallback, bos, eos)?;
            template.fallback = Some(family);
            return Ok(template);
        };
        Self::new(source, bos, eos)
    }

    /// Compiles `source`; syntax errors are reported here rather than at render time.
    /// Sources over [`MAX_TEMPLATE_BYTES`] are refused; every render runs on
    /// [`TEMPLATE_FUEL`] instructions and a capped output (see [`Self::render`]).
    pub fn new(source: impl Into<String>, bos_token: impl Into<String>, eos_token: impl Into<String>) -> Result<Self> {
        let source = source.into();
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(TokenizerError::TooLarge {
                what: "tokenizer.chat_template bytes",
                size: source.len() as u64,
                limit: MAX_TEMPLATE_BYTES as u64,
            });
        }
        let mut env = Environment::new();
        // A hostile template's loops stop here rather than hang the engine: rendering is
        // synchronous, so nothing else could interrupt it.
        env.set_fuel(Some(TEMPLATE_FUEL));
        // Hugging Face renders with these on; templates are written for them.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.clone()).map_err(template_error)?;
        Ok(Self { env, source, bos_token: bos_token.into(), eos_token: eos_token.into(), fallback: None })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text `bos_token` stands for in the template.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The text `eos_token` stands for in the template.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// Whether the GGUF had no template and its family's (or ChatML) is used instead.
    pub fn is_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// Another template with this one's BOS and EOS texts: a person's override of the model's.
    pub fn with_source(&self, source: impl Into<String>) -> Result<Self> {
        Self::new(source, self.bos_token.clone(), self.eos_token.clone())
    }

    /// The family template used because the GGUF has none: "gemma" or "chatml"; `None` when
    /// the template is the file's own (or given to [`Self::new`]).
    pub fn fallback_family(&self) -> Option<&'static str> {
        self.fallback
    }

    /// The prompt text for `messages`; with `add_generation_prompt`, ending with the header
    /// of the assistant's turn.
    ///
    /// Rendering stops with [`TokenizerError::TemplateTooExpensive`] after [`TEMPLATE_FUEL`]
    /// instructions, and with [`TokenizerError::TemplateOutputTooLong`] once the output is
    /// longer than four times the messages' text plus [`MAX_RENDERED_OVERHEAD_BYTES`].
    ///
    /// The result mixes the template's text with the messages' contents: tokenizing it with
    /// special tokens parsed lets a message write control tokens. Use
    /// [`crate::Tokenizer::encode_chat`] for the prompt's token ids.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let text_bytes = messages.iter().fold(0usize, |n, m| n.saturating_add(m.content.len()).saturating_add(m.role.len()));
        let limit = text_bytes.saturating_mul(4).saturating_add(MAX_RENDERED_OVERHEAD_BYTES);
        let messages: Vec<Value> =
            messages.iter().map(|m| context! { role => m.role.as_str(), content => m.content.as_str() }).collect();
        let template = self.env.get_template(TEMPLATE_NAME).map_err(template_error)?;
        let mut out = CappedWriter { bytes: Vec::new(), limit, overflowed: false };
        let rendered = template.render_captured_to(
            context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            },
            &mut out,
        );
        match rendered {
            Ok(_) => String::from_utf8(out.bytes).map_err(|_| TokenizerError::Template("the output is not UTF-8".into())),
            Err(_) if out.overflowed => Err(TokenizerError::TemplateOutputTooLong(limit)),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(TokenizerError::TemplateTooExpensive(TEMPLATE_FUEL)),
            Err(e) => Err(template_error(e)),
        }
    }
}

/// Collects the rendered text and fails the render once it passes `limit` bytes.
struct CappedWriter {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.limit - self.bytes.len() {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered prompt is too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `raise_exception(msg)` becomes [`TokenizerError::Template`] with exactly `msg`; other errors
/// keep minijinja's description with its location.
fn template_error(err: minijinja::Error) -> TokenizerError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(raised) = e.downcast_ref::<Raised>() {
            return TokenizerError::Template(raised.0.clone());
        }
        source = e.source();
    }
    TokenizerError::Template(format!("{err:#}"))
}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(Raised(message)))
}

/// The local date and time in a `strftime` format (templates print today's date with it).
fn strftime_now(format: String) -> Result<String, minijinja::Error> {
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("invalid strftime format {format:?}"))
    })?;
    Ok(out)
}

/// Hugging Face's `tojson`: `json.dumps(value, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`. Unlike minijinja's own, it does not escape
/// HTML characters and it puts Python's spaces after `,` and `:`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([item, key]) => (item.clone(), key.clone()),
        Some(_) => return Err(minijinja::Error::new(ErrorKind::InvalidOperation, "separators must be a pair")),
        // Python drops the space after "," when indenting, since a newline follows.
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let style = JsonStyle {
        indent,
        item_sep,
        key_sep,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    style.write(&mut out, value, 0)?;
    Ok(out)
}

struct JsonStyle {
    indent: Option<usize>,
    item_sep: String,
    key_sep: String,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl JsonStyle {
    fn write(&self, out: &mut String, value: &Value, level: usize) -> Result<(), minijinja::Error> {
        match value.kind() {
            ValueKind::Undefined | ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => match value.as_i64() {
                Some(i) if value.is_integer() => out.push_str(&i.to_string()),
                _ => out.push_str(&python_float(f64::try_from(value.clone())?)),
            },
            ValueKind::String => self.write_str(out, value.as_str().unwrap_or_default()),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                self.write_container(out, '[', ']', items.len(), level, |out, i| {
                    self.write(out, &items[i], level + 1)
                })?;
            }
            ValueKind::Map => {
                let mut entries: Vec<(String, Value)> = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    let key = key.as_str().map(str::to_string).unwrap_or_else(|| key.to_string());
                    entries.push((key, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.write_container(out, '{', '}', entries.len(), level, |out, i| {
                    self.write_str(out, &entries[i].0);
                    out.push_str(&self.key_sep);
                    self.write(out, &entries[i].1, level + 1)
                })?;
            }
            _ => self.write_str(out, &value.to_string()),
        }
        Ok(())
    }

    fn write_container(
        &self,
        out: &mut String,
        open: char,
        close: char,
        len: usize,
        level: usize,
        mut item: impl FnMut(&mut String, usize) -> Result<(), minijinja::Error>,
    ) -> Result<(), minijinja::Error> {
        out.push(open);
        if len == 0 {
            out.push(close);
            return Ok(());
        }
        let newline = |out: &mut String, level: usize| {
            if let Some(indent) = self.indent {
                out.push('\n');
                out.push_str(&" ".repeat(indent * level));
            }
        };
        for i in 0..len {
            if i > 0 {
                out.push_str(&self.item_sep);
            }
            newline(out, level + 1);
            item(out, i)?;
        }
        newline(out, level);
        out.push(close);
        Ok(())
    }

    fn write_str(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{08}' => out.push_str("\\b"),
                '\u{0C}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A float as Python's `repr` writes it: always with a fraction or an exponent, exponents
/// signed and at least two digits.
fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{x:e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { format!("{s}.0") }
}
