//! Block dequantization against literal transcriptions of ggml's `dequantize_row_*` loops,
//! on random blocks.

use gguf::{GgmlType, dequantize, unpack};
use half::f16;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// An f16 scale in a realistic range, as little-endian bytes.
    fn scale(&mut self) -> [u8; 2] {
        let v = (self.next() % 2000) as f32 / 1000.0 - 1.0;
        f16::from_f32(v * 0.05).to_le_bytes()
    }
}

fn h(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn random_blocks(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    let (_, size) = ty.block_layout().unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut b = rng.bytes(size);
        let scale_at: &[usize] = match ty {
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
            GgmlType::Q6K => &[208],
            _ => &[0],
        };
        for &i in scale_at {
            b[i..i + 2].copy_from_slice(&rng.scale());
        }
        out.extend(b);
    }
    out
}

fn reference(ty: GgmlType, data: &[u8]) -> Vec<f32> {
    let mut y = Vec::new();
    let (_, size) = ty.block_layout().unwrap();
    for x in data.chunks(size) {
        match ty {
            GgmlType::Q4_0 => {
                let d = h(x, 0);
                let mut out = [0f32; 32];
                for j in 0..16 {
                    out[j] = ((x[2 + j] & 0xF) as i32 - 8) as f32 * d;
                    out[j + 16] = ((x[2 + j] >> 4) as i32 - 8) as f32 * d;
                }
                y.extend(out);
            }
            GgmlType::Q4_1 => {
                let (d, m) = (h(x, 0), h(x, 2));
                let mut out = [0f32; 32];
                for j in 0..16 {
                    out[j] = (x[4 + j] & 0xF) as f32 * d + m;
                    out[j + 16] = (x[4 + j] >> 4) as f32 * d + m;
                }
                y.extend(out);
            }
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let has_m = ty == GgmlType::Q5_1;
                let d = h(x, 0);
                let m = if has_m { h(x, 2) } else { 0.0 };
                let o = if has_m { 4 } else { 2 };
                let qh = u32::from_le_bytes([x[o], x[o + 1], x[o + 2], x[o + 3]]);
                let qs = &x[o + 4..];
                let mut out = [0f32; 32];
                for j in 0..16 {
                    let xh0 = (((qh >> j) << 4) & 0x10) as i32;
                    let xh1 = ((qh >> (j + 12)) & 0x10) as i32;
                    let (x0, x1) = (((qs[j] & 0xF) as i32) | xh0, ((qs[j] >> 4) as i32) | xh1);
                    if has_m {
                        out[j] = x0 as f32 * d + m;
                        out[j + 16] = x1 as f32 * d + m;
                    } else {
                        out[j] = (x0 - 16) as f32 * d;
                        out[j + 16] = (x1 - 16) as f32 * d;
                    }
                }
                y.extend(out);
            }
            GgmlType::Q8_0 => {
                let d = h(x, 0);
                y.extend(x[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let five = ty == GgmlType::Q5K;
                let (d, min) = (h(x, 0), h(x, 2));
                let scales = &x[4..16];
                let get = |j: usize| -> (u8, u8) {
                    if j < 4 {
                        (scales[j] & 63, scales[j + 4] & 63)
                    } else {
                        (
                            (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
                            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
                        )
                    }
                };
                let (qh, mut q) = if five { (&x[16..48], &x[48..]) } else { (&x[0..0], &x[16..]) };
                let (mut is, mut u1, mut u2) = (0, 1u8, 2u8);
                for _ in (0..256).step_by(64) {
                    let (sc, m) = get(is);
                    let (d1, m1) = (d * sc as f32, min * m as f32);
                    let (sc, m) = get(is + 1);
                    let (d2, m2) = (d * sc as f32, min * m as f32);
                    for l in 0..32 {
                        let hb = if five && qh[l] & u1 != 0 { 16 } else { 0 };
                        y.push(d1 * ((q[l] & 0xF) + hb) as f32 - m1);
                    }
                    for l in 0..32 {
                        let hb = if five && qh[l] & u2 != 0 { 16 } else { 0 };
                        y.push(d2 * ((q[l] >> 4) + hb) as f32 - m2);
                    }
                    q = &q[32..];
                    is += 2;
                    u1 <<= 2;
                    u2 <<= 2;
                }
            }
            GgmlType::Q6K => {
                let d = h(x, 208);
                let (mut ql, mut qh, mut sc) = (&x[0..128], &x[128..192], &x[192..208]);
                let mut out = [0f32; 256];
                for n in (0..256).step_by(128) {
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = (((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8) - 32;
                        let q2 = (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8) - 32;
                        let q3 = (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8) - 32;
                        let q4 = (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8) - 32;
                        out[n + l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        out[n + l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        out[n + l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        out[n + l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                    ql = &ql[64..];
                    qh = &qh[32..];
                    sc = &sc[8..];
                }
                y.extend(out);
            }
            other => panic!("no reference for {other}"),
        }
    }
    y
}

#[test]
fn quantized_types_match_ggml() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        let data = random_blocks(ty, 8, &mut rng);
        let got = dequantize(ty, &data).unwrap();
        let want = reference(ty, &data);
        assert_eq!(got.len(), want.len(), "{ty}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = 1e-6 * w.abs().max(1e-3);
            assert!((g - w).abs() <= tol, "{ty} element {i}: {g} vs {w}");
        }
        let groups = unpack(ty, &data).unwrap();
        assert!(groups.q.iter().all(|&q| (q as u32) < 1 << groups.bits), "{ty}: q fits its bit width");
        assert_eq!(groups.scale.len() * groups.group, groups.q.len());
    }
}

#[test]
fn float_types() {
    let f: Vec<u8> = [1.0f32, -2.5].iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::F32, &f).unwrap(), [1.0, -2.5]);
    let f: Vec<u8> = [1.0f32, -2.5].iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::F16, &f).unwrap(), [1.0, -2.5]);
    let f: Vec<u8> = [1.0f32, -2.5].iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::BF16, &f).unwrap(), [1.0, -2.5]);
}

#[test]
fn wrong_lengths_and_types_are_errors() {
    assert!(dequantize(GgmlType::Q4_1, &[0u8; 21]).is_err());
    assert!(dequantize(GgmlType::F32, &[0u8; 5]).is_err());
    assert!(dequantize(GgmlType::Q2K, &[0u8; 84]).is_err());
    assert!(dequantize(GgmlType::Other(99), &[0u8; 84]).is_err());
}
