//! The [`LlmKernels`] seam on the CPU. burn's Flex backend holds the tensors (contiguous f32
//! and i32 buffers); the loops that decide the speed live in crates/cpu-kernels (SIMD128 in
//! browsers, AVX2 natively, rayon threads where there are any).
//!
//! Shapes and sizes are the model's own (checked when it loads), so a mismatch here is a bug in
//! this crate and panics with the kernel's message, as a GPU kernel would fail its launch.

use std::cell::RefCell;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{Shape, TensorData};
use burn_flex::{Flex, FlexTensor};
use cpu_kernels::{AttnShape, Q8Activations, QuantMatrix};

use super::{DryChoice, Heads, LlmKernels, Projection, QuantLayout, TokenChoice};

/// The tensor with its values in one contiguous run from offset 0.
fn dense(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 { t } else { t.to_contiguous() }
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("kernel inputs are dense f32 tensors")
}

fn words(t: &FlexTensor) -> &[u32] {
    bytemuck::cast_slice(t.as_slice::<i32>().expect("packed weights are dense i32 tensors"))
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::from(shape)))
}

/// `(rows, last dimension)` of a tensor viewed as a matrix.
fn matrix_dims(t: &FlexTensor) -> (usize, usize) {
    let shape = t.layout().shape();
    let k = shape[shape.num_dims() - 1];
    (shape.num_elements() / k.max(1), k)
}

/// The output shape of a product: `x`'s with the last dimension replaced by `n`.
fn with_last(t: &FlexTensor, n: usize) -> Vec<usize> {
    let mut dims = t.layout().shape().to_vec();
    let last = dims.len() - 1;
    dims[last] = n;
    dims
}

/// `x · wᵀ` for every row of `x`: `[m, w.rows]`. Activations are quantized to 8 bits as
/// llama.cpp's CPU kernels quantize them for the same weights (blocks of 32; super-blocks of 256
/// for K-quants) and meet the weights in integer dot products.
fn product(x: &FlexTensor, packed: &FlexTensor, scales: &FlexTensor, w: QuantLayout) -> Vec<f32> {
    let (m, k) = matrix_dims(x);
    let weights = QuantMatrix::new(words(packed), f32s(scales), w.rows, w.cols, w.bits, w.group).unwrap_or_else(|e| panic!("weights: {e}"));
    let mut out = vec![0f32; m * w.rows];
    ACTIVATIONS.with_borrow_mut(|act| {
        let quantized = if w.k_quant { act.quantize_superblocks(f32s(x), k, w.bits) } else { act.quantize(f32s(x), k, w.bits) };
        quantized.unwrap_or_else(|e| panic!("activations: {e}"));
        cpu_kernels::quant_matmul(act, &weights, &mut out).unwrap_or_else(|e| panic!("matmul: {e}"));
    });
    out
}

/// A stacked gate/up product (`w.rows` = gate rows then up rows) through a gated activation
/// (`silu_mul`, `gelu_mul`): half as wide as the product.
fn gated_product(
    x: FlexTensor,
    packed: FlexTensor,
    scales: FlexTensor,
    w: QuantLayout,
    activation: fn(&[f32], &[f32], &mut [f32]) -> cpu_kernels::Result<()>,
    what: &str,
) -> FlexTensor {
    let x = dense(x);
    let both = product(&x, &dense(packed), &dense(scales), w);
    let half = w.rows / 2;
    let mut out = vec![0f32; both.len() / 2];
    for (row, o) in both.chunks_exact(w.rows).zip(out.chunks_exact_mut(half)) {
        let (gate, up) = row.split_at(half);
        activation(gate, up, o).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    tensor(out, with_last(&x, half))
}

thread_local! {
    /// The quantized activations' buffer, reused by every product on this thread.
    static ACTIVATIONS: RefCell<Q8Activations> = RefCell::new(Q8Activations::new());
}

impl LlmKernels for Flex {
    fn quant_matmul(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        let x = dense(x);
        let out = product(&x, &dense(packed), &dense(scales), w);
        tensor(out, with_last(&x, w.rows))
    }

    fn quant_matmul_add(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        w: QuantLayout,
    ) -> FloatTensor<Self> {
        let x = dense(x);
        let mut out = product(&x, &dense(packed), &dense(scales), w);
        let residual = dense(residual);
        for (o, r) in out.iter_mut().zip(f32s(&residual)) {
            *o += r;
        }
        tensor(out, with_last(&x, w.rows))
    }

    fn quant_swiglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        gated_product(x, packed, scales, w, cpu_kernels::silu_mul, "swiglu")
    }

    fn quant_geglu(x: FloatTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        gated_product(x, packed, scales, w, cpu_kernels::gelu_mul, "geglu")
    }

    fn normed_quant_matmul(
        x: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        eps: f32,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        w: QuantLayout,
        projection: Projection,
    ) -> FloatTensor<Self> {
        // The norm's output is quantized to 8 bits for the product anyway: a separate pass
        // costs one read of a row that is in cache.
        let x = Self::rms_norm(x, norm, eps);
        match projection {
            Projection::Plain => Self::quant_matmul(x, packed, scales, w),
            Projection::SwiGlu => Self::quant_swiglu(x, packed, scales, w),
            Projection::GeGlu => Self::quant_geglu(x, packed, scales, w),
        }
    }

    fn gelu_mul(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let (gate, up) = (dense(gate), dense(up));
        let mut out = vec![0f32; gate.layout().shape().num_elements()];
        cpu_kernels::gelu_mul(f32s(&gate), f32s(&up), &mut out).unwrap_or_else(|e| panic!("gelu_mul: {e}"));
        tensor(out, gate.layout().shape().to_vec())
    }

    fn qk_norm(qkv: FloatTensor<Self>, q_weight: FloatTensor<Self>, k_weight: FloatTensor<Self>, eps: f32, h: Heads) -> FloatTensor<Self> {
        let (qkv, q_weight, k_weight) = (dense(qkv), dense(q_weight), dense(k_weight));
        let (t, width) = matrix_dims(&qkv);
        let Heads { heads, kv_heads, head_dim, .. } = h;
        assert_eq!(width, (heads + 2 * kv_heads) * head_dim, "qkv width");
        let src = f32s(&qkv);
        let mut out = src.to_vec();
        let (q_len, k_len) = (heads * head_dim, kv_heads * head_dim);
        for (row, o) in src.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            cpu_kernels::rms_norm(&row[..q_len], f32s(&q_weight), eps, &mut o[..q_len]).unwrap_or_else(|e| panic!("q norm: {e}"));
            let keys = q_len..q_len + k_len;
            cpu_kernels::rms_norm(&row[keys.clone()], f32s(&k_weight), eps, &mut o[keys]).unwrap_or_else(|e| panic!("k norm: {e}"));
        }
        tensor(out, vec![t, width])
    }

    fn quant_rows(ids: IntTensor<Self>, packed: IntTensor<Self>, scales: FloatTensor<Self>, w: QuantLayout) -> FloatTensor<Self> {
        let (ids, packed, scales) = (dense(ids), dense(packed), dense(scales));
        let weights = QuantMatrix::new(words(&packed), f32s(&scales), w.rows, w.cols, w.bits, w.group).unwrap_or_else(|e| panic!("weights: {e}"));
        let ids = ids.as_slice::<i32>().expect("token ids are dense i32 tensors");
        let mut out = vec![0f32; ids.len() * w.cols];
        for (row, &id) in out.chunks_exact_mut(w.cols).zip(ids) {
            for (c, o) in row.iter_mut().enumerate() {
                *o = weights.value(id as usize, c);
            }
        }
        tensor(out, vec![ids.len(), w.cols])
    }

    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let (x, weight) = (dense(x), dense(weight));
        let mut out = vec![0f32; x.layout().shape().num_elements()];
        cpu_kernels::rms_norm(f32s(&x), f32s(&weight), eps, &mut out).unwrap_or_else(|e| panic!("rms_norm: {e}"));
        tensor(out, x.layout().shape().to_vec())
    }

    fn rope_and_cache(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        start: usize,
        h: Heads,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (qkv, cos, sin) = (dense(qkv), dense(cos), dense(sin));
        // Written in place: the model hands over its only reference to each cache.
        let (mut k_cache, mut v_cache) = (dense(k_cache), dense(v_cache));
        let capacity = k_cache.layout().shape()[1];
        let (t, width) = matrix_dims(&qkv);
        let Heads { heads, kv_heads, head_dim, rope_dims, neox, .. } = h;
        assert_eq!(width, (heads + 2 * kv_heads) * head_dim, "qkv width");
        assert!(start + t <= capacity, "the cache holds {capacity} positions");
        let pairs = rope_dims / 2;
        let (cos, sin, qkv) = (f32s(&cos), f32s(&sin), f32s(&qkv));
        // Pair `i` is (x[2i], x[2i+1]), or (x[i], x[i + pairs]) NeoX-style.
        let (first, second) = if neox { (1, pairs) } else { (2, 1) };
        let rotate = |src: &[f32], dst: &mut [f32], ti: usize| {
            dst.copy_from_slice(src);
            for i in 0..pairs {
                let (a, b) = (first * i, first * i + second);
                let (x0, x1) = (src[a], src[b]);
                let (c, s) = (cos[ti * pairs + i], sin[ti * pairs + i]);
                dst[a] = x0 * c - x1 * s;
                dst[b] = x0 * s + x1 * c;
            }
        };
        let mut q = vec![0f32; t * heads * head_dim];
        {
            let keys = k_cache.storage_mut::<f32>();
            for ti in 0..t {
                let row = &qkv[ti * width..(ti + 1) * width];
                for hd in 0..heads {
                    let at = (ti * heads + hd) * head_dim;
                    rotate(&row[hd * head_dim..(hd + 1) * head_dim], &mut q[at..at + head_dim], ti);
                }
                for kv in 0..kv_heads {
                    let at = (kv * capacity + start + ti) * head_dim;
                    let src = &row[(heads + kv) * head_dim..(heads + kv + 1) * head_dim];
                    rotate(src, &mut keys[at..at + head_dim], ti);
                }
            }
        }
        {
            let values = v_cache.storage_mut::<f32>();
            for ti in 0..t {
                let row = &qkv[ti * width..(ti + 1) * width];
                for kv in 0..kv_heads {
                    let at = (kv * capacity + start + ti) * head_dim;
                    let src = &row[(heads + kv_heads + kv) * head_dim..(heads + kv_heads + kv + 1) * head_dim];
                    values[at..at + head_dim].copy_from_slice(src);
                }
            }
        }
        (tensor(q, vec![t, heads * head_dim]), k_cache, v_cache)
    }

    fn rope_cache_attention(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        k_cache: FloatTensor<Self>,
        v_cache: FloatTensor<Self>,
        start: usize,
        h: Heads,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Two passes cost nothing extra here: the queries stay in cache between them.
        let (q, k_cache, v_cache) = Self::rope_and_cache(qkv, cos, sin, k_cache, v_cache, start, h);
        let out = Self::attention(q, k_cache.clone(), v_cache.clone(), start, h);
        (out, k_cache, v_cache)
    }

    fn attention(q: FloatTensor<Self>, k_cache: FloatTensor<Self>, v_cache: FloatTensor<Self>, start: usize, h: Heads) -> FloatTensor<Self> {
        let (q, k_cache, v_cache) = (dense(q), dense(k_cache), dense(v_cache));
        let (t, width) = matrix_dims(&q);
        let mut out = vec![0f32; t * width];
        let shape = AttnShape { heads: h.heads, kv_heads: h.kv_heads, head_dim: h.head_dim };
        cpu_kernels::attention_window(f32s(&q), f32s(&k_cache), f32s(&v_cache), start, shape, h.window, &mut out)
            .unwrap_or_else(|e| panic!("attention: {e}"));
        tensor(out, vec![t, width])
    }

    fn sample(logits: FloatTensor<Self>, history: IntTensor<Self>, choice: TokenChoice) -> (IntTensor<Self>, IntTensor<Self>) {
        let logits = dense(logits);
        // Written in place: the generator hands over its only reference to the history.
        let mut history = dense(history);
        let TokenChoice { cuts, repeat_penalty, frequency_penalty, presence_penalty, window, position, draw } = choice;
        let ids = history.storage_mut::<i32>();
        assert!(position < ids.len() && window <= position, "the history holds {} tokens", ids.len());
        let mut values = f32s(&logits).to_vec();
        if window > 0 {
            let recent: Vec<u32> = ids[position - window..position].iter().map(|&id| id as u32).collect();
            crate::sampler::apply_penalties(&mut values, &recent, repeat_penalty, frequency_penalty, presence_penalty);
        }
        let chosen = crate::sampler::pick(&values, cuts, draw) as i32;
        ids[position] = chosen;
        (FlexTensor::from_data(TensorData::new(vec![chosen], Shape::from(vec![1]))), history)
    }

    /// The CPU sampler's own [`crate::sampler::dry`] over the window, with the flagged breakers
    /// (the penalty table is for GPUs, which cannot compute the penalties in f64).
    fn dry(
        logits: FloatTensor<Self>,
        history: IntTensor<Self>,
        breakers: IntTensor<Self>,
        _penalties: FloatTensor<Self>,
        choice: DryChoice,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        use crate::sampler::dry::{self, DryParams, SequenceBreakers};
        let (history, breakers) = (dense(history), dense(breakers));
        let DryChoice { multiplier, base, allowed_length, window, position } = choice;
        let ids = history.as_slice::<i32>().expect("the history is a dense i32 tensor");
        assert!(position <= ids.len() && window <= position, "the history holds {} tokens", ids.len());
        let flags = breakers.as_slice::<i32>().expect("breaker flags are a dense i32 tensor");
        let single = flags.iter().enumerate().filter(|&(_, &flag)| flag != 0).map(|(id, _)| vec![id as u32]);
        let breakers = SequenceBreakers::from_token_sequences(single);
        // `recent` is the window already: DRY searches all of it.
        let params = DryParams { multiplier, base, allowed_length, penalty_last_n: -1, sequence_breakers: Vec::new() };
        let recent: Vec<u32> = ids[position - window..position].iter().map(|&id| id as u32).collect();
        let shape = logits.layout().shape().to_vec();
        let mut values = f32s(&dense(logits)).to_vec();
        dry::apply(&params, &breakers, &mut values, &recent);
        (tensor(values, shape), history)
    }
}
