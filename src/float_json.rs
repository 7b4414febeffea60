//! `f64` fields whose JSON survives NaN and infinity.
//!
//! serde_json writes a non-finite `f64` as `null` and then refuses to read `null` back as a
//! number, so one NaN confidence once made a whole worker message unreadable ("invalid type:
//! null, expected f64"). Fields marked `#[serde(with = "crate::float_json")]` are written as JSON
//! numbers when finite and as the strings `"NaN"`, `"inf"` and `"-inf"` otherwise, and read from
//! any of those (and from `null`, as NaN, for files written before). Whether a non-finite value
//! is acceptable is the reader's business (a trajectory's check refuses one); the format never
//! fails on it.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `x`.
pub fn serialize<S: Serializer>(x: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    match *x {
        x if x.is_finite() => serializer.serialize_f64(x),
        x if x.is_nan() => serializer.serialize_str("NaN"),
        x if x > 0.0 => serializer.serialize_str("inf"),
        _ => serializer.serialize_str("-inf"),
    }
}

/// Reads a number, `"NaN"`, `"inf"`, `"-inf"` or `null`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_any(FloatVisitor)
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(r#"a number, "NaN", "inf" or "-inf""#)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

/// The same for `Option<f64>`: `null` is `None` here.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `x`.
    pub fn serialize<S: Serializer>(x: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(x) => super::serialize(x, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null` as `None`, anything else as [`super::deserialize`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] f64);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(x)| x))
    }
}

/// The same for `Vec<f32>` (pixels): each element a number, or one of the three strings.
pub mod f32s {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `xs`.
    pub fn serialize<S: Serializer>(xs: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(xs.len()))?;
        for &x in xs {
            if x.is_finite() {
                seq.serialize_element(&x)?;
            } else {
                seq.serialize_element(&Finite(f64::from(x)))?;
            }
        }
        seq.end()
    }

    struct Finite(f64);

    impl serde::Serialize for Finite {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            super::serialize(&self.0, serializer)
        }
    }

    /// Reads what [`serialize`] writes (and `null` as NaN).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] f64);
        Ok(Vec::<Wrapped>::deserialize(deserializer)?
            .into_iter()
            .map(|Wrapped(x)| x as f32)
            .collect())
    }
}

/// The same for `Option<Vec<f64>>` (per-image probabilities).
pub mod option_f64s {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super")] f64);

    /// Writes `xs`.
    pub fn serialize<S: Serializer>(
        xs: &Option<Vec<f64>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match xs {
            Some(xs) => {
                let wrapped: Vec<Wrapped> = xs.iter().map(|&x| Wrapped(x)).collect();
                wrapped.serialize(serializer)
            }
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null` as `None`, a list as [`super::deserialize`] reads each element.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<f64>>, D::Error> {
        Ok(Option::<Vec<Wrapped>>::deserialize(deserializer)?
            .map(|v| v.into_iter().map(|Wrapped(x)| x).collect()))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::option", default)]
        y: Option<f64>,
    }

    #[test]
    fn non_finite_values_round_trip_and_finite_ones_stay_numbers() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25, -3.0] {
            for y in [None, Some(f64::NAN), Some(1.5)] {
                let json = serde_json::to_string(&Both { x, y }).unwrap();
                let back: Both = serde_json::from_str(&json).unwrap();
                assert_eq!(back.x.to_bits(), x.to_bits(), "{json}");
                assert_eq!(back.y.map(f64::to_bits), y.map(f64::to_bits), "{json}");
            }
        }
        assert_eq!(
            serde_json::to_string(&Both { x: 0.5, y: None }).unwrap(),
            r#"{"x":0.5,"y":null}"#
        );
        // Files written before: null reads as NaN; an absent option as None; integers as floats.
        let old: Both = serde_json::from_str(r#"{"x":null}"#).unwrap();
        assert!(old.x.is_nan() && old.y.is_none());
        assert_eq!(serde_json::from_str::<Both>(r#"{"x":2}"#).unwrap().x, 2.0);
        assert!(serde_json::from_str::<Both>(r#"{"x":"many"}"#).is_err());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Lists {
        #[serde(with = "super::f32s")]
        x: Vec<f32>,
        #[serde(with = "super::option_f64s", default)]
        p: Option<Vec<f64>>,
    }

    #[test]
    fn lists_with_non_finite_values_round_trip_and_finite_ones_stay_numbers() {
        let lists = Lists {
            x: vec![0.5, f32::NAN, f32::NEG_INFINITY, -0.12345],
            p: Some(vec![f64::INFINITY, 0.25]),
        };
        let json = serde_json::to_string(&lists).unwrap();
        assert_eq!(
            json,
            r#"{"x":[0.5,"NaN","-inf",-0.12345],"p":["inf",0.25]}"#
        );
        let back: Lists = serde_json::from_str(&json).unwrap();
        assert_eq!(back.x[0], 0.5);
        assert!(back.x[1].is_nan() && back.x[2] == f32::NEG_INFINITY);
        assert_eq!(back.p, lists.p);
        let none: Lists = serde_json::from_str(r#"{"x":[]}"#).unwrap();
        assert_eq!(none, Lists { x: vec![], p: None });
    }
}
