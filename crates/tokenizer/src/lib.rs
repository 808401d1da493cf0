//! A tokenizer and chat template built from a GGUF's metadata, giving the token ids llama.cpp
//! gives.
//!
//! [`Tokenizer::encode`] follows `llama_tokenize(text, add_special, parse_special)`: special
//! tokens are cut out of the text first (control tokens only when `parse_special`,
//! user-defined tokens always), then each piece of text is tokenized by the file's model:
//!
//! - `"gpt2"`: byte-level BPE (the `tokenizers` crate) after llama.cpp's pre-tokenizer regexes
//!   for `tokenizer.ggml.pre` (see [`PreTokenizer`]);
//! - `"llama"`: SentencePiece BPE by token score with `<0xXX>` byte fallback, as llama.cpp's
//!   SPM tokenizer.
//!
//! [`Tokenizer::decode`] and [`StreamDecoder`] join the tokens' pieces as llama.cpp's
//! `token_to_piece` spells them. [`ChatTemplate`] renders `tokenizer.chat_template`, and
//! [`Tokenizer::encode_chat`] tokenizes a rendered chat so that only the template's own text
//! can write control tokens (a message containing `<|im_start|>` cannot open a turn).
//!
//! Hostile metadata is bounded by [`limits`]: vocabulary, token, merge and template sizes,
//! and the work and output of one template render.
//!
//! Everything builds for `wasm32-unknown-unknown`: the `tokenizers` crate is used with
//! `fancy-regex` instead of Oniguruma.

mod bpe;
mod chat;
mod decode;
mod error;
pub mod limits;
mod special;
mod spm;
mod stream;
mod template;
mod vocab;

use gguf::Gguf;

use crate::bpe::BpeModel;
use crate::special::Fragment;
use crate::vocab::{Defaults, Vocab, optional_str};

pub use crate::bpe::PreTokenizer;
pub use crate::error::{Result, TokenizerError};
pub use crate::stream::StreamDecoder;
pub use crate::template::{CHATML_TEMPLATE, ChatMessage, ChatTemplate, GEMMA_TEMPLATE, family_template};
pub use crate::vocab::ModelKind;

enum Model {
    Bpe(Box<BpeModel>),
    Spm,
}

/// A GGUF's tokenizer.
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    /// Each token's bytes with special tokens rendered (llama.cpp's piece cache).
    pieces: Vec<Vec<u8>>,
    pre_tokenizer: Option<PreTokenizer>,
    pre_tokenizer_known: bool,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.vocab.kind)
            .field("pre_tokenizer", &self.pre_tokenizer)
            .field("vocab_size", &self.vocab.len())
            .field("bos", &self.vocab.bos)
            .field("eos", &self.vocab.eos)
            .finish()
    }
}

impl Tokenizer {
    /// Whether [`Tokenizer::from_gguf`] knows this file's tokenizer model, without building it;
    /// also refuses vocabularies and chat templates over [`limits`], so that a model can be
    /// refused from its header before it is downloaded.
    pub fn check_supported(g: &Gguf) -> Result<()> {
        match g.get_str("tokenizer.ggml.model")? {
            "gpt2" | "llama" => {}
            other => return Err(TokenizerError::Unsupported(other.to_string())),
        }
        let tokens = g.get_array("tokenizer.ggml.tokens")?.len();
        if tokens > limits::MAX_VOCAB_TOKENS {
            let (size, limit) = (tokens as u64, limits::MAX_VOCAB_TOKENS as u64);
            return Err(TokenizerError::TooLarge { what: "tokens in tokenizer.ggml.tokens", size, limit });
        }
        if let Some(template) = optional_str(g, "tokenizer.chat_template")?
            && template.len() > limits::MAX_TEMPLATE_BYTES
        {
            let (size, limit) = (template.len() as u64, limits::MAX_TEMPLATE_BYTES as u64);
            return Err(TokenizerError::TooLarge { what: "tokenizer.chat_template bytes", size, limit });
        }
        Ok(())
    }

    /// Builds the tokenizer described by the `tokenizer.ggml.*` keys.
    pub fn from_gguf(g: &Gguf) -> Result<Self> {
        let model = g.get_str("tokenizer.ggml.model")?;
        let (vocab, model, pre_tokenizer, known) = match model {
            "gpt2" => {
                // An empty name is a missing one, as in llama.cpp.
                let pre_name = optional_str(g, "tokenizer.ggml.pre")?.filter(|name| !name.is_empty());
                let (pre, known) = PreTokenizer::from_name(pre_name);
                // llama.cpp's defaults for BPE files without bos/eos keys (a Falcon legacy).
                let defaults = Defaults {
                    bos: pre.has_default_bos().then_some(11),
                    eos: Some(11),
                    add_bos: pre.adds_bos_by_default(),
                    add_space_prefix: false,
                };
                let vocab = Vocab::load(g, ModelKind::Bpe, defaults)?;
                let model = BpeModel::new(g, &vocab, pre)?;
                (vocab, Model::Bpe(Box::new(model)), Some(pre), known)
            }
            "llama" => {
                let defaults = Defaults { bos: Some(1), eos: Some(2), add_bos: true, add_space_prefix: true };
                (Vocab::load(g, ModelKind::Spm, defaults)?, Model::Spm, None, true)
            }
            other => return Err(TokenizerError::Unsupported(other.to_string())),
        };
        let pieces = decode::token_pieces(&vocab);
        Ok(Self { vocab, model, pieces, pre_tokenizer, pre_tokenizer_known: known })
    }

    /// Token ids for `text`, as `llama_tokenize(text, add_special, parse_special)`.
    ///
    /// `add_special` adds BOS when the file asks for it (`tokenizer.ggml.add_bos_token`, true
    /// by default for SentencePiece and Llama 3, false otherwise) and EOS when
    /// `tokenizer.ggml.add_eos_token` is true. `parse_special` lets control tokens written in
    /// the text (`<|im_start|>`) become their ids; without it they are tokenized as text.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        self.encode_fragments(special::partition(&self.vocab, text, parse_special), text.len(), add_special)
    }

    /// Ids of text already cut into special tokens and the text between them.
    fn encode_fragments<'a>(
        &self,
        fragments: impl IntoIterator<Item = Fragment<'a>>,
        text_len: usize,
        add_special: bool,
    ) -> Result<Vec<u32>> {
        let vocab = &self.vocab;
        let mut out = Vec::with_capacity(text_len / 3 + 2);
        if add_special && vocab.add_bos {
            out.extend(vocab.bos);
        }
        // SentencePiece: a space goes before text at the start or after a special token.
        let mut after_special = true;
        for fragment in fragments {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text(text) => match &self.model {
                    Model::Bpe(bpe) => bpe.tokenize(text, &mut out)?,
                    Model::Spm => {
                        let prefix = if vocab.add_space_prefix && after_special { " " } else { "" };
                        let escaped = format!("{prefix}{text}").replace(' ', "▁");
                        spm::tokenize(vocab, &escaped, &mut out)?;
                        after_special = false;
                    }
                },
            }
        }
        if add_special && vocab.add_eos {
            out.extend(vocab.eos);
        }
        Ok(out)
    }

    /// The text of `ids`: their pieces joined, invalid UTF-8 replaced by U+FFFD. With
    /// `skip_special`, control tokens (BOS, `<|im_end|>`, ...) print nothing; otherwise their
    /// text. SentencePiece's leading space is dropped as llama.cpp's detokenizer drops it.
    /// llama.cpp's optional clean-up of spaces before punctuation is not applied, so that
    /// streamed text ([`StreamDecoder`]) and this agree.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            bytes.extend_from_slice(self.piece(id, skip_special, i == 0)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The bytes `id` contributes to decoded text, `first` when it starts the sequence.
    pub(crate) fn piece(&self, id: u32, skip_special: bool, first: bool) -> Result<&[u8]> {
        let piece =
            self.pieces.get(id as usize).ok_or(TokenizerError::BadTokenId { id, vocab_size: self.vocab.len() })?;
        if decode::is_hidden(&self.vocab, id, skip_special) {
            return Ok(&[]);
        }
        if first && decode::strip_leading_space(piece, &self.vocab, id, skip_special) {
            return Ok(&piece[1..]);
        }
        Ok(piece)
    }

    /// The bytes of one token decoded alone with special tokens rendered, as llama.cpp's
    /// `detokenize({id}, true)` gives them (SentencePiece's leading space dropped).
    pub fn token_piece(&self, id: u32) -> Result<&[u8]> {
        self.piece(id, false, true)
    }

    /// The beginning-of-sequence token, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.vocab.bos
    }

    /// The end-of-sequence token, if the vocabulary has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.vocab.eos
    }

    /// The end-of-turn token: `tokenizer.ggml.eot_token_id`, else the first of `<|eot_id|>`,
    /// `<|im_end|>`, `<|end|>`, `<end_of_turn>`, `<|endoftext|>`, ... that the vocabulary has.
    pub fn eot_id(&self) -> Option<u32> {
        self.vocab.eot
    }

    /// Whether generating `id` ends the reply: EOS, EOT, and every token llama.cpp counts as
    /// end of generation (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, infill separators, ...).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.vocab.eog.contains(&id)
    }

    /// All end-of-generation ids, ascending.
    pub fn end_of_generation_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.vocab.eog.iter().copied()
    }

    /// Whether `encode(.., add_special = true, ..)` puts BOS first.
    pub fn adds_bos(&self) -> bool {
        self.vocab.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` puts EOS last.
    pub fn adds_eos(&self) -> bool {
        self.vocab.add_eos
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The token's text as stored in the vocabulary (byte-level or "▁" spelling, not decoded).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id as usize).map(String::as_str)
    }

    /// The id whose vocabulary text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.ids.get(text).copied()
    }

    /// Whether the token is a control token (hidden when decoding with `skip_special`).
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.attrs.get(id as usize).is_some_and(|a| a & vocab::attr::CONTROL != 0)
    }

    pub fn model_kind(&self) -> ModelKind {
        self.vocab.kind
    }

    /// The pre-tokenizer family of a BPE vocabulary (`None` for SentencePiece).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        self.pre_tokenizer
    }

    /// False when `tokenizer.ggml.pre` named a pre-tokenizer this crate does not know and GPT-2's
    /// was used instead; ids may then differ from llama.cpp's (which refuses such files).
    pub fn pre_tokenizer_recognized(&self) -> bool {
        self.pre_tokenizer_known
    }
}
