//! Deterministic synthetic GGUFs: small models with pseudo-random weights in several
//! architectures (llama, Qwen 2, Qwen 3, Gemma 3, Phi-3), configurations and tensor types, each
//! with its architecture's metadata keys and tensor names, used to check the engine against
//! llama.cpp on more than the one real model the repository fetches.
//!
//! Shared by `crates/llm/tests/synthetic_models.rs`, which builds the files in memory, and by
//! `crates/llm/examples/synth_llama.rs`, which writes them for
//! `tests/fixtures/make_synthetic_reference.py` (llama.cpp's side). Both must produce the same
//! bytes: the fixture records each file's SHA-256 and the test checks it, so changing anything
//! here means regenerating the fixture.
//!
//! Determinism: one xorshift64* stream per tensor (seeded from the configuration's seed and the
//! tensor's name), and only integer and basic IEEE arithmetic (no transcendental functions,
//! whose last bits may differ between platforms' math libraries). Gaussian-like values are
//! Irwin–Hall sums of four uniforms.
//!
//! Quantized tensors are not quantized from floats: their blocks are written directly, the
//! quantized values as random bits (so every bit of every field is exercised) and the block
//! scales chosen so each tensor has roughly the standard deviation asked for and mean zero.

#![allow(dead_code)]

use gguf::{Array, GgmlType, GgufWriter, Value};
use half::{bf16, f16};

/// The names of the configurations, in a fixed order.
pub const CONFIGS: [&str; 8] = ["gqa_q4_0", "kquants", "mha_q5", "q8_linear_rope", "qwen2_bias", "qwen3_qk_norm", "gemma3_swa", "phi3_fused"];

/// `general.architecture`, which also prefixes the model's metadata keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    /// Biases on q, k and v.
    Qwen2,
    /// Per-head q/k norms, `key_length` of its own.
    Qwen3,
    /// Embedding × √d, pre- and post-norms, q/k norms, GeGLU, sliding-window layers.
    Gemma3,
    /// Fused `attn_qkv` and `ffn_up` (gate and up).
    Phi3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma3 => "gemma3",
            Self::Phi3 => "phi3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocab {
    /// `tokenizer.ggml.model = "gpt2"`: GPT-2's 256 byte characters, a few merges, control tokens.
    Gpt2,
    /// `tokenizer.ggml.model = "llama"`: SentencePiece pieces with scores and `<0xNN>` byte tokens.
    Spm,
}

/// Tensor types of one configuration.
#[derive(Debug, Clone, Copy)]
pub struct Types {
    pub token_embd: GgmlType,
    /// `None`: no `output.weight`, the head is tied to `token_embd`.
    pub output: Option<GgmlType>,
    pub attn_q: GgmlType,
    pub attn_k: GgmlType,
    pub attn_v: GgmlType,
    pub attn_output: GgmlType,
    pub ffn_gate: GgmlType,
    pub ffn_up: GgmlType,
    pub ffn_down: GgmlType,
}

/// One synthetic model.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: &'static str,
    pub arch: Arch,
    /// `{arch}.attention.sliding_window` (Gemma 3).
    pub sliding_window: Option<usize>,
    /// `tokenizer.ggml.pre` of a GPT-2-style vocabulary.
    pub bpe_pre: &'static str,
    /// `tokenizer.ggml.add_space_prefix`, written when set (Gemma's SentencePiece has none).
    pub add_space_prefix: Option<bool>,
    /// Write `{arch}.attention.key_length` and `value_length` (= head_dim).
    pub write_head_dim: bool,
    /// Standard deviation of the q/k/v biases (Qwen 2).
    pub bias_sigma: f64,
    /// Control tokens appended to a SentencePiece vocabulary (llama.cpp looks Phi-3's up by text).
    pub extra_control: &'static [&'static str],
    pub seed: u64,
    pub blocks: usize,
    pub embedding: usize,
    pub feed_forward: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub vocab_kind: Vocab,
    pub context_length: usize,
    pub rope_base: f32,
    /// `llama.rope.scaling.type = "linear"` with this `llama.rope.scaling.factor`.
    pub rope_linear_factor: Option<f32>,
    /// Write `rope_freqs.weight` (Llama 3.1-style per-pair frequency divisors).
    pub rope_freqs: bool,
    /// Write `llama.rope.dimension_count` (= head_dim; llama.cpp requires that for llama).
    pub write_rope_dims: bool,
    /// Write `llama.vocab_size` (otherwise the token list's length is the vocabulary size).
    pub write_vocab_size: bool,
    pub rms_eps: f32,
    pub types: Types,
    /// Standard deviation of the token embeddings.
    pub embd_sigma: f64,
    /// Standard deviation of an untied output head, times sqrt(embedding).
    pub output_gain: f64,
    /// Standard deviation of attn_q/attn_k, times sqrt(embedding): sets how peaked attention is.
    pub qk_gain: f64,
    /// Standard deviation of attn_v/ffn_gate/ffn_up times sqrt(fan-in).
    pub in_gain: f64,
    /// Standard deviation of attn_output/ffn_down times sqrt(fan-in).
    pub out_gain: f64,
}

pub fn spec(name: &str) -> Option<Spec> {
    use GgmlType::*;
    let base = Spec {
        name: "",
        arch: Arch::Llama,
        sliding_window: None,
        bpe_pre: "gpt-2",
        add_space_prefix: None,
        write_head_dim: false,
        bias_sigma: 0.0,
        extra_control: &[],
        seed: 0,
        blocks: 2,
        embedding: 256,
        feed_forward: 512,
        heads: 8,
        kv_heads: 2,
        head_dim: 32,
        vocab: 400,
        vocab_kind: Vocab::Gpt2,
        context_length: 512,
        rope_base: 10_000.0,
        rope_linear_factor: None,
        rope_freqs: false,
        write_rope_dims: false,
        write_vocab_size: false,
        rms_eps: 1e-5,
        types: Types {
            token_embd: Q8_0,
            output: Some(Q6K),
            attn_q: Q4_0,
            attn_k: Q4_0,
            attn_v: Q4_0,
            attn_output: Q4_0,
            ffn_gate: Q4_0,
            ffn_up: Q4_0,
            ffn_down: Q4_0,
        },
        embd_sigma: 1.0,
        output_gain: 1.0,
        qk_gain: 2.0,
        in_gain: 1.0,
        out_gain: 1.0,
    };
    Some(match name {
        // Grouped-query attention (8 query heads sharing 2 key/value heads), Q4_0 blocks, a
        // Q8_0 embedding table and a separate Q6_K output head.
        "gqa_q4_0" => Spec { name: "gqa_q4_0", seed: 0x6a09_e667_f3bc_c908, write_rope_dims: true, ..base },
        // K-quants with mixed layouts in one block (Q4_K query/key and Q6_K value projections
        // cannot be stacked into one matrix), head_dim 64, three blocks, an F32 embedding table
        // tied to the output head, rms eps 1e-6, a SentencePiece vocabulary.
        "kquants" => Spec {
            name: "kquants",
            seed: 0xbb67_ae85_84ca_a73b,
            blocks: 3,
            embedding: 256,
            feed_forward: 768,
            heads: 4,
            kv_heads: 2,
            head_dim: 64,
            vocab: 512,
            vocab_kind: Vocab::Spm,
            write_vocab_size: true,
            rms_eps: 1e-6,
            types: Types {
                token_embd: F32,
                output: None,
                attn_q: Q4K,
                attn_k: Q4K,
                attn_v: Q6K,
                attn_output: Q5K,
                ffn_gate: Q4K,
                ffn_up: Q4K,
                ffn_down: Q6K,
            },
            embd_sigma: 0.25,
            ..base
        },
        // Multi-head attention (as many key/value heads as query heads), Q5_0 and Q5_1 (which
        // share a device layout, so they stack), a BF16 embedding table and an F16 output
        // head, Llama 3-style rope: base 500000 and rope_freqs.weight.
        "mha_q5" => Spec {
            name: "mha_q5",
            seed: 0x3c6e_f372_fe94_f82b,
            blocks: 2,
            embedding: 192,
            feed_forward: 416,
            heads: 6,
            kv_heads: 6,
            head_dim: 32,
            vocab: 333,
            vocab_kind: Vocab::Spm,
            rope_base: 500_000.0,
            rope_freqs: true,
            write_rope_dims: true,
            types: Types {
                token_embd: BF16,
                output: Some(F16),
                attn_q: Q5_0,
                attn_k: Q5_1,
                attn_v: Q5_0,
                attn_output: Q5_1,
                ffn_gate: Q5_1,
                ffn_up: Q5_0,
                ffn_down: Q5_1,
            },
            ..base
        },
        // Q8_0 everywhere, one key/value head for four query heads, four blocks, a Q8_0
        // embedding table tied to the output head, linear rope scaling with factor 2.
        "q8_linear_rope" => Spec {
            name: "q8_linear_rope",
            seed: 0xa54f_f53a_5f1d_36f1,
            blocks: 4,
            embedding: 128,
            feed_forward: 352,
            heads: 4,
            kv_heads: 1,
            head_dim: 32,
            vocab: 300,
            rope_linear_factor: Some(2.0),
            write_rope_dims: true,
            write_vocab_size: true,
            types: Types {
                token_embd: Q8_0,
                output: None,
                attn_q: Q8_0,
                attn_k: Q8_0,
                attn_v: Q8_0,
                attn_output: Q8_0,
                ffn_gate: Q8_0,
                ffn_up: Q8_0,
                ffn_down: Q8_0,
            },
            embd_sigma: 0.3,
            ..base
        },
        // Qwen 2: biases on the query, key and value projections, NeoX rope, a byte-level BPE
        // vocabulary with Qwen 2's pre-tokenizer, K-quants and a tied Q8_0 head.
        "qwen2_bias" => Spec {
            name: "qwen2_bias",
            arch: Arch::Qwen2,
            bpe_pre: "qwen2",
            bias_sigma: 0.5,
            seed: 0x510e_527f_ade6_82d1,
            blocks: 2,
            embedding: 256,
            feed_forward: 512,
            heads: 4,
            kv_heads: 2,
            head_dim: 64,
            vocab: 352,
            rope_base: 1_000_000.0,
            write_rope_dims: false,
            rms_eps: 1e-6,
            types: Types {
                token_embd: Q8_0,
                output: None,
                attn_q: Q4K,
                attn_k: Q4K,
                attn_v: Q6K,
                attn_output: Q4K,
                ffn_gate: Q4K,
                ffn_up: Q4K,
                ffn_down: Q6K,
            },
            // Larger embeddings made the tied head predict the current token at every step.
            embd_sigma: 0.1,
            ..base
        },
        // Qwen 3: q/k RMSNorm per head, a head size of its own (4 heads of 64 on a width of
        // 192), NeoX rope, Qwen 2's BPE pre-tokenizer, Q8_0 and Q5_1 weights, an untied head.
        "qwen3_qk_norm" => Spec {
            name: "qwen3_qk_norm",
            arch: Arch::Qwen3,
            bpe_pre: "qwen2",
            write_head_dim: true,
            seed: 0x9b05_688c_2b3e_6c1f,
            blocks: 3,
            embedding: 192,
            feed_forward: 384,
            heads: 4,
            kv_heads: 2,
            head_dim: 64,
            vocab: 320,
            rope_base: 1_000_000.0,
            rms_eps: 1e-6,
            types: Types {
                token_embd: Q8_0,
                output: Some(Q8_0),
                attn_q: Q8_0,
                attn_k: Q8_0,
                attn_v: Q8_0,
                attn_output: Q5_1,
                ffn_gate: Q8_0,
                ffn_up: Q8_0,
                ffn_down: Q5_1,
            },
            ..base
        },
        // Gemma 3: six blocks, so five sliding-window layers (window 5, shorter than the prompt)
        // and one global layer; head size 64 on a width of 128; embeddings × √d; GeGLU; pre- and
        // post-norms; q/k norms; a SentencePiece vocabulary without a space prefix; Q5_0 and Q8_0
        // weights as in the real 270M file. Small embeddings and an untied head: with the tied
        // head and larger embeddings, the current token's own embedding (× √d) dominated the
        // residual and every step predicted the same token.
        "gemma3_swa" => Spec {
            name: "gemma3_swa",
            arch: Arch::Gemma3,
            sliding_window: Some(5),
            add_space_prefix: Some(false),
            write_head_dim: true,
            seed: 0x1f83_d9ab_fb41_bd6b,
            blocks: 6,
            embedding: 128,
            feed_forward: 256,
            heads: 2,
            kv_heads: 1,
            head_dim: 64,
            vocab: 300,
            vocab_kind: Vocab::Spm,
            rope_base: 1_000_000.0,
            rms_eps: 1e-6,
            types: Types {
                token_embd: Q8_0,
                output: Some(Q8_0),
                attn_q: Q5_0,
                attn_k: Q5_0,
                attn_v: Q8_0,
                attn_output: Q5_0,
                ffn_gate: Q5_0,
                ffn_up: Q5_0,
                ffn_down: Q8_0,
            },
            embd_sigma: 0.05,
            ..base
        },
        // Phi-3: fused q/k/v (Q4_K) and gate/up (Q4_K) matrices, NeoX rope, a SentencePiece
        // vocabulary, an untied Q6_K head.
        "phi3_fused" => Spec {
            name: "phi3_fused",
            arch: Arch::Phi3,
            extra_control: &["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"],
            seed: 0x5be0_cd19_137e_2179,
            blocks: 2,
            embedding: 256,
            feed_forward: 256,
            heads: 4,
            kv_heads: 4,
            head_dim: 64,
            vocab: 320,
            vocab_kind: Vocab::Spm,
            write_rope_dims: true,
            types: Types {
                token_embd: Q8_0,
                output: Some(Q6K),
                attn_q: Q4K,
                attn_k: Q4K,
                attn_v: Q4K,
                attn_output: Q5K,
                ffn_gate: Q4K,
                ffn_up: Q4K,
                ffn_down: Q6K,
            },
            ..base
        },
        _ => return None,
    })
}

// --- pseudo-random numbers ----------------------------------------------------------------------

/// xorshift64* (Vigna): 64 bits of state, the high 32 bits of the scrambled output used.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: &str) -> Self {
        // FNV-1a of the stream name, mixed into the seed; the state must not be zero.
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in stream.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Rng((seed ^ h) | 1);
        for _ in 0..8 {
            rng.next_u32();
        }
        rng
    }

    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    pub fn byte(&mut self) -> u8 {
        (self.next_u32() >> 24) as u8
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.next_u32() as f64 / 4_294_967_296.0
    }

    /// Uniform integer in [lo, hi].
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + ((self.next_u32() as u64 * (hi - lo + 1) as u64) >> 32) as u32
    }

    /// Roughly normal with mean 0 and variance 1 (Irwin–Hall sum of four uniforms).
    pub fn normal(&mut self) -> f64 {
        let s = self.uniform() + self.uniform() + self.uniform() + self.uniform();
        (s - 2.0) * 1.732_050_807_568_877_2
    }
}

// --- tensor data ---------------------------------------------------------------------------------

fn put_f16(out: &mut Vec<u8>, x: f64) -> f32 {
    let h = f16::from_f64(x);
    out.extend_from_slice(&h.to_le_bytes());
    h.to_f32()
}

/// Standard deviation of a uniform integer on [0, n).
fn uniform_std(n: f64) -> f64 {
    // sqrt((n^2 - 1) / 12) for the few n used, precomputed to stay clear of libm.
    match n as u32 {
        16 => 4.609_772_228_646_444,
        32 => 9.233_092_656_309_694,
        64 => 18.472_953_201_911_167,
        256 => 73.900_834_456_712_05,
        _ => unreachable!(),
    }
}

/// Pack eight 6-bit scales and mins into Q4_K/Q5_K's 12 bytes (the inverse of ggml's
/// `get_scale_min_k4`).
fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
    s
}

/// `rows × cols` values of type `ty` with standard deviation about `sigma` and mean about 0,
/// row-major (ggml order).
pub fn tensor_data(ty: GgmlType, rows: usize, cols: usize, sigma: f64, rng: &mut Rng) -> Vec<u8> {
    let n = rows * cols;
    let (block, bytes) = ty.block_layout().unwrap();
    assert_eq!(cols % block, 0, "{ty} rows need a multiple of {block} values");
    let mut out = Vec::with_capacity(n / block * bytes);
    // Per-block scale jitter, so blocks differ in magnitude.
    let jitter = |rng: &mut Rng| 0.75 + 0.5 * rng.uniform();
    match ty {
        GgmlType::F32 => (0..n).for_each(|_| out.extend_from_slice(&((sigma * rng.normal()) as f32).to_le_bytes())),
        GgmlType::F16 => (0..n).for_each(|_| out.extend_from_slice(&f16::from_f64(sigma * rng.normal()).to_le_bytes())),
        GgmlType::BF16 => (0..n).for_each(|_| out.extend_from_slice(&bf16::from_f64(sigma * rng.normal()).to_le_bytes())),
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
            let levels = match ty {
                GgmlType::Q4_0 | GgmlType::Q4_1 => 16.0,
                GgmlType::Q5_0 | GgmlType::Q5_1 => 32.0,
                _ => 256.0,
            };
            for _ in 0..n / block {
                let block_end = out.len() + bytes;
                let d = put_f16(&mut out, sigma * jitter(rng) / uniform_std(levels));
                if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
                    // The min: centre the block, give or take a tenth of a step.
                    put_f16(&mut out, -(d as f64) * ((levels - 1.0) / 2.0 + 0.2 * (rng.uniform() - 0.5)));
                }
                // The rest (Q5's high-bit word, the packed values): random bits.
                while out.len() < block_end {
                    out.push(rng.byte());
                }
            }
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            let five = ty == GgmlType::Q5K;
            let levels = if five { 32.0 } else { 16.0 };
            // Sub-block scales are 16..=63 (so the high bits of the packed 6-bit fields are
            // used) and the min of each sub-block centres it: dmin * m ≈ d * sc * (levels-1)/2.
            for _ in 0..n / block {
                let d = put_f16(&mut out, sigma * jitter(rng) / (uniform_std(levels) * 39.5)) as f64;
                let dmin = put_f16(&mut out, d * levels / 2.0) as f64;
                let mut sc = [0u8; 8];
                let mut m = [0u8; 8];
                for j in 0..8 {
                    sc[j] = rng.range(16, 63) as u8;
                    let centre = d * sc[j] as f64 * (levels - 1.0) / 2.0 / dmin;
                    let jittered = centre + 2.0 * (rng.uniform() - 0.5);
                    m[j] = (jittered + 0.5).clamp(0.0, 63.0) as u8;
                }
                out.extend_from_slice(&pack_scale_min_k4(&sc, &m));
                let q_bytes = if five { 32 + 128 } else { 128 };
                (0..q_bytes).for_each(|_| out.push(rng.byte()));
            }
        }
        GgmlType::Q6K => {
            // ql, qh: random 6-bit values; scales: signed, magnitude 16..=127.
            for _ in 0..n / block {
                (0..192).for_each(|_| out.push(rng.byte()));
                for _ in 0..16 {
                    let s = rng.range(16, 127) as i8;
                    out.push(if rng.next_u32() & 1 == 1 { -s } else { s } as u8);
                }
                put_f16(&mut out, sigma * jitter(rng) / (uniform_std(64.0) * 71.5));
            }
        }
        other => panic!("no synthetic data for {other}"),
    }
    assert_eq!(out.len(), n / block * bytes);
    out
}

// --- vocabularies --------------------------------------------------------------------------------

/// GPT-2's byte-to-character table: the 256 single-character tokens of a byte-level vocabulary.
fn byte_chars() -> Vec<String> {
    let printable = |b: u32| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256;
    (0..256u32)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(c).unwrap().to_string()
        })
        .collect()
}

const TYPE_NORMAL: i32 = 1;
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_BYTE: i32 = 6;

/// Pad `tokens` to `size` with filler pieces (normal tokens no merge produces).
fn fill(tokens: &mut Vec<(String, f32, i32)>, size: usize, prefix: &str) {
    let mut i = 0;
    while tokens.len() < size {
        tokens.push((format!("{prefix}{i}"), -100.0 - i as f32, TYPE_NORMAL));
        i += 1;
    }
    assert_eq!(tokens.len(), size, "vocabulary larger than the configuration's size");
}

fn vocab_metadata(w: &mut GgufWriter, s: &Spec) {
    let mut tokens: Vec<(String, f32, i32)>;
    match s.vocab_kind {
        Vocab::Gpt2 => {
            tokens = byte_chars().into_iter().map(|t| (t, 0.0, TYPE_NORMAL)).collect();
            let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"];
            for m in merges {
                tokens.push((m.replace(' ', ""), 0.0, TYPE_NORMAL));
            }
            let bos = tokens.len() as u32;
            for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
                tokens.push((t.into(), 0.0, TYPE_CONTROL));
            }
            fill(&mut tokens, s.vocab, "x");
            let merges = merges.iter().map(|m| m.to_string()).collect();
            w.metadata("tokenizer.ggml.model", Value::String("gpt2".into()))
                .metadata("tokenizer.ggml.pre", Value::String(s.bpe_pre.into()))
                .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens.iter().map(|t| t.0.clone()).collect())))
                .metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(tokens.iter().map(|t| t.2).collect())))
                .metadata("tokenizer.ggml.merges", Value::Array(Array::String(merges)))
                .metadata("tokenizer.ggml.bos_token_id", Value::U32(bos))
                .metadata("tokenizer.ggml.eos_token_id", Value::U32(bos + 2))
                .metadata("tokenizer.ggml.add_bos_token", Value::Bool(false));
        }
        Vocab::Spm => {
            tokens = vec![("<unk>".into(), 0.0, TYPE_UNKNOWN), ("<s>".into(), 0.0, TYPE_CONTROL), ("</s>".into(), 0.0, TYPE_CONTROL)];
            tokens.extend((0..256).map(|b| (format!("<0x{b:02X}>"), 0.0, TYPE_BYTE)));
            let pieces = [
                "▁", "a", "d", "e", "h", "l", "o", "r", "t", "w", "he", "ll", "▁t", "▁w", "or", "ld", "▁the", "▁he", "▁hell",
                "▁hello", "▁wor", "▁world",
            ];
            tokens.extend(pieces.iter().enumerate().map(|(i, p)| (p.to_string(), -1.0 - i as f32, TYPE_NORMAL)));
            tokens.push(("<|im_start|>".into(), 0.0, TYPE_CONTROL));
            tokens.push(("<|im_end|>".into(), 0.0, TYPE_CONTROL));
            tokens.extend(s.extra_control.iter().map(|t| (t.to_string(), 0.0, TYPE_CONTROL)));
            fill(&mut tokens, s.vocab, "▁x");
            w.metadata("tokenizer.ggml.model", Value::String("llama".into()))
                .metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens.iter().map(|t| t.0.clone()).collect())))
                .metadata("tokenizer.ggml.scores", Value::Array(Array::F32(tokens.iter().map(|t| t.1).collect())))
                .metadata("tokenizer.ggml.token_type", Value::Array(Array::I32(tokens.iter().map(|t| t.2).collect())))
                .metadata("tokenizer.ggml.bos_token_id", Value::U32(1))
                .metadata("tokenizer.ggml.eos_token_id", Value::U32(2))
                .metadata("tokenizer.ggml.unknown_token_id", Value::U32(0));
            if let Some(prefix) = s.add_space_prefix {
                w.metadata("tokenizer.ggml.add_space_prefix", Value::Bool(prefix));
            }
        }
    }
}

// --- the model -----------------------------------------------------------------------------------

/// Llama 3.1-style frequency divisors: 1 for the fastest-turning pairs, rising smoothly to 8
/// for the slowest (here spread over all pairs, so that they change the angles the prompt's
/// positions actually reach).
fn rope_factors(pairs: usize) -> Vec<f32> {
    (0..pairs)
        .map(|i| {
            let t = i as f64 / (pairs - 1) as f64;
            (1.0 + 7.0 * t * t * (3.0 - 2.0 * t)) as f32
        })
        .collect()
}

/// The GGUF file of configuration `s`.
pub fn build_spec(s: &Spec) -> Vec<u8> {
    let mut w = GgufWriter::new();
    let (d, f) = (s.embedding, s.feed_forward);
    let (q_dim, kv_dim) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    let arch = s.arch.name();
    let key = |k: &str| format!("{arch}.{k}");
    w.metadata("general.architecture", Value::String(arch.into()))
        .metadata("general.name", Value::String(format!("synthetic-{}", s.name)))
        .metadata(&key("context_length"), Value::U32(s.context_length as u32))
        .metadata(&key("embedding_length"), Value::U32(d as u32))
        .metadata(&key("block_count"), Value::U32(s.blocks as u32))
        .metadata(&key("feed_forward_length"), Value::U32(f as u32))
        .metadata(&key("attention.head_count"), Value::U32(s.heads as u32))
        .metadata(&key("attention.head_count_kv"), Value::U32(s.kv_heads as u32))
        .metadata(&key("rope.freq_base"), Value::F32(s.rope_base))
        .metadata(&key("attention.layer_norm_rms_epsilon"), Value::F32(s.rms_eps));
    if s.write_rope_dims {
        w.metadata(&key("rope.dimension_count"), Value::U32(s.head_dim as u32));
    }
    if let Some(factor) = s.rope_linear_factor {
        w.metadata(&key("rope.scaling.type"), Value::String("linear".into())).metadata(&key("rope.scaling.factor"), Value::F32(factor));
    }
    if s.write_vocab_size {
        w.metadata(&key("vocab_size"), Value::U32(s.vocab as u32));
    }
    if s.write_head_dim {
        w.metadata(&key("attention.key_length"), Value::U32(s.head_dim as u32))
            .metadata(&key("attention.value_length"), Value::U32(s.head_dim as u32));
    }
    if let Some(window) = s.sliding_window {
        w.metadata(&key("attention.sliding_window"), Value::U32(window as u32));
    }
    vocab_metadata(&mut w, s);

    // [rows, cols] matrices, each with its own random stream.
    let matrix = |w: &mut GgufWriter, name: &str, ty: GgmlType, rows: usize, cols: usize, sigma: f64| {
        let data = tensor_data(ty, rows, cols, sigma, &mut Rng::new(s.seed, name));
        w.tensor(name, &[cols as u64, rows as u64], ty, data);
    };
    let norm = |w: &mut GgufWriter, name: &str, len: usize| {
        let mut rng = Rng::new(s.seed, name);
        let data = (0..len).flat_map(|_| ((1.0 + 0.2 * rng.normal()) as f32).to_le_bytes()).collect();
        w.tensor(name, &[len as u64], GgmlType::F32, data);
    };
    // 1/sqrt(n) for the fan-ins used, without libm: Newton's method from a rough start.
    let inv_sqrt = |n: usize| {
        let mut y = 1.0 / n as f64;
        for _ in 0..64 {
            y = y * (1.5 - 0.5 * n as f64 * y * y);
        }
        y
    };
    // F32 vectors with mean 0 (biases).
    let bias = |w: &mut GgufWriter, name: &str, len: usize, sigma: f64| {
        let mut rng = Rng::new(s.seed, name);
        let data = (0..len).flat_map(|_| ((sigma * rng.normal()) as f32).to_le_bytes()).collect();
        w.tensor(name, &[len as u64], GgmlType::F32, data);
    };
    let t = &s.types;
    matrix(&mut w, "token_embd.weight", t.token_embd, s.vocab, d, s.embd_sigma);
    for i in 0..s.blocks {
        let name = |part: &str| format!("blk.{i}.{part}.weight");
        norm(&mut w, &name("attn_norm"), d);
        if s.arch == Arch::Phi3 {
            // One matrix: query rows, then key rows, then value rows (one scale for all three).
            matrix(&mut w, &name("attn_qkv"), t.attn_q, q_dim + 2 * kv_dim, d, s.qk_gain * inv_sqrt(d));
        } else {
            matrix(&mut w, &name("attn_q"), t.attn_q, q_dim, d, s.qk_gain * inv_sqrt(d));
            matrix(&mut w, &name("attn_k"), t.attn_k, kv_dim, d, s.qk_gain * inv_sqrt(d));
            matrix(&mut w, &name("attn_v"), t.attn_v, kv_dim, d, s.in_gain * inv_sqrt(d));
        }
        if s.arch == Arch::Qwen2 {
            bias(&mut w, &format!("blk.{i}.attn_q.bias"), q_dim, s.bias_sigma);
            bias(&mut w, &format!("blk.{i}.attn_k.bias"), kv_dim, s.bias_sigma);
            bias(&mut w, &format!("blk.{i}.attn_v.bias"), kv_dim, s.bias_sigma);
        }
        if matches!(s.arch, Arch::Qwen3 | Arch::Gemma3) {
            norm(&mut w, &name("attn_q_norm"), s.head_dim);
            norm(&mut w, &name("attn_k_norm"), s.head_dim);
        }
        matrix(&mut w, &name("attn_output"), t.attn_output, d, q_dim, s.out_gain * inv_sqrt(q_dim));
        if s.arch == Arch::Gemma3 {
            norm(&mut w, &name("post_attention_norm"), d);
        }
        norm(&mut w, &name("ffn_norm"), d);
        if s.arch == Arch::Phi3 {
            // Gate rows, then up rows.
            matrix(&mut w, &name("ffn_up"), t.ffn_up, 2 * f, d, s.in_gain * inv_sqrt(d));
        } else {
            matrix(&mut w, &name("ffn_gate"), t.ffn_gate, f, d, s.in_gain * inv_sqrt(d));
            matrix(&mut w, &name("ffn_up"), t.ffn_up, f, d, s.in_gain * inv_sqrt(d));
        }
        matrix(&mut w, &name("ffn_down"), t.ffn_down, d, f, s.out_gain * inv_sqrt(f));
        if s.arch == Arch::Gemma3 {
            norm(&mut w, &name("post_ffw_norm"), d);
        }
    }
    norm(&mut w, "output_norm.weight", d);
    if let Some(ty) = t.output {
        matrix(&mut w, "output.weight", ty, s.vocab, d, s.output_gain * inv_sqrt(d) * 3.0);
    }
    if s.rope_freqs {
        let data = rope_factors(s.head_dim / 2).iter().flat_map(|x| x.to_le_bytes()).collect();
        w.tensor("rope_freqs.weight", &[(s.head_dim / 2) as u64], GgmlType::F32, data);
    }
    w.to_bytes()
}

/// The GGUF file of the configuration called `name`.
pub fn build(name: &str) -> Option<Vec<u8>> {
    spec(name).map(|s| build_spec(&s))
}
