//! Applying one generalisation to one landed value.
//!
//! A value that does not have the shape its step expects (an age band that is not `40-44` or
//! `90+`, a postcode sector without its space) is withheld (`None`) rather than passed through:
//! a value nobody can generalise is not known to be safe.

use super::rules::Generalisation;

impl Generalisation {
    /// The value one step up the hierarchy; `None` when it is withheld.
    pub fn apply(&self, value: &str) -> Option<String> {
        match *self {
            Generalisation::AgeBand { width, top } => wider_age_band(value, width, top),
            Generalisation::PostcodeDistrict => {
                let (district, digit) = value.split_once(' ')?;
                (!district.is_empty() && digit.len() == 1).then(|| district.to_owned())
            }
            Generalisation::PostcodeArea => {
                let outward = value.split(' ').next()?;
                let letters: String = outward.chars().take_while(char::is_ascii_alphabetic).collect();
                (!letters.is_empty() && letters.len() <= 2).then_some(letters)
            }
            Generalisation::Prefix { chars } => {
                let prefix: String = value.chars().take(chars).collect();
                (!prefix.is_empty()).then_some(prefix)
            }
            Generalisation::Year => {
                let (year, month) = value.split_once('-')?;
                (year.len() == 4 && month.len() == 2 && year.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| year.to_owned())
            }
            Generalisation::Withhold => None,
        }
    }
}

/// `40-44` in bands of `width` years: `40-49` for 10. A band whose wider band would reach `top`,
/// and the open top band itself, become the open band from the wider band's start (`80+`).
fn wider_age_band(value: &str, width: u32, top: u32) -> Option<String> {
    let low: u32 = match value.strip_suffix('+') {
        Some(open) => open.parse().ok()?,
        None => {
            let (low, high) = value.split_once('-')?;
            let (low, high): (u32, u32) = (low.parse().ok()?, high.parse().ok()?);
            if high < low {
                return None;
            }
            low
        }
    };
    let start = low / width * width;
    if value.ends_with('+') || start + width > top {
        Some(format!("{}+", start.min(top / width * width)))
    } else {
        Some(format!("{}-{}", start, start + width - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands_widen_and_the_top_stays_open() {
        let ten = Generalisation::AgeBand { width: 10, top: 90 };
        assert_eq!(ten.apply("40-44").as_deref(), Some("40-49"));
        assert_eq!(ten.apply("45-49").as_deref(), Some("40-49"));
        assert_eq!(ten.apply("0-4").as_deref(), Some("0-9"));
        assert_eq!(ten.apply("85-89").as_deref(), Some("80-89"));
        assert_eq!(ten.apply("90+").as_deref(), Some("90+"));
        let twenty = Generalisation::AgeBand { width: 20, top: 90 };
        assert_eq!(twenty.apply("60-64").as_deref(), Some("60-79"));
        assert_eq!(twenty.apply("85-89").as_deref(), Some("80+"));
        assert_eq!(twenty.apply("80-84").as_deref(), Some("80+"));
        assert_eq!(twenty.apply("90+").as_deref(), Some("80+"));
        assert_eq!(twenty.apply("unknown"), None);
        assert_eq!(twenty.apply("44-40"), None);
    }

    #[test]
    fn postcodes_go_from_sector_to_district_to_area() {
        assert_eq!(Generalisation::PostcodeDistrict.apply("LS6 2").as_deref(), Some("LS6"));
        assert_eq!(Generalisation::PostcodeDistrict.apply("SW1A 1").as_deref(), Some("SW1A"));
        assert_eq!(Generalisation::PostcodeArea.apply("SW1A 1").as_deref(), Some("SW"));
        assert_eq!(Generalisation::PostcodeArea.apply("B1").as_deref(), Some("B"));
        assert_eq!(Generalisation::PostcodeDistrict.apply("LS62"), None);
        assert_eq!(Generalisation::PostcodeArea.apply("12 3"), None);
    }

    #[test]
    fn codes_are_cut_and_months_become_years() {
        assert_eq!(Generalisation::Prefix { chars: 3 }.apply("E11.9").as_deref(), Some("E11"));
        assert_eq!(Generalisation::Prefix { chars: 1 }.apply("E11").as_deref(), Some("E"));
        assert_eq!(Generalisation::Prefix { chars: 1 }.apply(""), None);
        assert_eq!(Generalisation::Year.apply("2026-03").as_deref(), Some("2026"));
        assert_eq!(Generalisation::Year.apply("March"), None);
        assert_eq!(Generalisation::Withhold.apply("anything"), None);
    }
}
