//! Numbers: replacing a value by the lower bound of its bucket, `floor(value / width) * width`.
//!
//! Buckets start at zero and extend both ways, so with width 10 the value 37 lands as 30 and
//! -3 as -10. The bucket `[lower, lower + width)` always contains the value. A value whose
//! bucket cannot be represented (an overflow at the edge of the type, or a NaN or infinity)
//! gives `None`, which lands as null.

/// Lower bound of the bucket of an integer; `None` if `width` is not positive or the bound
/// overflows.
pub fn bucket_int(value: i64, width: i64) -> Option<i64> {
    if width <= 0 {
        return None;
    }
    value.div_euclid(width).checked_mul(width)
}

/// Lower bound of the bucket of a floating-point number; `None` if either is not finite or
/// `width` is not positive.
pub fn bucket_float(value: f64, width: f64) -> Option<f64> {
    if !value.is_finite() || !width.is_finite() || width <= 0.0 {
        return None;
    }
    let mut lower = (value / width).floor() * width;
    // The division and product round; move by one bucket if that put the bound on the wrong
    // side of the value.
    if lower > value {
        lower -= width;
    } else if lower + width <= value {
        lower += width;
    }
    (lower.is_finite() && lower <= value && value < lower + width).then_some(lower)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_start_at_zero_and_go_both_ways() {
        assert_eq!(bucket_int(37, 10), Some(30));
        assert_eq!(bucket_int(30, 10), Some(30));
        assert_eq!(bucket_int(-3, 10), Some(-10));
        assert_eq!(bucket_int(-10, 10), Some(-10));
        assert_eq!(bucket_int(0, 10), Some(0));
        assert_eq!(bucket_int(5, 0), None);
        assert_eq!(bucket_int(i64::MIN + 1, 3), None, "the bound would be below i64::MIN");
        assert_eq!(bucket_float(37.5, 10.0), Some(30.0));
        assert_eq!(bucket_float(-0.5, 0.25), Some(-0.5));
        assert_eq!(bucket_float(-0.6, 0.25), Some(-0.75));
        assert_eq!(bucket_float(0.3, 0.1).map(|b| b < 0.3), Some(true));
        assert_eq!(bucket_float(f64::NAN, 1.0), None);
        assert_eq!(bucket_float(f64::INFINITY, 1.0), None);
        assert_eq!(bucket_float(1.0, 0.0), None);
    }

    proptest! {
        #[test]
        fn integer_buckets_contain_the_value(value in -1_000_000_000_000i64..1_000_000_000_000, width in 1i64..100_000) {
            let lower = bucket_int(value, width).unwrap();
            prop_assert!(lower <= value && value < lower + width);
            prop_assert_eq!(lower % width, 0);
        }

        #[test]
        fn integer_buckets_never_panic(value: i64, width: i64) {
            if let Some(lower) = bucket_int(value, width) {
                prop_assert!(lower <= value && i128::from(value) < i128::from(lower) + i128::from(width));
            }
        }

        #[test]
        fn float_buckets_contain_the_value(
            value in -1.0e9f64..1.0e9,
            width in prop_oneof![Just(0.1), Just(0.25), Just(0.5), Just(1.0), Just(2.5), Just(10.0), 0.001f64..1000.0],
        ) {
            let lower = bucket_float(value, width).unwrap();
            prop_assert!(lower <= value && value < lower + width, "{lower} for {value} width {width}");
        }
    }
}
