//! all-MiniLM-L6-v2 on burn: a 6-layer BERT encoder, attention-masked mean pooling and L2
//! normalisation, giving 384-dimensional sentence embeddings equal to sentence-transformers'.
//!
//! Files (from `models/all-MiniLM-L6-v2/`, passed as bytes so the browser can hand over what
//! it fetched): `model.safetensors` (F32; F16 and BF16 are read too, so a halved download works),
//! `tokenizer.json` (WordPiece, lower-casing) and `config.json` (the BERT hyper-parameters).
//! Texts longer than 256 tokens are truncated, as sentence-transformers does for this model
//! (`max_seq_length` in `sentence_bert_config.json`).
//!
//! The forward pass is burn's matmul for the weights and the fused steps of [`crate::kernels`]
//! for the rest (embeddings and LayerNorm, bias with GELU, attention straight from the stacked
//! q/k/v product, bias with residual and LayerNorm, pooling): on a GPU a layer is eight
//! dispatches; on the CPU the steps are burn's own operations.

use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{MemoryError, Result};
use crate::kernels::{self, LayerNorm};

/// Dimensions of an embedding.
pub const EMBEDDING_DIM: usize = 384;

/// An embedding: unit length, so cosine similarity is a dot product.
pub type Embedding = [f32; EMBEDDING_DIM];

/// Longest input in tokens, `[CLS]` and `[SEP]` included: sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2. Longer texts are truncated.
pub const MAX_TOKENS: usize = 256;

/// Batches are cut so that rows × padded length stays under this, which bounds the attention
/// scores' memory (`rows × heads × length²` floats: 24 MiB at 16 × 256 tokens).
const BATCH_TOKEN_BUDGET: usize = 4096;
const MAX_BATCH_ROWS: usize = 64;

/// Anything that turns texts into embeddings: the BERT [`Embedder`], or a stand-in in tests.
#[allow(async_fn_in_trait)]
pub trait TextEmbedder {
    /// One unit-length embedding per text, in order.
    async fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>>;
}

/// The hyper-parameters in `config.json` that the forward pass reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding")]
    pub position_embedding_type: String,
}

fn default_activation() -> String {
    "gelu".into()
}

fn default_position_embedding() -> String {
    "absolute".into()
}

impl BertConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let config: Self = serde_json::from_slice(bytes).map_err(|e| MemoryError::Model(format!("config.json: {e}")))?;
        if config.hidden_act != "gelu" {
            return Err(MemoryError::Model(format!("activation {:?}: only exact GELU is supported", config.hidden_act)));
        }
        if config.position_embedding_type != "absolute" {
            return Err(MemoryError::Model(format!("position embeddings {:?}", config.position_embedding_type)));
        }
        if config.hidden_size != EMBEDDING_DIM {
            return Err(MemoryError::Model(format!("hidden size {}; this crate stores {EMBEDDING_DIM}-dimensional embeddings", config.hidden_size)));
        }
        if config.num_attention_heads == 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(MemoryError::Model(format!("{} heads do not divide {}", config.num_attention_heads, config.hidden_size)));
        }
        if config.type_vocab_size == 0 || config.max_position_embeddings < 2 {
            return Err(MemoryError::Model("no token types or no positions".into()));
        }
        Ok(config)
    }
}

/// `x · w + b` with `w` stored `[in, out]` (transposed from PyTorch's `[out, in]` at load);
/// the bias is added by the fused step that follows the product.
struct Linear {
    weight: Tensor<2>,
    bias: Tensor<2>,
}

impl Linear {
    /// `x · w`, without the bias.
    fn product(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.clone())
    }
}

struct EncoderLayer {
    /// Query, key and value projections stacked into one `[d, 3d]` product.
    qkv: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// all-MiniLM-L6-v2 (or any BERT encoder with 384 hidden dimensions) on a burn device.
pub struct Embedder {
    config: BertConfig,
    tokenizer: Tokenizer,
    max_tokens: usize,
    word_embeddings: Tensor<2>,
    position_embeddings: Tensor<2>,
    /// Token type 0's embedding, `[1, d]`: single sentences use no other type.
    token_type_embedding: Tensor<2>,
    embedding_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    device: Device,
}

/// Reads named tensors out of a safetensors file, as f32, checking their shapes.
struct WeightReader<'a> {
    tensors: SafeTensors<'a>,
    /// `""` for sentence-transformers' export, `"bert."` for a full `BertModel` checkpoint.
    prefix: &'static str,
    device: &'a Device,
}

impl WeightReader<'_> {
    fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let full = format!("{}{name}", self.prefix);
        let view = self.tensors.tensor(&full).map_err(|e| MemoryError::Model(format!("tensor {full}: {e}")))?;
        if view.shape() != shape {
            return Err(MemoryError::Model(format!("tensor {full} has shape {:?}, expected {shape:?}", view.shape())));
        }
        let bytes = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => return Err(MemoryError::Model(format!("tensor {full} is {other:?}; F32, F16 or BF16 expected"))),
        };
        if values.len() != shape.iter().product::<usize>() {
            return Err(MemoryError::Model(format!("tensor {full} holds {} values for shape {shape:?}", values.len())));
        }
        Ok(values)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Tensor<2>> {
        Ok(Tensor::from_data(TensorData::new(self.floats(name, &[rows, cols])?, [rows, cols]), self.device))
    }

    fn row(&self, name: &str, len: usize) -> Result<Tensor<2>> {
        Ok(Tensor::from_data(TensorData::new(self.floats(name, &[len])?, [1, len]), self.device))
    }

    /// Dense layers `prefix.weight [out, in]`, `prefix.bias [out]`, stacked along `out` and
    /// transposed to `[in, Σ out]` so the forward pass is a plain `x · w`.
    fn linear(&self, prefixes: &[&str], outputs: usize, inputs: usize) -> Result<Linear> {
        let total = outputs * prefixes.len();
        let mut rows = Vec::with_capacity(total * inputs);
        let mut bias = Vec::with_capacity(total);
        for prefix in prefixes {
            rows.extend(self.floats(&format!("{prefix}.weight"), &[outputs, inputs])?);
            bias.extend(self.floats(&format!("{prefix}.bias"), &[outputs])?);
        }
        let mut transposed = vec![0.0; rows.len()];
        for (o, row) in rows.chunks_exact(inputs).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                transposed[i * total + o] = w;
            }
        }
        Ok(Linear {
            weight: Tensor::from_data(TensorData::new(transposed, [inputs, total]), self.device),
            bias: Tensor::from_data(TensorData::new(bias, [1, total]), self.device),
        })
    }

    fn layer_norm(&self, prefix: &str, len: usize, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm { gamma: self.row(&format!("{prefix}.weight"), len)?, beta: self.row(&format!("{prefix}.bias"), len)?, eps })
    }
}

impl Embedder {
    /// Upload the model to `device`. Fails with [`MemoryError::Model`] or
    /// [`MemoryError::Tokenizer`] for files that do not describe a BERT encoder this crate runs.
    pub fn load(safetensors: &[u8], tokenizer_json: &[u8], config_json: &[u8], device: &Device) -> Result<Self> {
        let config = BertConfig::from_json(config_json)?;
        let tokenizer = load_tokenizer(tokenizer_json, MAX_TOKENS.min(config.max_position_embeddings))?;
        let tensors = SafeTensors::deserialize(safetensors).map_err(|e| MemoryError::Model(format!("model.safetensors: {e}")))?;
        let prefix = if tensors.names().iter().any(|n| n.starts_with("bert.")) { "bert." } else { "" };
        let w = WeightReader { tensors, prefix, device };

        let (d, ff, eps) = (config.hidden_size, config.intermediate_size, config.layer_norm_eps as f32);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = |part: &str| format!("encoder.layer.{i}.{part}");
            layers.push(EncoderLayer {
                qkv: w.linear(&[&p("attention.self.query"), &p("attention.self.key"), &p("attention.self.value")], d, d)?,
                attention_output: w.linear(&[&p("attention.output.dense")], d, d)?,
                attention_norm: w.layer_norm(&p("attention.output.LayerNorm"), d, eps)?,
                intermediate: w.linear(&[&p("intermediate.dense")], ff, d)?,
                output: w.linear(&[&p("output.dense")], d, ff)?,
                output_norm: w.layer_norm(&p("output.LayerNorm"), d, eps)?,
            });
        }
        let token_types = w.floats("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, d])?;
        Ok(Self {
            word_embeddings: w.matrix("embeddings.word_embeddings.weight", config.vocab_size, d)?,
            position_embeddings: w.matrix("embeddings.position_embeddings.weight", config.max_position_embeddings, d)?,
            token_type_embedding: Tensor::from_data(TensorData::new(token_types[..d].to_vec(), [1, d]), device),
            embedding_norm: w.layer_norm("embeddings.LayerNorm", d, eps)?,
            layers,
            max_tokens: MAX_TOKENS.min(config.max_position_embeddings),
            config,
            tokenizer,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Longest input in tokens; longer texts are truncated.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids as the model sees them: `[CLS] … [SEP]`, truncated to [`Self::max_tokens`].
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| MemoryError::Tokenizer(e.to_string()))?;
        let ids = encoding.get_ids().to_vec();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(MemoryError::Model(format!("token id {bad} is outside the model's vocabulary of {}", self.config.vocab_size)));
        }
        Ok(ids)
    }

    /// Embed `texts`, batched: sorted by length so each batch pads little, cut to a token
    /// budget, results returned in the order given.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        let tokens = texts.iter().map(|t| self.tokenize(t)).collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].len()));

        let mut out = vec![[0.0; EMBEDDING_DIM]; texts.len()];
        let mut start = 0;
        while start < order.len() {
            // Longest first, so the batch's first row sets its padded length.
            let longest = tokens[order[start]].len().max(1);
            let rows = (BATCH_TOKEN_BUDGET / longest).clamp(1, MAX_BATCH_ROWS).min(order.len() - start);
            let batch = &order[start..start + rows];
            let vectors = self.embed_batch(batch.iter().map(|&i| tokens[i].as_slice()).collect()).await?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
            start += rows;
        }
        Ok(out)
    }

    /// One forward pass over sequences padded to the longest.
    async fn embed_batch(&self, sequences: Vec<&[u32]>) -> Result<Vec<Embedding>> {
        let (b, l) = (sequences.len(), sequences.iter().map(|s| s.len()).max().unwrap_or(0).max(1));
        let mut ids = vec![0i32; b * l];
        let mut mask = vec![0.0f32; b * l];
        for (row, seq) in sequences.iter().enumerate() {
            for (j, &id) in seq.iter().enumerate() {
                ids[row * l + j] = id as i32;
                mask[row * l + j] = 1.0;
            }
        }
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [b * l]), &self.device);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, l]), &self.device);
        let pooled = self.forward(ids, mask, l);
        let data = pooled.into_data_async().await.map_err(|e| MemoryError::Device(format!("{e:?}")))?;
        let values = data.try_into_vec::<f32>().map_err(|e| MemoryError::Device(format!("{e:?}")))?;
        Ok(values.chunks_exact(EMBEDDING_DIM).map(|c| c.try_into().unwrap_or([0.0; EMBEDDING_DIM])).collect())
    }

    /// `ids [b·l]` and `mask [b, l]` (1 for tokens, 0 for padding) → normalised embeddings `[b, d]`.
    fn forward(&self, ids: Tensor<1, Int>, mask: Tensor<2>, l: usize) -> Tensor<2> {
        let heads = self.config.num_attention_heads;
        let mut x = kernels::embeddings(ids, &self.word_embeddings, &self.position_embeddings, &self.token_type_embedding, &self.embedding_norm, l);
        for layer in &self.layers {
            let context = kernels::attention(layer.qkv.product(x.clone()), &layer.qkv.bias, &mask, heads);
            x = kernels::bias_residual_layer_norm(layer.attention_output.product(context), &layer.attention_output.bias, x, &layer.attention_norm);
            let hidden = kernels::bias_gelu(layer.intermediate.product(x.clone()), &layer.intermediate.bias);
            x = kernels::bias_residual_layer_norm(layer.output.product(hidden), &layer.output.bias, x, &layer.output_norm);
        }
        // Mean over real tokens, then unit length (sentence-transformers' Pooling + Normalize).
        kernels::mean_pool(x, &mask)
    }
}

impl TextEmbedder for Embedder {
    async fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        Embedder::embed(self, texts).await
    }
}

/// The model's `tokenizer.json` as sentence-transformers uses it: truncated to `max_tokens`,
/// never padded (batches are padded here, to their longest member).
fn load_tokenizer(json: &[u8], max_tokens: usize) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_bytes(json).map_err(|e| MemoryError::Tokenizer(e.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: max_tokens, ..TruncationParams::default() }))
        .map_err(|e| MemoryError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}
