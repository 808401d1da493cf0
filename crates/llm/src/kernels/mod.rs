//! The seam between the model and the hardware: the operations of a llama forward pass that
//! burn has no fast built-in for, and the fused steps that keep a token cheap. Every backend
//! implements [`LlmKernels`] once, so the model file reads the same for all of them:
//!
//! - `cube`: GPUs through CubeCL: WebGPU in browsers, Vulkan (Metal, DX12) natively;
//! - `cpu`: burn's Flex CPU backend, with SIMD integer kernels over the same quantized
//!   blocks (crates/cpu-kernels) and threads through rayon.
//!
//! Quantized weights have one layout on every backend (see [`crate::weights`]): values packed
//! into 32-bit words, eight 4-bit or four 8-bit values each, element `e` of a word at bit
//! `e × bits`; each group of `group` values of a row has an f32 scale and offset, interleaved,
//! `w = scale × q + offset`. Activations and norms are f32; so are the key/value caches, but on
//! a GPU with `shader-f16`, where they hold f16 (see [`crate::KvPrecision`]), read into f32.

use burn::backend::{Backend, backend_extension, tensor::FloatTensor, tensor::IntTensor};

#[cfg(feature = "cpu")]
mod cpu;
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
mod cube;

/// Which GPU kernels run a prompt's many rows (decoding one row always runs the row kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefillKernels {
    /// The decode kernels over blocks of rows: a product that gives each invocation one weight
    /// row and 8 activation rows, attention that gives each (query, head) one workgroup.
    Rows,
    /// A tiled product through workgroup memory and flash attention over key/value tiles: each
    /// weight and key is read once per block of rows instead of once per row. The default on
    /// every adapter: what a real GPU's memory bandwidth needs for long prompts, and faster on
    /// the software adapters too (BENCHMARKS.md, "Prefill").
    Tiled,
}

static PREFILL_TILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Chooses the prefill kernels for every GPU device of this process ([`PrefillKernels::Tiled`]
/// unless set: benchmarks and tests set it to compare them).
pub fn set_prefill_kernels(kernels: PrefillKernels) {
    PREFILL_TILED.store(kernels == PrefillKernels::Tiled, std::sync::atomic::Ordering::Relaxed);
}

/// The prefill kernels in use (see [`set_prefill_kernels`]).
pub fn prefill_kernels() -> PrefillKernels {
    if PREFILL_TILED.load(std::sync::atomic::Ordering::Relaxed) { PrefillKernels::Tiled } else { PrefillKernels::Rows }
}

/// A quantized `[rows, cols]` weight matrix as the kernels read it (used as `y = x · Wᵀ`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantLayout {
    pub rows: usize,
    pub cols: usize,
    /// 4 or 8: values per 32-bit word are `32 / bits`.
    pub bits: u32,
    /// Values sharing one (scale, offset) pair: 16 or 32.
    pub group: usize,
    /// Unpacked from a K-quant type (Q4_K, Q5_K, Q6_K). llama.cpp multiplies those with
    /// activations quantized per 256 values (Q8_K) rather than per 32; the CPU path does the same.
    pub k_quant: bool,
}

impl QuantLayout {
    /// Bytes of packed values plus f32 scale/offset pairs.
    pub fn bytes(&self) -> usize {
        self.rows * self.cols * self.bits as usize / 8 + 8 * self.rows * self.cols / self.group
    }
}

/// Shapes of the attention heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Leading dimensions of each head that are rotated (the rest pass through).
    pub rope_dims: usize,
    /// How rotated dimensions pair up: `false` pairs neighbours `(x[2i], x[2i+1])` (llama.cpp's
    /// "normal" rope, for which llama GGUFs store q/k rows permuted); `true` pairs `x[i]` with
    /// `x[i + rope_dims / 2]` (GPT-NeoX style: Qwen, Gemma, Phi-3).
    pub neox: bool,
    /// Sliding-window attention: each query sees only the last `window` positions, itself
    /// included. `None`: every earlier position.
    pub window: Option<usize>,
}

/// What a quantized product computes from its rows (see [`LlmKernels::normed_quant_matmul`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// `x · wᵀ`, `[m, w.rows]`.
    Plain,
    /// As [`LlmKernels::quant_swiglu`].
    SwiGlu,
    /// As [`LlmKernels::quant_geglu`].
    GeGlu,
}

/// How [`LlmKernels::sample`] chooses a token: the steps of [`crate::sampler::Sampler::sample`]
/// without DRY, for the token at `position` of the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenChoice {
    pub cuts: crate::sampler::Cuts,
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// How many tokens before `position` the penalties look at (0: none).
    pub window: usize,
    /// Where the chosen id is written in the history: the count of tokens before it.
    pub position: usize,
    /// [`crate::sampler::draw_bits`] for this token.
    pub draw: u32,
}

/// DRY's settings for [`LlmKernels::dry`]: the token at `position` of the history looks back
/// over `window` tokens (see [`crate::sampler::dry`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DryChoice {
    pub multiplier: f32,
    pub base: f32,
    pub allowed_length: usize,
    /// How many tokens before `position` are searched for repeats.
    pub window: usize,
    pub position: usize,
}

/// Operations of the forward pass on a backend's own tensors.
#[backend_extension(Cube: cfg(any(feature = "wgpu", feature = "webgpu")), Flex: cfg(feature = "cpu"))]
pub trait LlmKernels: Backend {
    /// `x [m, w.cols] · wᵀ → [m, w.rows]` for a quantized `w`.
    fn quant_matmul(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self>;

    /// `residual + x · wᵀ`, the projection back into the residual stream in one pass.
    fn quant_matmul_add(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        w: QuantLayout,
    ) -> FloatTensor<Self>;

    /// `silu(x · gateᵀ) * (x · upᵀ) → [m, w.rows / 2]`, the SwiGLU feed-forward's first half in
    /// one pass: `w` holds `gate` stacked on `up`, each `[w.rows / 2, w.cols]`.
    fn quant_swiglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self>;

    /// `gelu(x · gateᵀ) * (x · upᵀ) → [m, w.rows / 2]` with the tanh approximation of GELU
    /// (GeGLU, Gemma's feed-forward), laid out as in [`LlmKernels::quant_swiglu`].
    fn quant_geglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self>;

    /// `rms_norm(x, norm, eps)` followed by the quantized product `projection`, one pass where
    /// the backend can: the pre-norm blocks' norm → q/k/v and norm → gate/up steps, and the
    /// final norm → output head.
    fn normed_quant_matmul(
        x: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        eps: f32,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        w: QuantLayout,
        projection: Projection,
    ) -> FloatTensor<Self>;

    /// `gelu(gate) * up` elementwise for `gate` and `up` of one shape (GeGLU over float weights).
    fn gelu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// RMSNorm of each query head and each key head of `qkv [t, (heads + 2 kv_heads) × head_dim]`
    /// (laid out as for [`LlmKernels::rope_and_cache`]) over its `head_dim` values, times
    /// `q_weight [head_dim]` or `k_weight [head_dim]`; values pass through. Qwen 3 and Gemma 3
    /// normalize queries and keys this way before rope.
    fn qk_norm(qkv: FloatTensor<Self>, q_weight: FloatTensor<Self>, k_weight: FloatTensor<Self>, eps: f32, heads: Heads) -> FloatTensor<Self>;

    /// Rows `ids` of `w`, dequantized: `[ids.len(), w.cols]` (the embedding look-up).
    fn quant_rows(ids: IntTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self>;

    /// RMSNorm of each row of `x [m, d]`, times `weight [d]`.
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;

    /// Split `qkv [t, (heads + 2 kv_heads) × head_dim]` into queries, keys and values; rotate
    /// the pairs of the first `rope_dims` dimensions of each query and key head (adjacent
    /// `(x[2i], x[2i+1])`, or `(x[i], x[i + rope_dims/2])` when `heads.neox`), pair `i` by the
    /// angle whose cos and sin are `[t, rope_dims / 2]`; write keys and values
    /// into the caches `[kv_heads, capacity, head_dim]` at positions `start..start + t`.
    /// Returns the rotated queries `[t, heads × head_dim]` and the caches.
    fn rope_and_cache(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        start: usize,
        heads: Heads,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Causal attention of queries `[t, heads × head_dim]` at positions `start..start + t` over
    /// the cached keys and values `[kv_heads, capacity, head_dim]` of positions `0..start + t`.
    /// Query head `h` reads key/value head `h / (heads / kv_heads)`; with `heads.window`, only the
    /// last `window` positions up to its own. Scores are scaled by `1 / sqrt(head_dim)`.
    /// Returns `[t, heads × head_dim]`.
    fn attention(q: FloatTensor<Self>, k_cache: FloatTensor<Self>, v_cache: FloatTensor<Self>, start: usize, heads: Heads) -> FloatTensor<Self>;

    /// [`LlmKernels::rope_and_cache`] then [`LlmKernels::attention`] over the result, in one
    /// pass where the backend can (a GPU, for one new position: decoding). Returns the attended
    /// values `[t, heads × head_dim]` and the caches.
    fn rope_cache_attention(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        start: usize,
        heads: Heads,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Choose the next token from `logits [1, vocab]` on the device: penalties over
    /// `history[position - window..position]` (ids, i32), then [`crate::sampler::pick`]'s steps
    /// with `choice.draw`. The id is written to `history[position]` and returned as `ids [1]`
    /// (what the next step's embedding look-up reads); returns the ids and the history.
    /// `choice.cuts.top_k` must be in `1..=`[`crate::sampler::DEVICE_MAX_TOP_K`] when sampling.
    fn sample(logits: FloatTensor<Self>, history: IntTensor<Self>, choice: TokenChoice) -> (IntTensor<Self>, IntTensor<Self>);

    /// Subtract DRY's penalties from `logits [1, vocab]` (in place), for the token at
    /// `choice.position` of `history` (ids, i32), as [`crate::sampler::dry`] does on the CPU
    /// with single-token breakers: `breakers [vocab]` flags them (i32, 1 = breaker) and
    /// `penalties [lengths]` holds [`crate::sampler::dry::penalty_table`] for `choice`'s
    /// settings, with more lengths than `choice.window`. Returns the logits and the history.
    fn dry(
        logits: FloatTensor<Self>,
        history: IntTensor<Self>,
        breakers: IntTensor<Self>,
        penalties: FloatTensor<Self>,
        choice: DryChoice,
    ) -> (FloatTensor<Self>, IntTensor<Self>);
}
