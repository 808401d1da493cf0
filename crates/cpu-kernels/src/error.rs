//! The one error type of this crate: every public entry point checks its sizes and answers
//! with one of these instead of panicking.

/// What was wrong with the arguments of a kernel call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A weight format other than (4 bits, groups of 32), (8, 32) or (8, 16).
    #[error("unsupported weight format: {bits}-bit values in groups of {group}")]
    UnsupportedFormat { bits: u32, group: usize },
    /// Activations can be ordered for 4-bit or for 8-bit weights only.
    #[error("activations can be quantized for 4- or 8-bit weights, not {bits}-bit")]
    UnsupportedBits { bits: u32 },
    /// A slice has the wrong number of elements.
    #[error("{what}: expected {expected} elements, got {got}")]
    Length { what: &'static str, expected: usize, got: usize },
    /// A dimension that must be a positive multiple of something is not.
    #[error("{what} is {value}, which is not a positive multiple of {multiple}")]
    NotMultiple { what: &'static str, value: usize, multiple: usize },
    /// The activations were quantized for weights of another bit width (their order differs).
    #[error("activations were quantized for {x_bits}-bit weights, the matrix has {w_bits}-bit weights")]
    OrderMismatch { x_bits: u32, w_bits: u32 },
    /// The inner dimensions of a product differ.
    #[error("activations have {x_cols} columns, the matrix {w_cols}")]
    InnerDim { x_cols: usize, w_cols: usize },
    /// A shape that cannot work, described.
    #[error("bad shape: {0}")]
    Shape(String),
    /// The requested SIMD backend cannot run on this machine or build.
    #[error("the {0:?} backend is not available here")]
    BackendUnavailable(crate::Backend),
}

pub type Result<T, E = KernelError> = core::result::Result<T, E>;
