//! The vocabulary as llama.cpp's `llama_vocab::load` sees it: token texts, scores and
//! attributes, the special token ids, the end-of-generation set, and the flags that shape
//! tokenization (`add_bos`, `add_eos`, `add_space_prefix`).

use std::collections::{BTreeSet, HashMap};

use gguf::{Array, Gguf, Value};

use crate::error::{Result, TokenizerError};
use crate::limits::{MAX_SPECIAL_TOKENS, MAX_TOKEN_BYTES, MAX_VOCAB_TOKENS};

/// Token attribute bits, as llama.cpp's `llama_token_attr`.
pub(crate) mod attr {
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
}

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`) to attributes.
fn attr_of_type(token_type: i64) -> u32 {
    match token_type {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => 0, // undefined: never rendered, never matched as special
    }
}

/// Which algorithm turns text fragments into ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// `tokenizer.ggml.model = "gpt2"`: byte-level BPE with regex pre-tokenization.
    Bpe,
    /// `tokenizer.ggml.model = "llama"`: SentencePiece BPE by score with byte fallback.
    Spm,
}

/// Values that depend on the model kind and pre-tokenizer before the file's own keys apply.
pub(crate) struct Defaults {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    pub add_space_prefix: bool,
}

pub(crate) struct Vocab {
    pub kind: ModelKind,
    pub texts: Vec<String>,
    pub scores: Vec<f32>,
    pub attrs: Vec<u32>,
    pub ids: HashMap<String, u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    /// Ids that end generation (llama.cpp's `special_eog_ids`).
    pub eog: BTreeSet<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// SentencePiece: a space is put before text that starts the input or follows a special token.
    pub add_space_prefix: bool,
    /// Control, user-defined and unknown tokens, longest text first: the order in which
    /// llama.cpp cuts them out of the input before tokenizing the text between them.
    pub specials: Vec<u32>,
}

/// Candidate texts for the end-of-turn token when `tokenizer.ggml.eot_token_id` is absent, in
/// order of preference. llama.cpp takes whichever it meets first in hash-map order, which for
/// SmolLM2 is `<|endoftext|>`; the chat turn terminator is the more useful answer, so the
/// turn-end tokens come first here.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts llama.cpp always treats as end of generation (and forces to control type).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

fn too_large(what: &'static str, size: usize, limit: usize) -> TokenizerError {
    TokenizerError::TooLarge { what, size: size as u64, limit: limit as u64 }
}

fn bad(key: &str, reason: impl Into<String>) -> TokenizerError {
    TokenizerError::BadMetadata { key: key.into(), reason: reason.into() }
}

pub(crate) fn optional_str<'a>(g: &'a Gguf, key: &str) -> Result<Option<&'a str>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| bad(key, format!("expected a string, found {}", v.type_name()))),
    }
}

fn optional_bool(g: &Gguf, key: &str) -> Result<Option<bool>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| bad(key, format!("expected a bool, found {}", v.type_name()))),
    }
}

/// A token id key. Out-of-range ids are ignored (the default stays), as llama.cpp does.
fn optional_id(g: &Gguf, key: &str, n_tokens: usize) -> Result<Option<u32>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => {
            let id = v.as_u64().ok_or_else(|| bad(key, format!("expected a token id, found {}", v.type_name())))?;
            Ok(if id < n_tokens as u64 { Some(id as u32) } else { None })
        }
    }
}

/// One value per token, read as f32 (llama.cpp accepts float32 or int32 scores).
fn read_scores(g: &Gguf, n_tokens: usize) -> Result<Vec<f32>> {
    const KEY: &str = "tokenizer.ggml.scores";
    let Some(value) = g.get(KEY) else { return Ok(vec![0.0; n_tokens]) };
    let scores: Vec<f32> = match value {
        Value::Array(Array::F32(v)) => v.clone(),
        Value::Array(Array::I32(v)) => v.iter().map(|&s| s as f32).collect(),
        other => return Err(bad(KEY, format!("expected an array of float32 or int32, found {}", other.type_name()))),
    };
    if scores.len() < n_tokens {
        return Err(bad(KEY, format!("{} scores for {n_tokens} tokens", scores.len())));
    }
    Ok(scores)
}

fn read_attrs(g: &Gguf, n_tokens: usize) -> Result<Vec<u32>> {
    const KEY: &str = "tokenizer.ggml.token_type";
    let Some(value) = g.get(KEY) else { return Ok(vec![attr::NORMAL; n_tokens]) };
    let types = value
        .as_array()
        .and_then(Array::to_i64_vec)
        .ok_or_else(|| bad(KEY, format!("expected an array of integers, found {}", value.type_name())))?;
    if types.len() < n_tokens {
        return Err(bad(KEY, format!("{} token types for {n_tokens} tokens", types.len())));
    }
    Ok(types[..n_tokens].iter().map(|&t| attr_of_type(t)).collect())
}

impl Vocab {
    pub fn load(g: &Gguf, kind: ModelKind, defaults: Defaults) -> Result<Self> {
        let tokens = g.get_strings("tokenizer.ggml.tokens")?;
        let n_tokens = tokens.len();
        if n_tokens == 0 {
            return Err(bad("tokenizer.ggml.tokens", "no tokens"));
        }
        if n_tokens > MAX_VOCAB_TOKENS {
            return Err(too_large("tokens in tokenizer.ggml.tokens", n_tokens, MAX_VOCAB_TOKENS));
        }
        if let Some(long) = tokens.iter().map(String::len).find(|&len| len > MAX_TOKEN_BYTES) {
            return Err(too_large("bytes of a token in tokenizer.ggml.tokens", long, MAX_TOKEN_BYTES));
        }
        let scores = read_scores(g, n_tokens)?;
        let mut attrs = read_attrs(g, n_tokens)?;

        let mut texts = Vec::with_capacity(n_tokens);
        let mut ids = HashMap::with_capacity(n_tokens);
        for (i, text) in tokens.iter().enumerate() {
            let id = i as u32;
            // llama.cpp renames empty tokens so that every text maps to one id.
            let text = if text.is_empty() { format!("[EMPTY_{i}]") } else { text.clone() };
            if let Some(&first) = ids.get(&text) {
                return Err(TokenizerError::DuplicateToken { text, first, second: id });
            }
            ids.insert(text.clone(), id);
            texts.push(text);
        }

        let in_range = |id: Option<u32>| id.filter(|&id| (id as usize) < n_tokens);
        let id_key = |key: &str, default: Option<u32>| -> Result<Option<u32>> {
            Ok(optional_id(g, key, n_tokens)?.or(in_range(default)))
        };
        let bos = id_key("tokenizer.ggml.bos_token_id", defaults.bos)?;
        let eos = id_key("tokenizer.ggml.eos_token_id", defaults.eos)?;
        let mut eot = id_key("tokenizer.ggml.eot_token_id", None)?;
        let mut eom = id_key("tokenizer.ggml.eom_token_id", None)?;
        let mut fim_pre = id_key("tokenizer.ggml.fim_pre_token_id", None)?;
        let mut fim_suf = id_key("tokenizer.ggml.fim_suf_token_id", None)?;
        let mut fim_mid = id_key("tokenizer.ggml.fim_mid_token_id", None)?;
        let mut fim_pad = id_key("tokenizer.ggml.fim_pad_token_id", None)?;
        let mut fim_rep = id_key("tokenizer.ggml.fim_rep_token_id", None)?;
        let mut fim_sep = id_key("tokenizer.ggml.fim_sep_token_id", None)?;
        // Older files name the infill tokens prefix/suffix/middle.
        fim_pre = fim_pre.or(id_key("tokenizer.ggml.prefix_token_id", None)?);
        fim_suf = fim_suf.or(id_key("tokenizer.ggml.suffix_token_id", None)?);
        fim_mid = fim_mid.or(id_key("tokenizer.ggml.middle_token_id", None)?);

        let add_bos = optional_bool(g, "tokenizer.ggml.add_bos_token")?.unwrap_or(defaults.add_bos);
        let add_eos = optional_bool(g, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let add_space_prefix =
            optional_bool(g, "tokenizer.ggml.add_space_prefix")?.unwrap_or(defaults.add_space_prefix);
        if add_bos && bos.is_none() {
            return Err(bad("tokenizer.ggml.add_bos_token", "is true, but there is no BOS token"));
        }
        if add_eos && eos.is_none() {
            return Err(bad("tokenizer.ggml.add_eos_token", "is true, but there is no EOS token"));
        }

        // Special tokens that converters leave untyped are found by their text, and forced to
        // control type so that they are cut out of input and hidden when decoding.
        let mut find = |slot: &mut Option<u32>, candidates: &[&str]| {
            if slot.is_none() {
                *slot = candidates.iter().find_map(|t| ids.get(*t).copied());
                if let Some(id) = *slot {
                    attrs[id as usize] |= attr::CONTROL;
                }
            }
        };
        find(&mut eot, EOT_TEXTS);
        find(&mut eom, EOM_TEXTS);
        find(&mut fim_pre, FIM_PRE_TEXTS);
        find(&mut fim_suf, FIM_SUF_TEXTS);
        find(&mut fim_mid, FIM_MID_TEXTS);
        find(&mut fim_pad, FIM_PAD_TEXTS);
        find(&mut fim_rep, FIM_REP_TEXTS);
        find(&mut fim_sep, FIM_SEP_TEXTS);

        let mut eog: BTreeSet<u32> = [fim_pad, fim_rep, fim_sep].into_iter().flatten().collect();
        for text in EOG_TEXTS {
            if let Some(&id) = ids.get(*text) {
                eog.insert(id);
                attrs[id as usize] |= attr::CONTROL;
            }
        }
        // gpt-oss: these must always be rendered, so they are user-defined rather than control.
        for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(&id) = ids.get(text) {
                attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());

        // o200k_harmony and solar-open: "<|end|>" ends a message, not the generation.
        let has = |eog: &BTreeSet<u32>, t: &str| ids.get(t).is_some_and(|id| eog.contains(id));
        if let Some(&end) = ids.get("<|end|>")
            && ((has(&eog, "<|return|>") && has(&eog, "<|call|>") && has(&eog, "<|end|>"))
                || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>") && has(&eog, "<|end|>")))
        {
            eog.remove(&end);
            attrs[end as usize] = attr::USER_DEFINED;
        }
        // gemma4 and paddleocr: "</s>" is not an end of generation when tool responses exist.
        if let Some(&s) = ids.get("</s>")
            && has(&eog, "<|tool_response>")
            && has(&eog, "</s>")
        {
            eog.remove(&s);
            attrs[s as usize] = attr::NORMAL;
        }

        let mut specials: Vec<u32> = (0..n_tokens as u32)
            .filter(|&id| attrs[id as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0)
            .collect();
        if specials.len() > MAX_SPECIAL_TOKENS {
            return Err(too_large("special tokens in tokenizer.ggml.token_type", specials.len(), MAX_SPECIAL_TOKENS));
        }
        // Longest first, so that a token is never cut out of a longer one that contains it.
        specials.sort_by_key(|&id| std::cmp::Reverse(texts[id as usize].len()));

        // Phi-3's special tokens swallow the whitespace that follows them (llama.cpp keys this
        // on the model name, as the GGUF has no per-token attributes).
        let name = optional_str(g, "general.name")?.unwrap_or("").to_lowercase();
        if name.contains("phi-3") || name.contains("phi3") {
            for &id in &specials {
                attrs[id as usize] |= attr::RSTRIP;
            }
            if let Some(&id) = ids.get("</s>") {
                attrs[id as usize] |= attr::RSTRIP;
            }
            for text in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(&id) = ids.get(text) {
                    attrs[id as usize] &= !attr::RSTRIP;
                }
            }
        }

        Ok(Self {
            kind,
            texts,
            scores: scores[..n_tokens].to_vec(),
            attrs,
            ids,
            bos,
            eos,
            eot,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            specials,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }
}
