//! Any bytes, parsed as a whole GGUF file and as a prefix of a longer one, then every tensor's
//! data sliced and dequantized: errors are fine, panics and runaway allocations are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = gguf::Gguf::parse(data) {
        let _ = g.check_data(data.len() as u64);
        let _ = g.expected_file_len();
        for t in &g.tensors {
            if let Ok(bytes) = g.tensor_data(data, t) {
                let _ = gguf::dequantize(t.ty, bytes);
            }
        }
        for (key, _) in &g.metadata {
            let _ = g.get_str(key);
            let _ = g.get_u64(key);
        }
    }
    // The same bytes as the start of a file ten times longer: counts are bounded by the
    // claimed length, reads by the bytes in hand.
    let _ = gguf::Gguf::parse_prefix(data, data.len() as u64 * 10);
});
