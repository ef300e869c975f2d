//! Rust enums that stand for Avro enums of the catalogue.

/// A Rust enum whose variants are the symbols of one Avro enum of the schema files.
///
/// The table [`SYMBOLS`](AvroEnum::SYMBOLS) is the only place a variant is paired with its
/// symbol; indices are never written by hand (the writer finds a symbol's index in the schema
/// it writes). The schema check (`schemas/src/model/tests.rs`) fails when the table and the
/// schema's symbol list are not one to one.
pub trait AvroEnum: Copy + PartialEq + std::fmt::Debug + Sized + 'static {
    /// The Avro enum's name, without namespace, as in the schema files (e.g. `AdministrativeSex`).
    const AVRO_NAME: &'static str;
    /// Every variant with its symbol.
    const SYMBOLS: &'static [(Self, &'static str)];
    /// The allowed symbols as a phrase, for the error that an unknown symbol gives.
    const ALLOWED: &'static str;

    /// This variant's symbol.
    fn symbol(self) -> &'static str {
        Self::SYMBOLS
            .iter()
            .find(|(variant, _)| *variant == self)
            .map(|(_, symbol)| *symbol)
            .expect("every variant is in the SYMBOLS table (checked by the schema check)")
    }

    /// The variant of a symbol, if it is one of this enum's.
    fn from_symbol(symbol: &str) -> Option<Self> {
        Self::SYMBOLS.iter().find(|(_, s)| *s == symbol).map(|(variant, _)| *variant)
    }
}
