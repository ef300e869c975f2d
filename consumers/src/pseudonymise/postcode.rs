//! UK postcodes: reducing a full postcode to its district or sector.
//!
//! A postcode such as `LS6 2QT` is an *outward code* (`LS6`, the postcode district, roughly
//! 10,000 households) and an *inward code* (`2QT`). The inward code's digit gives the *sector*
//! (`LS6 2`, roughly 3,000 households); its two letters narrow it to a street or part of one
//! (about 15 households) and are never landed.
//!
//! Text not shaped like a postcode (outward code: one or two letters, a digit, then optionally
//! a letter or digit; inward code: a digit and two letters) gives `None`, so the lander writes
//! null rather than whatever the source sent.

/// The outward and inward parts of a postcode, upper-cased and without spaces.
fn split(postcode: &str) -> Option<(String, String)> {
    let compact: String = postcode.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_bytes = inward.as_bytes();
    let inward_ok = inward_bytes[0].is_ascii_digit() && inward_bytes[1..].iter().all(u8::is_ascii_alphabetic);
    (valid_outward(outward.as_bytes()) && inward_ok).then(|| (outward.to_owned(), inward.to_owned()))
}

/// One or two letters, a digit, then optionally one letter or digit (`M1`, `LS6`, `SW1A`).
fn valid_outward(outward: &[u8]) -> bool {
    let letters = outward.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if !(1..=2).contains(&letters) {
        return false;
    }
    match &outward[letters..] {
        [digit] => digit.is_ascii_digit(),
        [digit, last] => digit.is_ascii_digit() && last.is_ascii_alphanumeric(),
        _ => false,
    }
}

/// The outward code of a UK postcode (`LS6 2QT` to `LS6`, `SW1A1AA` to `SW1A`), or `None` if the
/// text is not shaped like a postcode.
pub fn outward_code(postcode: &str) -> Option<String> {
    split(postcode).map(|(outward, _)| outward)
}

/// The sector of a UK postcode: outward code, a space and the inward digit (`LS6 2QT` to
/// `LS6 2`), or `None` if the text is not shaped like a postcode.
pub fn postcode_sector(postcode: &str) -> Option<String> {
    split(postcode).map(|(outward, inward)| format!("{outward} {}", &inward[..1]))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn postcodes_reduce_to_outward_codes() {
        assert_eq!(outward_code("LS6 2QT").as_deref(), Some("LS6"));
        assert_eq!(outward_code("sw1a 1aa").as_deref(), Some("SW1A"));
        assert_eq!(outward_code("M1 1AE").as_deref(), Some("M1"));
        assert_eq!(outward_code("EC1A1BB").as_deref(), Some("EC1A"));
        assert_eq!(outward_code("not a postcode"), None);
        assert_eq!(outward_code("12345"), None);
        assert_eq!(outward_code("1A1 1AA"), None);
        assert_eq!(outward_code("ABC 1AA"), None);
        assert_eq!(outward_code(""), None);
    }

    #[test]
    fn postcodes_reduce_to_sectors() {
        assert_eq!(postcode_sector("LS6 2QT").as_deref(), Some("LS6 2"));
        assert_eq!(postcode_sector("sw1a1aa").as_deref(), Some("SW1A 1"));
        assert_eq!(postcode_sector("M1 1AE").as_deref(), Some("M1 1"));
        assert_eq!(postcode_sector("LS6 QQT"), None);
        assert_eq!(postcode_sector("LS6 2Q"), None);
        assert_eq!(postcode_sector("Flat 2, 27 Otley Road"), None);
    }

    proptest! {
        #[test]
        fn outward_code_never_returns_the_inward_part(outward in "[A-Z]{1,2}[0-9][0-9A-Z]?", inward in "[0-9][A-Z]{2}") {
            let code = outward_code(&format!("{outward} {inward}")).unwrap();
            prop_assert_eq!(code, outward);
        }

        #[test]
        fn sector_never_contains_the_last_two_letters(
            outward in "[A-Za-z]{1,2}[0-9][0-9A-Za-z]?",
            digit in "[0-9]",
            letters in "[A-Za-z]{2}",
            space in " ?",
        ) {
            let sector = postcode_sector(&format!("{outward}{space}{digit}{letters}")).unwrap();
            prop_assert_eq!(&sector, &format!("{} {digit}", outward.to_ascii_uppercase()));
            prop_assert!(sector.ends_with(&digit));
            prop_assert!(sector.len() <= 6);
        }

        #[test]
        fn anything_else_gives_nothing_rather_than_itself(text in "\\PC{0,12}") {
            for reduced in [outward_code(&text), postcode_sector(&text)].into_iter().flatten() {
                prop_assert_ne!(reduced.replace(' ', ""), text.replace(' ', "").to_ascii_uppercase());
            }
        }
    }
}
