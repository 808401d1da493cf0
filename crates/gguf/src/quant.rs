//! ggml block formats, unpacked.
//!
//! Every quantized type this reader supports is, after unpacking, a run of small unsigned
//! integers `q` in groups of 16 or 32, each group with a scale and an offset:
//! `x = scale * q + offset`. That one form lets an engine keep any of them quantized in one or
//! two device layouts, and gives [`dequantize`] a single definition. The arithmetic follows
//! ggml's `dequantize_row_*` (ggml-quants.c).

use half::{bf16, f16};

use crate::error::{GgufError, Result};
use crate::types::{GgmlType, QK_K};

/// Quantized values unpacked to one byte each, `x[i] = scale[i / group] * q[i] + offset[i / group]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    /// Elements per group (16 or 32).
    pub group: usize,
    /// Bits each `q` needs (4, 5, 6 or 8); `q < 1 << bits`.
    pub bits: u8,
    pub q: Vec<u8>,
    pub scale: Vec<f32>,
    pub offset: Vec<f32>,
}

impl Groups {
    fn with_capacity(elements: usize, group: usize, bits: u8) -> Self {
        Self {
            group,
            bits,
            q: Vec::with_capacity(elements),
            scale: Vec::with_capacity(elements / group),
            offset: Vec::with_capacity(elements / group),
        }
    }

    fn push_group(&mut self, scale: f32, offset: f32) {
        self.scale.push(scale);
        self.offset.push(offset);
    }

    pub fn dequantize_into(&self, out: &mut Vec<f32>) {
        out.reserve(self.q.len());
        for (g, chunk) in self.q.chunks(self.group).enumerate() {
            let (s, o) = (self.scale[g], self.offset[g]);
            out.extend(chunk.iter().map(|&q| s * q as f32 + o));
        }
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn blocks(ty: GgmlType, data: &[u8]) -> Result<core::slice::ChunksExact<'_, u8>> {
    let (_, bytes) = ty.block_layout().ok_or(GgufError::UnsupportedDequant { ty: ty.to_string() })?;
    if data.len() % bytes != 0 {
        return Err(GgufError::BadTensor {
            name: String::new(),
            reason: format!("{} bytes is not a whole number of {ty} blocks", data.len()),
        });
    }
    Ok(data.chunks_exact(bytes))
}

/// Scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K super-block: ggml's `get_scale_min_k4`.
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Unpack a quantized tensor's bytes into [`Groups`]. Float types are not groups: use
/// [`dequantize`] for those.
pub fn unpack(ty: GgmlType, data: &[u8]) -> Result<Groups> {
    let (block, bytes) = ty.block_layout().ok_or(GgufError::UnsupportedDequant { ty: ty.to_string() })?;
    let elements = data.len() / bytes * block;
    let mut g;
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            g = Groups::with_capacity(elements, 32, 4);
            let has_min = ty == GgmlType::Q4_1;
            for b in blocks(ty, data)? {
                let d = f16_at(b, 0);
                let (offset, qs) = if has_min { (f16_at(b, 2), &b[4..20]) } else { (-8.0 * d, &b[2..18]) };
                g.push_group(d, offset);
                g.q.extend(qs.iter().map(|&x| x & 0xF));
                g.q.extend(qs.iter().map(|&x| x >> 4));
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            g = Groups::with_capacity(elements, 32, 5);
            let has_min = ty == GgmlType::Q5_1;
            for b in blocks(ty, data)? {
                let d = f16_at(b, 0);
                let (offset, rest) = if has_min { (f16_at(b, 2), &b[4..]) } else { (-16.0 * d, &b[2..]) };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                g.push_group(d, offset);
                g.q.extend(qs.iter().enumerate().map(|(j, &x)| (x & 0xF) | ((((qh >> j) << 4) & 0x10) as u8)));
                g.q.extend(qs.iter().enumerate().map(|(j, &x)| (x >> 4) | (((qh >> (j + 12)) & 0x10) as u8)));
            }
        }
        GgmlType::Q8_0 => {
            // Stored signed; shifted to unsigned with the shift folded into the offset.
            g = Groups::with_capacity(elements, 32, 8);
            for b in blocks(ty, data)? {
                let d = f16_at(b, 0);
                g.push_group(d, -128.0 * d);
                g.q.extend(b[2..34].iter().map(|&x| (x as i8 as i16 + 128) as u8));
            }
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            let five = ty == GgmlType::Q5K;
            g = Groups::with_capacity(elements, 32, if five { 5 } else { 4 });
            for b in blocks(ty, data)? {
                let d = f16_at(b, 0);
                let dmin = f16_at(b, 2);
                let scales = &b[4..16];
                let (qh, qs) = if five { (&b[16..48], &b[48..176]) } else { (&b[0..0], &b[16..144]) };
                for chunk in 0..QK_K / 64 {
                    let q = &qs[chunk * 32..chunk * 32 + 32];
                    for half in 0..2 {
                        let (sc, m) = scale_min_k4(chunk * 2 + half, scales);
                        g.push_group(d * sc as f32, -(dmin * m as f32));
                        let high_bit = 1u8 << (chunk * 2 + half);
                        g.q.extend(q.iter().enumerate().map(|(l, &x)| {
                            let low = if half == 0 { x & 0xF } else { x >> 4 };
                            let high = if five && qh[l] & high_bit != 0 { 16 } else { 0 };
                            low + high
                        }));
                    }
                }
            }
        }
        GgmlType::Q6K => {
            g = Groups::with_capacity(elements, 16, 6);
            for b in blocks(ty, data)? {
                let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = f16_at(b, 208);
                let mut values = [0u8; QK_K];
                for n in 0..2 {
                    let (ql, qh, y) = (&ql[n * 64..], &qh[n * 32..], &mut values[n * 128..]);
                    for l in 0..32 {
                        y[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                        y[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                        y[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                        y[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                    }
                }
                // Sixteen groups of 16; group i uses scale sc[i] (ggml's `is` indexing works out to this).
                for &s in sc {
                    let scale = d * (s as i8) as f32;
                    g.push_group(scale, -32.0 * scale);
                }
                g.q.extend_from_slice(&values);
            }
        }
        _ => return Err(GgufError::UnsupportedDequant { ty: ty.to_string() }),
    }
    Ok(g)
}

/// Dequantize a tensor's raw bytes to f32, in ggml element order.
pub fn dequantize(ty: GgmlType, data: &[u8]) -> Result<Vec<f32>> {
    let exact = |size: usize| {
        if data.len() % size == 0 {
            Ok(data.chunks_exact(size))
        } else {
            Err(GgufError::BadTensor {
                name: String::new(),
                reason: format!("{} bytes is not a whole number of {ty} values", data.len()),
            })
        }
    };
    Ok(match ty {
        GgmlType::F32 => exact(4)?.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        GgmlType::F16 => exact(2)?.map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        GgmlType::BF16 => exact(2)?.map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        _ => {
            let groups = unpack(ty, data)?;
            let mut out = Vec::new();
            groups.dequantize_into(&mut out);
            out
        }
    })
}
