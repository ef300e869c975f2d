//! Broker connection settings, the way Kafka users expect to give them: a bootstrap list plus
//! any librdkafka property (`-X key=value`), so TLS and SASL work without code changes.
//!
//! Secrets (`sasl.password`, `ssl.key.password`...) are read from files or the environment only:
//! `-X` refuses them, because a command line is visible to every user of the machine (`ps`,
//! `/proc/PID/cmdline`) and lands in shell history. In the `[kafka]` table of `--kafka-config` a
//! secret may be written out (keep that file readable only by the service account), or point at
//! where it is kept:
//!
//! ```toml
//! [kafka]
//! "sasl.password" = { env = "KAFKA_PASSWORD" }              # an environment variable
//! "ssl.key.password" = { file = "/run/secrets/kafka-key" }  # a file, trailing newline removed
//! ```
//!
//! Errors name the property, never its value.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use sluice_producers::secure_listener::{Secret, SecretSource};

/// librdkafka properties whose values are secrets and must never be printed or taken from the
/// command line. Any property whose name ends in `password` or `secret` is treated the same.
const SECRET_PROPERTIES: &[&str] = &["ssl.key.pem", "sasl.oauthbearer.config", "ssl_engine_callback_data"];

/// Whether the value of librdkafka property `key` is a secret.
pub fn is_secret(key: &str) -> bool {
    let key = key.trim();
    SECRET_PROPERTIES.contains(&key) || key.ends_with("password") || key.ends_with("secret")
}

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
/// numbers or booleans, passed to librdkafka as text, or (for secrets) `{ env = "NAME" }` or
/// `{ file = "PATH" }`, read from there.
pub fn load_properties(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    load_properties_with(path, |name| std::env::var(name).ok())
}

/// [`load_properties`] with the environment given, so tests need not change the process's.
fn load_properties_with(
    path: &std::path::Path,
    environment: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
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
                toml::Value::Table(place) => secret_from(place, &environment)
                    .map_err(|why| format!("{}: kafka.\"{key}\": {why}", path.display()))?
                    .expose()
                    .to_owned(),
                _ => {
                    return Err(format!(
                        "{}: kafka.\"{key}\" must be a string, number, boolean, {{ env = \"NAME\" }} or {{ file = \"PATH\" }}",
                        path.display()
                    ));
                }
            };
            Ok((key.clone(), value))
        })
        .collect()
}

/// The secret kept where `{ env = "NAME" }` or `{ file = "PATH" }` says. The reasons it gives
/// name the variable or file, never what it holds.
fn secret_from(place: &toml::Table, environment: &impl Fn(&str) -> Option<String>) -> Result<Secret, String> {
    let source: SecretSource = toml::Value::Table(place.clone())
        .try_into()
        .map_err(|_| "a table here must be { env = \"NAME\" } or { file = \"PATH\" }".to_owned())?;
    source.read_with(environment)
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
    // The text is not echoed: a mistyped `sasl.password:...` would otherwise print the password.
    let (key, value) = text.split_once('=').ok_or("a librdkafka property is given as key=value")?;
    let key = key.trim();
    if key.is_empty() {
        return Err("a librdkafka property needs a name before `=`".to_owned());
    }
    if is_secret(key) {
        return Err(format!(
            "`{key}` is a secret and is not taken from the command line, where other users of the machine \
             can read it: put it in the [kafka] table of --kafka-config, as text or as {{ env = \"NAME\" }} \
             or {{ file = \"PATH\" }}"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_pass_through_and_secrets_are_refused_on_the_command_line() {
        let config = client_config(
            "127.0.0.1:9092",
            &[parse_property("security.protocol=SASL_SSL").unwrap(), parse_property(" linger.ms =5").unwrap()],
        );
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("linger.ms"), Some("5"));
        for secret in ["sasl.password=hunter2", "ssl.key.password=hunter2", "sasl.oauthbearer.client.secret=hunter2"] {
            let error = parse_property(secret).unwrap_err();
            assert!(error.contains("--kafka-config"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
        assert!(is_secret("sasl.password") && is_secret("ssl.keystore.password") && !is_secret("sasl.username"));
        let error = parse_property("sasl.passwordhunter2").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(parse_property("=x").is_err());
    }

    #[test]
    fn secrets_in_a_config_file_come_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("kafka-key");
        std::fs::write(&secret_file, "from-a-file\n").unwrap();
        let path = dir.path().join("sluice.toml");
        let config = format!(
            "[kafka]\n\"sasl.password\" = {{ env = \"KAFKA_PASSWORD\" }}\n\"ssl.key.password\" = {{ file = \"{}\" }}\n\"sasl.username\" = \"sluice\"\n",
            secret_file.display()
        );
        std::fs::write(&path, &config).unwrap();
        let environment = |name: &str| (name == "KAFKA_PASSWORD").then(|| "from-the-environment".to_owned());
        let properties = load_properties_with(&path, environment).unwrap();
        assert!(properties.contains(&("sasl.password".into(), "from-the-environment".into())));
        assert!(properties.contains(&("ssl.key.password".into(), "from-a-file".into())));
        assert!(properties.contains(&("sasl.username".into(), "sluice".into())));

        let unset = load_properties_with(&path, |_| None).unwrap_err();
        assert!(unset.contains("KAFKA_PASSWORD is not set"), "{unset}");
        std::fs::remove_file(&secret_file).unwrap();
        let missing = load_properties_with(&path, environment).unwrap_err();
        assert!(missing.contains("cannot read") && missing.contains("ssl.key.password"), "{missing}");
        std::fs::write(&path, "[kafka]\n\"sasl.password\" = { vault = \"x\" }\n").unwrap();
        assert!(load_properties_with(&path, environment).unwrap_err().contains("{ env = \"NAME\" }"));
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
