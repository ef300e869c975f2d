//! Broker connection settings, the way Kafka users expect to give them: a bootstrap list plus
//! any librdkafka property (`-X key=value`), so TLS and SASL work without code changes.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

/// librdkafka properties whose values are secrets and must never be printed.
const SECRET_PROPERTIES: &[&str] =
    &["sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem", "sasl.oauthbearer.client.secret"];

/// Builds the base client configuration shared by every producer and consumer.
pub fn client_config(bootstrap_servers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers).set("client.id", "sluice");
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// Reads librdkafka properties from the `[kafka]` table of a TOML file. Values may be strings,
/// numbers or booleans; they are passed to librdkafka as text.
pub fn load_properties(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{} is not valid TOML: {}", path.display(), e.message()))?;
    let Some(kafka) = table.get("kafka") else {
        return Err(format!("{} has no [kafka] table", path.display()));
    };
    let kafka = kafka.as_table().ok_or_else(|| format!("{}: `kafka` must be a table", path.display()))?;
    kafka
        .iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(x) => x.to_string(),
                _ => return Err(format!("{}: kafka.{key} must be a string, number or boolean", path.display())),
            };
            Ok((key.clone(), value))
        })
        .collect()
}

/// The high watermark (next offset to be written) of every partition of the given topics,
/// keyed by (topic, partition). Blocks on the network.
pub fn high_watermarks(
    client: &ClientConfig,
    topics: &BTreeMap<String, String>,
) -> Result<BTreeMap<(String, i32), i64>, String> {
    sluice_producers::read_back::high_watermarks(client, topics.values().map(String::as_str))
        .map_err(|e| format!("cannot read where the topics end: {e}"))
}

/// Parses one `key=value` property given with `-X`.
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{}` is not key=value", redact(text)))?;
    if key.trim().is_empty() {
        return Err("a librdkafka property needs a name before `=`".to_owned());
    }
    Ok((key.trim().to_owned(), value.to_owned()))
}

/// A property for display, with secret values hidden.
pub fn redact(text: &str) -> String {
    match text.split_once('=') {
        Some((key, _)) if SECRET_PROPERTIES.contains(&key.trim()) => format!("{key}=<redacted>"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_pass_through_and_secrets_are_redacted() {
        let property = parse_property("sasl.password=hunter2").unwrap();
        let config =
            client_config("127.0.0.1:9092", &[property, parse_property("security.protocol=SASL_SSL").unwrap()]);
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(redact("sasl.password=hunter2"), "sasl.password=<redacted>");
        let error = parse_property("sasl.password").unwrap_err();
        assert!(!error.contains("hunter2"));
        assert!(parse_property("=x").is_err());
    }

    #[test]
    fn kafka_table_of_a_config_file_becomes_properties() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "[kafka]\n\"security.protocol\" = \"SASL_SSL\"\n\"fetch.max.bytes\" = 1048576\n")
            .unwrap();
        let properties = load_properties(&path).unwrap();
        assert!(properties.contains(&("security.protocol".into(), "SASL_SSL".into())));
        assert!(properties.contains(&("fetch.max.bytes".into(), "1048576".into())));
        std::fs::write(&path, "[other]\n").unwrap();
        assert!(load_properties(&path).unwrap_err().contains("[kafka]"));
    }
}
