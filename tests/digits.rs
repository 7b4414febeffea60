//! `unmask prepare --digits` rebuilds the committed digits (data/digits/) byte for byte from the
//! scikit-learn wheel, and the committed files read back as the 1,797 images in their splits.
//!
//! The wheel comes from `scripts/digits-source.sh` (which `scripts/test.sh` runs first), in
//! `$UNMASK_DIGITS_SOURCES` or its default folder.

use std::path::{Path, PathBuf};

use unmask::corpus::Split;
use unmask::corpus::digits::{self, CLASSES, SOURCE_IMAGES};

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(digits::DEFAULT_DIGITS_DIR)
}

#[test]
fn the_committed_digits_hold_every_image_once_with_every_class_in_both_splits() {
    let train = digits::read_digits(&committed(), Split::Train).unwrap();
    let valid = digits::read_digits(&committed(), Split::Valid).unwrap();
    assert_eq!(train.len() + valid.len(), SOURCE_IMAGES);
    for split in [&train, &valid] {
        for class in 0..CLASSES as u8 {
            assert!(
                split.iter().any(|d| d.label == class),
                "class {class} missing"
            );
        }
    }
    // No image of the validation split is a copy of a training one.
    assert!(valid.iter().all(|v| !train.contains(v)));
}

#[test]
fn prepare_rebuilds_the_committed_files_from_the_wheel() {
    let dir = PathBuf::from(
        std::env::var_os("UNMASK_DIGITS_SOURCES")
            .unwrap_or_else(|| digits::DEFAULT_WHEEL_DIR.into()),
    );
    let wheel = dir.join(digits::WHEEL_FILE);
    assert!(
        wheel.is_file(),
        "{} is missing: run scripts/digits-source.sh {}",
        wheel.display(),
        dir.display()
    );
    let out = std::env::temp_dir().join(format!("unmask-digits-{}", std::process::id()));
    let command = "unmask prepare --digits --out data/digits --valid-share 0.1";
    digits::prepare_digits(&wheel, &out, digits::DEFAULT_DIGITS_VALID_SHARE, command).unwrap();
    for file in ["train.csv.gz", "valid.csv.gz", digits::DIGITS_MANIFEST] {
        assert_eq!(
            std::fs::read(out.join(file)).unwrap(),
            std::fs::read(committed().join(file)).unwrap(),
            "{file} differs from the committed one"
        );
    }
    // A damaged wheel is refused before it is read.
    let mut bytes = std::fs::read(&wheel).unwrap();
    bytes[1000] ^= 1;
    let bad = out.join("bad.whl");
    std::fs::write(&bad, &bytes).unwrap();
    let err = digits::prepare_digits(&bad, &out, 0.1, command).unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn the_page_s_real_digits_are_the_first_validation_image_of_each_class() {
    let valid = digits::read_digits(&committed(), Split::Valid).unwrap();
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("www/models/default/ddpm/examples.json");
    let text = std::fs::read_to_string(&shipped).unwrap();
    let examples = unmask::page::images::DigitExamples::from_json(&text).unwrap();
    assert_eq!(
        examples,
        digits::examples(&valid),
        "run `unmask prepare --digits --examples {}`",
        shipped.display()
    );
    assert_eq!(
        examples.images.iter().map(|e| e.class).collect::<Vec<_>>(),
        (0..CLASSES).collect::<Vec<_>>()
    );
    for e in &examples.images {
        let first = valid
            .iter()
            .find(|d| usize::from(d.label) == e.class)
            .unwrap();
        assert_eq!(e.x, first.scaled());
    }
    // A damaged file is refused with what is wrong.
    let err = unmask::page::images::DigitExamples::from_json(&text.replacen("-1.0", "-3.0", 1))
        .unwrap_err();
    assert!(err.contains("[−1, 1]"), "{err}");
}
