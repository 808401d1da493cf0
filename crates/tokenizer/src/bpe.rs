//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`) on the `tokenizers` crate: llama.cpp's
//! pre-tokenizer regexes as a sequence of isolating splits, the GPT-2 byte-to-character
//! mapping, and a BPE model from the GGUF's tokens and merges.

use std::collections::HashSet;

use gguf::Gguf;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::models::bpe::{BPE, Vocab as BpeVocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

use crate::error::{Result, TokenizerError};
use crate::limits::MAX_MERGES;
use crate::vocab::Vocab;

// The regexes are llama.cpp's (src/llama-vocab.cpp, `llm_tokenizer_bpe`), with C string
// escapes undone. llama.cpp applies each to the pieces the previous one produced, keeping both
// matches and the text between them: a `Split` with `Isolated` behaviour does the same.

/// GPT-2's pattern. llama.cpp drops the final `|\s+` alternative, which changes nothing when
/// unmatched text is kept as its own piece.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's pattern, with the case-insensitive group spelled out as llama.cpp does.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's pattern: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 3.5's pattern: Qwen 2's with combining marks kept on their letters.
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The llama.cpp pre-tokenizer families (`LLAMA_VOCAB_PRE_TYPE_*`) this crate reproduces,
/// chosen by `tokenizer.ggml.pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// No `tokenizer.ggml.pre`, or "default": punctuation runs and digit triples split off
    /// around the GPT-2 pattern.
    Default,
    /// "gpt-2" and the files that reuse GPT-2's pattern (phi-2, mpt, olmo, ...). Also the
    /// fallback for names this crate does not know.
    Gpt2,
    /// "smollm", "starcoder", "refact", "command-r", ...: every digit on its own, then GPT-2.
    StarCoder,
    /// "llama-bpe"/"llama3" (Llama 3), "falcon3", "pixtral", ...: Llama 3's pattern; a word
    /// that is itself a token skips the merges; BOS is added by default.
    Llama3,
    /// "dbrx", "smaug-bpe": Llama 3's pattern with ordinary merging.
    Dbrx,
    /// "qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", ...
    Qwen2,
    /// "qwen35".
    Qwen35,
    /// "glm4", "chatglm-bpe": Llama 3's pattern and no BOS token.
    ChatGlm4,
    /// "falcon".
    Falcon,
    /// "deepseek-coder".
    DeepseekCoder,
    /// "bloom", "poro-chat", "gpt3-finnish".
    Bloom,
}

impl PreTokenizer {
    /// The family for a `tokenizer.ggml.pre` value, and whether the name was recognised (an
    /// unknown name falls back to GPT-2 rather than failing, unlike llama.cpp).
    pub fn from_name(name: Option<&str>) -> (Self, bool) {
        let Some(name) = name else { return (Self::Default, true) };
        let kind = match name {
            "default" => Self::Default,
            "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
            | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo"
            | "jais" | "exaone4" | "trillion" | "granite-docling" => Self::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
                Self::StarCoder
            }
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
            | "jina-v5-nano" => Self::Llama3,
            "dbrx" | "smaug-bpe" => Self::Dbrx,
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" => Self::Qwen2,
            "qwen35" => Self::Qwen35,
            "glm4" | "chatglm-bpe" => Self::ChatGlm4,
            "falcon" => Self::Falcon,
            "deepseek-coder" => Self::DeepseekCoder,
            "bloom" | "poro-chat" | "gpt3-finnish" => Self::Bloom,
            _ => return (Self::Gpt2, false),
        };
        (kind, true)
    }

    /// The regexes llama.cpp applies, in order.
    pub fn regexes(self) -> &'static [&'static str] {
        match self {
            Self::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            Self::Gpt2 => &[GPT2],
            Self::StarCoder => &[r"\p{N}", GPT2],
            Self::Llama3 | Self::Dbrx | Self::ChatGlm4 => &[LLAMA3],
            Self::Qwen2 => &[QWEN2],
            Self::Qwen35 => &[QWEN35],
            Self::Falcon => &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
            Self::DeepseekCoder => &[r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}"],
            Self::Bloom => &[r" ?[^(\s|.,!?…。，、।۔،)]+"],
        }
    }

    /// llama.cpp's `ignore_merges`: a pre-tokenized word that is a token is emitted whole.
    fn ignore_merges(self) -> bool {
        self == Self::Llama3
    }

    /// Whether BOS is added when `tokenizer.ggml.add_bos_token` is absent.
    pub(crate) fn adds_bos_by_default(self) -> bool {
        self == Self::Llama3
    }

    /// ChatGLM's files have no BOS token unless the file names one.
    pub(crate) fn has_default_bos(self) -> bool {
        self != Self::ChatGlm4
    }
}

/// A byte-level BPE tokenizer for the text between special tokens.
pub(crate) struct BpeModel {
    inner: tokenizers::Tokenizer,
}

impl BpeModel {
    pub fn new(g: &Gguf, vocab: &Vocab, pre: PreTokenizer) -> Result<Self> {
        const KEY: &str = "tokenizer.ggml.merges";
        let raw_merges = g.get_strings(KEY)?;
        if raw_merges.len() > MAX_MERGES {
            return Err(TokenizerError::TooLarge {
                what: "entries in tokenizer.ggml.merges",
                size: raw_merges.len() as u64,
                limit: MAX_MERGES as u64,
            });
        }

        let mut bpe_vocab = BpeVocab::default();
        for (id, text) in vocab.texts.iter().enumerate() {
            bpe_vocab.insert(text.clone(), id as u32);
        }

        let mut merges = Vec::with_capacity(raw_merges.len());
        let mut seen = HashSet::with_capacity(raw_merges.len());
        for (index, merge) in raw_merges.iter().enumerate() {
            let bad = |reason: String| TokenizerError::BadMerge { index, merge: merge.clone(), reason };
            // llama.cpp splits at the first space after the first byte.
            let split = merge.as_bytes().iter().skip(1).position(|&b| b == b' ').map(|p| p + 1);
            let Some(split) = split else { return Err(bad("no space between the two parts".into())) };
            let (left, right) = (&merge[..split], &merge[split + 1..]);
            for part in [left, right, &format!("{left}{right}")] {
                if !vocab.ids.contains_key(part) {
                    return Err(bad(format!("{part:?} is not in the vocabulary")));
                }
            }
            // The first occurrence sets the rank, as in llama.cpp.
            if seen.insert((left, right)) {
                merges.push((left.to_string(), right.to_string()));
            }
        }

        let model = BPE::builder()
            .vocab_and_merges(bpe_vocab, merges)
            .ignore_merges(pre.ignore_merges())
            .build()
            .map_err(|e| TokenizerError::Bpe(e.to_string()))?;

        let mut steps = Vec::with_capacity(pre.regexes().len() + 1);
        for regex in pre.regexes() {
            let split = Split::new(SplitPattern::Regex((*regex).to_string()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| TokenizerError::Bpe(format!("pre-tokenizer regex {regex:?}: {e}")))?;
            steps.push(PreTokenizerWrapper::Split(split));
        }
        // Only the byte-to-character mapping: the splitting is done above.
        steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)));

        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_pre_tokenizer(Some(Sequence::new(steps)));
        Ok(Self { inner })
    }

    /// Appends the ids of `text`, which contains no special tokens.
    pub fn tokenize(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let encoding = self.inner.encode_fast(text, false).map_err(|e| TokenizerError::Bpe(e.to_string()))?;
        out.extend_from_slice(encoding.get_ids());
        Ok(())
    }
}

/// GPT-2's reversible mapping of bytes to printable characters: printable Latin-1 bytes map to
/// themselves, the others to U+0100 onwards in byte order. Returns the inverse, char to byte.
pub(crate) fn byte_level_decoder() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    let mut map = std::collections::HashMap::with_capacity(256);
    for b in 0..=255u8 {
        let c = if printable(b) {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        // Every value here is below U+0200, a valid scalar value.
        if let Some(c) = char::from_u32(c) {
            map.insert(c, b);
        }
    }
    map
}
