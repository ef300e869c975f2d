//! # sluice: governed streaming of clinical events into pseudonymised Parquet
//!
//! This package holds the one `sluice` command, one module per subcommand ([`commands`]), and
//! the pieces that tie the workspace crates together: the topic definitions ([`topics`]), broker
//! connection settings ([`broker`]), pseudonymisation keys ([`keys`]), the landing pipeline
//! every lander is built with ([`pipeline`]), the producing services ([`services`]), the
//! governance [`report`], OpenLineage emission ([`lineage`]) and the end-to-end [`demo`].
//!
//! * `sluice-schemas`: the Avro catalogue, wire framing and compatibility rules;
//! * `sluice-producers`: sources of events and the Kafka publisher;
//! * `sluice-consumers`: consent, pseudonymisation and exactly-once Parquet landing.

pub mod broker;
pub mod commands;
pub mod demo;
pub mod keys;
pub mod lineage;
pub mod observability;
pub mod pipeline;
pub mod progress;
pub mod provision;
pub mod report;
pub mod services;
pub mod topics;
