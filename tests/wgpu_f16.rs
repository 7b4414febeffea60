//! Half precision on wgpu (lavapipe in CI supports f16): the fixture loads with its weights
//! converted to f16, and its logits stay close to the CPU's f32 ones. A process of its own,
//! because a device's precision is set once, before its first tensor.

mod common;

use common::{fixture_dir, ids, max_abs_diff, reference, tiny};
use unmask::backend::{self, BackendKind};
use unmask::bundle::Bundle;

#[test]
fn f16_weights_give_logits_close_to_f32() {
    let mut device = match backend::init(BackendKind::Wgpu) {
        Ok(d) => d,
        Err(e) if std::env::var_os("UNMASK_REQUIRE_WGPU").is_none() => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("UNMASK_REQUIRE_WGPU is set but wgpu did not start: {e}"),
    };
    if !backend::use_half_precision(&mut device) {
        eprintln!("skipped: this adapter has no f16");
        return;
    }
    let half = Bundle::from_dir(&fixture_dir(), &device).unwrap();
    let full = tiny();
    let tokens = ids(&reference()["tokens"]);
    let a = pollster::block_on(half.model.logits(&[&tokens], 0.0)).unwrap();
    let b = pollster::block_on(full.model.logits(&[&tokens], 0.0)).unwrap();
    let worst = max_abs_diff(a.as_slice(), b.as_slice());
    let scale = b.as_slice().iter().fold(0.0f32, |m, x| m.max(x.abs()));
    eprintln!("f16 vs f32: max |Δ| = {worst} over logits up to {scale}");
    assert!(
        worst.is_finite() && worst < 0.03 * scale.max(1.0),
        "f16 logits drift: {worst}"
    );
    // f16 really is in use: the values are not bit-identical to f32.
    assert!(worst > 0.0);
}
