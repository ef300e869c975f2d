//! Event ids, and the model's Avro round trip over every valid event the generators make.

use proptest::prelude::*;

use super::*;

#[test]
fn stable_event_ids_depend_on_every_part_and_its_boundaries() {
    let a = stable_event_id(&["PAS", "RX1", "MSG0001", "0"]);
    assert_eq!(a, stable_event_id(&["PAS", "RX1", "MSG0001", "0"]));
    assert_ne!(a, stable_event_id(&["PAS", "RX1", "MSG0001", "1"]));
    assert_ne!(stable_event_id(&["AB", "C"]), stable_event_id(&["A", "BC"]));
    assert_eq!(a.get_version_num(), 8);
}

proptest! {
    #[test]
    fn from_record_inverts_into_record(event in arbitrary::valid_event()) {
        prop_assert_eq!(event.check(arbitrary::now()), Ok(()), "the strategy makes valid events");
        let record = event.clone().validate(arbitrary::now()).unwrap().into_record();
        prop_assert_eq!(ClinicalEvent::from_record(record.subject(), record.value()), Ok(event));
    }

    #[test]
    fn every_record_validates_against_its_schema_version(event in arbitrary::valid_event()) {
        let record = event.validate(arbitrary::now()).unwrap().into_record();
        let version = sluice_schemas::Catalogue::embedded().version(record.subject(), record.version()).unwrap();
        prop_assert!(record.value().validate(version.schema()));
    }
}
