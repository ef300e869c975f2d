//! Small-number suppression: how every count in the governance report is shown.
//!
//! A count of 1 to 7 is shown as `<8`, 0 as `0`, and every count of 8 or more rounded to the
//! nearest 10 (halves up). Every number the page shows is then a multiple of 10, so no sum or
//! difference of shown numbers (a total minus the other cells of its row, say) can be 1 to 7:
//! a suppressed cell cannot be backed out of the cells and totals around it.

/// Smallest count shown as a number.
pub const THRESHOLD: u64 = 8;

/// Shown counts of `THRESHOLD` or more are rounded to a multiple of this.
pub const ROUNDING: u64 = 10;

/// A count as the report may show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Nothing: shown as `0`.
    Zero,
    /// From 1 to 7: shown as `<8`, never as its value.
    Suppressed,
    /// 8 or more, rounded to the nearest multiple of [`ROUNDING`].
    Rounded(u64),
}

impl Shown {
    /// Applies the rule to a count.
    pub fn of(count: u64) -> Self {
        match count {
            0 => Shown::Zero,
            1..THRESHOLD => Shown::Suppressed,
            _ => Shown::Rounded(count.saturating_add(ROUNDING / 2) / ROUNDING * ROUNDING),
        }
    }

    /// The value a chart may scale by: 0 for zero and suppressed counts (which are drawn at a
    /// fixed placeholder size instead).
    pub fn value(self) -> u64 {
        match self {
            Shown::Rounded(value) => value,
            Shown::Zero | Shown::Suppressed => 0,
        }
    }

    /// Whether the count is hidden.
    pub fn is_suppressed(self) -> bool {
        self == Shown::Suppressed
    }
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Zero => f.write_str("0"),
            Shown::Suppressed => write!(f, "<{THRESHOLD}"),
            Shown::Rounded(value) => write!(f, "{value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_stays_one_to_seven_are_suppressed_and_the_rest_round_to_tens() {
        assert_eq!(Shown::of(0).to_string(), "0");
        for count in 1..=7 {
            assert_eq!(Shown::of(count), Shown::Suppressed, "{count}");
            assert_eq!(Shown::of(count).to_string(), "<8", "{count}");
            assert_eq!(Shown::of(count).value(), 0, "{count}: charts cannot scale by it");
        }
        let expected = [(8, 10), (9, 10), (10, 10), (14, 10), (15, 20), (24, 20), (25, 30), (1_234, 1_230)];
        for (count, shown) in expected {
            assert_eq!(Shown::of(count), Shown::Rounded(shown), "{count}");
        }
        assert_eq!(Shown::of(u64::MAX).value() % ROUNDING, 0);
    }

    #[test]
    fn no_difference_of_shown_numbers_reveals_a_suppressed_count() {
        // Every shown number is a multiple of 10, so a total minus any shown cells is too.
        let shown: Vec<u64> = (0..=500).map(|count| Shown::of(count).value()).collect();
        for &total in &shown {
            for &cell in &shown {
                let difference = total.abs_diff(cell);
                assert!(!(1..=7).contains(&difference), "{total} - {cell}");
            }
        }
        for count in 8..=500 {
            let value = Shown::of(count).value();
            assert!(value >= 10 && count.abs_diff(value) <= 5, "{count} -> {value}");
        }
    }
}
