//! The registry's HTTP API on a real socket (port 0), asked as a registry client asks it.

use std::net::SocketAddr;

use serde_json::{Value, json};
use sluice_registry::{CatalogueRegistry, RegistryServer};
use sluice_schemas::Catalogue;
use tokio::sync::watch;

/// A registry of the ADT and observation topics, serving on a free port until the sender is dropped
/// or set.
async fn start() -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let registry = CatalogueRegistry::new(
        Catalogue::embedded(),
        [("clinical.adt".to_owned(), "adt".to_owned()), ("clinical.observation".to_owned(), "observation".to_owned())],
    );
    let server = RegistryServer::bind("127.0.0.1:0".parse().unwrap(), registry).await.unwrap();
    let address = server.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    (address, stop, tokio::spawn(server.serve(stopped)))
}

/// (status, JSON body) of a request, any status.
async fn call(address: SocketAddr, method: &'static str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{address}{path}");
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build());
        let mut response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, body) => agent
                .post(&url)
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .send(body.unwrap_or(Value::Null).to_string()),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_finds_registers_and_checks_catalogued_schemas_and_is_refused_anything_else() {
    let (address, stop, serving) = start().await;
    let adt = Catalogue::embedded().latest("adt").unwrap();

    assert_eq!(
        call(address, "GET", "/subjects", None).await,
        (200, json!(["clinical.adt-value", "clinical.observation-value"]))
    );
    assert_eq!(call(address, "GET", "/subjects/clinical.adt-value/versions", None).await, (200, json!([1, 2])));
    let (status, latest) = call(address, "GET", "/subjects/clinical.adt-value/versions/latest", None).await;
    assert_eq!((status, &latest["id"], &latest["version"]), (200, &json!(adt.schema_id()), &json!(2)));
    assert_eq!(latest["schema"], adt.json(), "the catalogue's schema, documentation and labels included");
    let (status, by_id) = call(address, "GET", &format!("/schemas/ids/{}", adt.schema_id()), None).await;
    assert_eq!((status, by_id["schema"].as_str()), (200, Some(adt.json())));
    let (_, where_) = call(address, "GET", &format!("/schemas/ids/{}/versions", adt.schema_id()), None).await;
    assert_eq!(where_, json!([{ "subject": "clinical.adt-value", "version": 2 }]));

    // Registering what the catalogue holds returns its id; anything else is refused, saying how
    // schemas change.
    let (status, registered) =
        call(address, "POST", "/subjects/clinical.adt-value/versions", Some(json!({ "schema": adt.json() }))).await;
    assert_eq!((status, &registered["id"]), (200, &json!(adt.schema_id())));
    let novel = r#"{"type": "record", "name": "Adt", "namespace": "sluice.clinical", "fields": [{"name": "x", "type": "int"}]}"#;
    let (status, refused) =
        call(address, "POST", "/subjects/clinical.adt-value/versions", Some(json!({ "schema": novel }))).await;
    assert_eq!((status, &refused["error_code"]), (409, &json!(409)));
    assert!(refused["message"].as_str().unwrap().contains("schemas/avro/adt/"), "{refused}");
    let (status, lookup) =
        call(address, "POST", "/subjects/clinical.adt-value", Some(json!({ "schema": novel }))).await;
    assert_eq!((status, &lookup["error_code"]), (404, &json!(40403)));
    let (status, lookup) =
        call(address, "POST", "/subjects/clinical.adt-value", Some(json!({ "schema": adt.json() }))).await;
    assert_eq!((status, &lookup["version"]), (200, &json!(2)));
    let (status, bad) =
        call(address, "POST", "/subjects/clinical.adt-value/versions", Some(json!({ "schema": "not json" }))).await;
    assert_eq!((status, &bad["error_code"]), (422, &json!(42201)));

    // Compatibility, configuration and the read-only rest.
    let (status, check) = call(
        address,
        "POST",
        "/compatibility/subjects/clinical.adt-value/versions/latest?verbose=true",
        Some(json!({ "schema": novel })),
    )
    .await;
    assert_eq!((status, &check["is_compatible"]), (200, &json!(false)));
    assert!(!check["messages"].as_array().unwrap().is_empty());
    assert_eq!(call(address, "GET", "/config", None).await.1["compatibilityLevel"], "BACKWARD_TRANSITIVE");
    assert_eq!(call(address, "DELETE", "/subjects/clinical.adt-value", None).await.0, 405);
    let (status, missing) = call(address, "GET", "/subjects/clinical.nothing-value/versions", None).await;
    assert_eq!((status, &missing["error_code"]), (404, &json!(40401)));
    assert_eq!(call(address, "GET", "/schemas/ids/7", None).await.1["error_code"], 40403);

    stop.send(true).unwrap();
    serving.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_ids_resolve_to_catalogued_versions_and_an_unreachable_registry_is_an_error_not_an_answer() {
    use sluice_registry::RegistryIds;
    use sluice_schemas::SchemaIdResolver;
    let (address, stop, serving) = start().await;
    let catalogue = Catalogue::embedded();
    let adt = catalogue.latest("adt").unwrap();
    let ids = RegistryIds::new(&format!("http://{address}/"), catalogue);
    let answers = tokio::task::spawn_blocking(move || {
        (ids.catalogued_fingerprint(adt.schema_id()), ids.catalogued_fingerprint(7), ids.catalogued_fingerprint(7))
    })
    .await
    .unwrap();
    assert_eq!(answers, (Ok(Some(adt.fingerprint())), Ok(None), Ok(None)));
    stop.send(true).unwrap();
    serving.await.unwrap().unwrap();

    let unreachable = RegistryIds::new("http://127.0.0.1:9", catalogue);
    let answer =
        tokio::task::spawn_blocking(move || unreachable.catalogued_fingerprint(adt.schema_id())).await.unwrap();
    assert!(answer.as_ref().is_err_and(|reason| reason.contains("127.0.0.1:9")), "{answer:?}");
}
