//! Bounds on what a GGUF's tokenizer metadata and chat template may ask for. Each is far above
//! what real models use and small enough that a hostile file fails with a typed error instead
//! of exhausting memory or time.

/// Tokens in `tokenizer.ggml.tokens`. Real vocabularies have up to ~262k (Gemma 3).
pub const MAX_VOCAB_TOKENS: usize = 1 << 20;
/// Bytes of one token's text. Real vocabularies stay under a few hundred.
pub const MAX_TOKEN_BYTES: usize = 4 * 1024;
/// Control, user-defined and unknown tokens: each one is searched for in every text encoded,
/// so their number multiplies the cost of tokenizing. Real vocabularies have up to ~7k (Gemma's
/// unused slots).
pub const MAX_SPECIAL_TOKENS: usize = 32 * 1024;
/// Entries in `tokenizer.ggml.merges`. Real BPE vocabularies have up to ~300k.
pub const MAX_MERGES: usize = 1 << 21;
/// Bytes of `tokenizer.chat_template`. Real templates, tool-calling ones included, stay under
/// ~30 KB.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Instructions one render of a chat template may execute (minijinja's fuel). A real template
/// spends a few dozen per message; this allows tens of thousands of messages and stops a
/// hostile loop after well under a second.
pub const TEMPLATE_FUEL: u64 = 5_000_000;
/// The rendered prompt may be at most this many bytes longer than four times the messages'
/// contents (templates repeat a content at most once or twice).
pub const MAX_RENDERED_OVERHEAD_BYTES: usize = 1024 * 1024;
