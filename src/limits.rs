//! The largest sizes Unmask accepts from a file or an argument, checked before anything of that
//! size is allocated.
//!
//! Every size a `config.json`, a trajectory or a command line names is input: a wrong one must
//! be refused with a message, never turned into an allocation (`n_blocks: 1000000000` once made
//! the CLI ask for 968 GB and abort). Each bound admits every published checkpoint Unmask means to
//! run with room to spare — the largest today is LLaDA-8B (vocabulary 126,464, width 4,096, 32
//! layers, MLP 12,288, context 4,096) and Qwen's 151,936-token vocabulary — and keeps products of
//! two bounds inside `u64` (sizes are counted in `u64`: `usize` is 32 bits in the browser).

/// Largest vocabulary (embedding rows): 2²⁰, about 7× Qwen's 151,936.
pub const MAX_VOCAB_SIZE: usize = 1 << 20;
/// Longest context (`model_length`): 2¹⁷ positions, 32× LLaDA's 4,096.
pub const MAX_MODEL_LENGTH: usize = 1 << 17;
/// Widest residual stream (`hidden_dim`): 2¹⁵, 4× LLaDA-8B's 4,096.
pub const MAX_HIDDEN_DIM: usize = 1 << 15;
/// Widest conditioning vector (`cond_dim`).
pub const MAX_COND_DIM: usize = 1 << 15;
/// Most transformer blocks: 1,024 (LLaDA-8B has 32).
pub const MAX_BLOCKS: usize = 1 << 10;
/// Widest MLP hidden layer: 2¹⁷, about 10× LLaDA-8B's 12,288.
pub const MAX_MLP_DIM: usize = 1 << 17;
/// Most attention heads per block: 1,024 (LLaDA-8B has 32).
pub const MAX_HEADS: usize = 1 << 10;
/// Most classes an image network may be conditioned on.
pub const MAX_CLASSES: usize = 1 << 16;

/// Whether `value` is at most `max`; otherwise the message every front end shows.
pub fn check(field: &'static str, value: usize, max: usize) -> Result<(), TooLarge> {
    if value > max {
        return Err(TooLarge { field, value, max });
    }
    Ok(())
}

/// A size above its bound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value} is larger than Unmask accepts (at most {max})")]
pub struct TooLarge {
    /// What was too large.
    pub field: &'static str,
    /// Its value.
    pub value: usize,
    /// The bound.
    pub max: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_of_two_bounds_fit_in_u64_and_the_largest_checkpoints_pass() {
        let bounds = [
            MAX_VOCAB_SIZE,
            MAX_MODEL_LENGTH,
            MAX_HIDDEN_DIM,
            MAX_COND_DIM,
            MAX_BLOCKS,
            MAX_HEADS,
            MAX_MLP_DIM,
        ];
        for a in bounds {
            for b in bounds {
                assert!((a as u64).checked_mul(b as u64).is_some());
            }
        }
        // LLaDA-8B and Qwen3-0.6B, the largest shapes the project plans to run.
        assert!(check("vocab_size", 126_464, MAX_VOCAB_SIZE).is_ok());
        assert!(check("vocab_size", 151_936, MAX_VOCAB_SIZE).is_ok());
        assert!(check("hidden_dim", 4_096, MAX_HIDDEN_DIM).is_ok());
        assert!(check("n_blocks", 32, MAX_BLOCKS).is_ok());
        let err = check("n_blocks", 1_000_000_000, MAX_BLOCKS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "n_blocks = 1000000000 is larger than Unmask accepts (at most 1024)"
        );
    }
}
