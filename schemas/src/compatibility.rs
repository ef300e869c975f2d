//! BACKWARD_TRANSITIVE compatibility: every version of a subject must be able to read data
//! written with **every** earlier version, by the Avro specification's schema resolution rules.
//!
//! That is the guarantee consumers rely on: they read every message with the newest version,
//! whatever version the producer used. In practice it means a new version may add a field only
//! with a default (usually a nullable field with default `null`), may remove a field, may widen a
//! number (`int` to `long`, `float` to `double`...), and may add enum symbols; it may not rename a
//! field without an alias, change a field's type incompatibly, or drop an enum symbol that old
//! data can contain unless the enum has a default.
//!
//! The checker is written here rather than taken from apache-avro so that a failure names the
//! subject, both versions and the path of the field at fault, for the developer who has to fix it.

use std::{collections::HashMap, fmt};

use apache_avro::Schema;

use crate::Catalogue;

/// One way in which a newer version cannot read data of an older one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// Subject of both versions.
    pub subject: String,
    /// The newer version, which must be able to read.
    pub reader_version: u32,
    /// The older version, whose data must stay readable.
    pub writer_version: u32,
    /// Dotted path of the field at fault (`<record>` for the top level).
    pub field: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject `{}`: v{} cannot read data written with v{}: field `{}`: {}",
            self.subject, self.reader_version, self.writer_version, self.field, self.reason
        )
    }
}

/// Whether a consumer reading with `reader` can read data written with `writer`; when not, the
/// dotted path of the field at fault (empty for the top level) and the reason.
pub fn can_read(writer: &Schema, reader: &Schema) -> std::result::Result<(), (String, String)> {
    Context::new(writer, reader).can_read(writer, reader, "")
}

/// Checks every subject of the catalogue; returns every incompatibility found (empty when all
/// subjects are BACKWARD_TRANSITIVE compatible).
pub fn check_backward_transitive(catalogue: &Catalogue) -> Vec<Incompatibility> {
    let mut problems = Vec::new();
    for subject in catalogue.subject_names() {
        let versions = catalogue.versions(subject).expect("listed subject");
        for (reader_index, reader) in versions.iter().enumerate() {
            for writer in &versions[..reader_index] {
                let context = Context::new(writer.schema(), reader.schema());
                if let Err((field, reason)) = context.can_read(writer.schema(), reader.schema(), "") {
                    problems.push(Incompatibility {
                        subject: subject.to_owned(),
                        reader_version: reader.version(),
                        writer_version: writer.version(),
                        field: if field.is_empty() { "<record>".to_owned() } else { field },
                        reason,
                    });
                }
            }
        }
    }
    problems
}

/// Named types of both schemas, so that references can be followed.
struct Context<'s> {
    writer_names: HashMap<String, &'s Schema>,
    reader_names: HashMap<String, &'s Schema>,
}

type Mismatch = (String, String);

impl<'s> Context<'s> {
    fn new(writer: &'s Schema, reader: &'s Schema) -> Self {
        let mut writer_names = HashMap::new();
        collect_names(writer, &mut writer_names);
        let mut reader_names = HashMap::new();
        collect_names(reader, &mut reader_names);
        Context { writer_names, reader_names }
    }

    fn can_read(&self, writer: &'s Schema, reader: &'s Schema, path: &str) -> Result<(), Mismatch> {
        let writer = follow(writer, &self.writer_names);
        let reader = follow(reader, &self.reader_names);
        let fail = |reason: String| Err((path.to_owned(), reason));
        match (writer, reader) {
            (Schema::Union(writer_union), _) => {
                for branch in writer_union.variants() {
                    self.can_read(branch, reader, path).map_err(|(field, reason)| {
                        (field, format!("union branch {} written before: {reason}", kind(branch)))
                    })?;
                }
                Ok(())
            }
            (_, Schema::Union(reader_union)) => {
                if reader_union.variants().iter().any(|branch| self.can_read(writer, branch, path).is_ok()) {
                    Ok(())
                } else {
                    fail(format!("{} is not readable as any branch of the new union", kind(writer)))
                }
            }
            (Schema::Record(w), Schema::Record(r)) => {
                if w.name.name() != r.name.name() && !r.aliases.iter().flatten().any(|a| a.name() == w.name.name()) {
                    return fail(format!(
                        "record renamed from {} to {} without an alias",
                        w.name.name(),
                        r.name.name()
                    ));
                }
                for reader_field in &r.fields {
                    let field_path = if path.is_empty() {
                        reader_field.name.clone()
                    } else {
                        format!("{path}.{}", reader_field.name)
                    };
                    let writer_field =
                        w.fields.iter().find(|f| f.name == reader_field.name || reader_field.aliases.contains(&f.name));
                    match writer_field {
                        Some(writer_field) => self.can_read(&writer_field.schema, &reader_field.schema, &field_path)?,
                        None if reader_field.default.is_some() => {}
                        None => {
                            return Err((
                                field_path,
                                "is new and has no default, so older records cannot fill it".to_owned(),
                            ));
                        }
                    }
                }
                Ok(())
            }
            (Schema::Enum(w), Schema::Enum(r)) => {
                if w.name.name() != r.name.name() {
                    return fail(format!("enum renamed from {} to {}", w.name.name(), r.name.name()));
                }
                match w.symbols.iter().find(|s| !r.symbols.contains(s)) {
                    Some(missing) if r.default.is_none() => {
                        fail(format!("enum symbol {missing} was removed and the enum has no default"))
                    }
                    _ => Ok(()),
                }
            }
            (Schema::Fixed(w), Schema::Fixed(r)) => {
                if w.name.name() != r.name.name() || w.size != r.size {
                    fail(format!("fixed {}[{}] cannot be read as {}[{}]", w.name.name(), w.size, r.name.name(), r.size))
                } else {
                    Ok(())
                }
            }
            (Schema::Array(w), Schema::Array(r)) => self.can_read(&w.items, &r.items, &format!("{path}[]")),
            (Schema::Map(w), Schema::Map(r)) => self.can_read(&w.types, &r.types, &format!("{path}{{}}")),
            (Schema::Decimal(w), Schema::Decimal(r)) => {
                if w.precision != r.precision || w.scale != r.scale {
                    fail(format!(
                        "decimal({},{}) cannot be read as decimal({},{})",
                        w.precision, w.scale, r.precision, r.scale
                    ))
                } else {
                    Ok(())
                }
            }
            (w, r) if kind(w) == kind(r) || promotes(w, r) => Ok(()),
            (w, r) => fail(format!("type changed from {} to {}", kind(w), kind(r))),
        }
    }
}

/// Follows a reference to a named type defined elsewhere in the same schema.
fn follow<'s>(schema: &'s Schema, names: &HashMap<String, &'s Schema>) -> &'s Schema {
    match schema {
        Schema::Ref { name } => names.get(&name.fullname(None)).copied().unwrap_or(schema),
        other => other,
    }
}

fn collect_names<'s>(schema: &'s Schema, names: &mut HashMap<String, &'s Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.fullname(None), schema);
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema);
        }
        Schema::Fixed(f) => {
            names.insert(f.name.fullname(None), schema);
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

/// The Avro specification's promotions: int to long, float or double; long to float or double;
/// float to double; string and bytes either way.
fn promotes(writer: &Schema, reader: &Schema) -> bool {
    matches!(
        (writer, reader),
        (Schema::Int, Schema::Long | Schema::Float | Schema::Double)
            | (Schema::Long, Schema::Float | Schema::Double)
            | (Schema::Float, Schema::Double)
            | (Schema::String, Schema::Bytes)
            | (Schema::Bytes, Schema::String)
    )
}

/// A short name of a schema's type, logical types included, for comparison and messages.
fn kind(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.name()),
        Schema::Enum(e) => format!("enum {}", e.name.name()),
        Schema::Fixed(f) => format!("fixed {}", f.name.name()),
        Schema::Ref { name } => format!("reference to {}", name.name()),
        Schema::Union(_) => "union".to_owned(),
        Schema::Array(_) => "array".to_owned(),
        Schema::Map(_) => "map".to_owned(),
        other => {
            let debug = format!("{other:?}");
            let name: String = debug.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            name.to_lowercase()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(versions: &[&str]) -> Catalogue {
        Catalogue::from_files(
            versions.iter().enumerate().map(|(i, json)| ("lab".to_owned(), format!("v{}", i + 1), json.to_string())),
        )
        .unwrap()
    }

    const V1: &str = r#"{"type":"record","name":"Lab","fields":[
        {"name":"code","type":"string"},
        {"name":"value","type":"int"},
        {"name":"flag","type":{"type":"enum","name":"Flag","symbols":["LOW","HIGH"]}}]}"#;

    #[test]
    fn the_repository_catalogue_is_backward_transitive() {
        assert_eq!(check_backward_transitive(Catalogue::embedded()), vec![]);
    }

    #[test]
    fn compatible_changes_pass() {
        let v2 = r#"{"type":"record","name":"Lab","fields":[
            {"name":"code","type":"string"},
            {"name":"value","type":"double"},
            {"name":"flag","type":{"type":"enum","name":"Flag","symbols":["LOW","HIGH","CRITICAL"]}},
            {"name":"unit","type":["null","string"],"default":null}]}"#;
        let v3 = r#"{"type":"record","name":"Lab","fields":[
            {"name":"code","type":"string"},
            {"name":"result","aliases":["value"],"type":["null","double"],"default":null},
            {"name":"unit","type":["null","string"],"default":null}]}"#;
        assert_eq!(check_backward_transitive(&catalogue(&[V1, v2, v3])), vec![]);
    }

    #[test]
    fn a_new_field_without_default_is_named() {
        let v2 = r#"{"type":"record","name":"Lab","fields":[
            {"name":"code","type":"string"},
            {"name":"value","type":"int"},
            {"name":"flag","type":{"type":"enum","name":"Flag","symbols":["LOW","HIGH"]}},
            {"name":"unit","type":"string"}]}"#;
        let problems = check_backward_transitive(&catalogue(&[V1, v2]));
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "subject `lab`: v2 cannot read data written with v1: field `unit`: \
             is new and has no default, so older records cannot fill it"
        );
    }

    #[test]
    fn transitive_breaks_are_found_against_every_older_version() {
        // v2 drops `value`, v3 brings it back as a string: v3 reads v2 but not v1.
        let v2 = r#"{"type":"record","name":"Lab","fields":[
            {"name":"code","type":"string"},
            {"name":"flag","type":{"type":"enum","name":"Flag","symbols":["LOW","HIGH"]}}]}"#;
        let v3 = r#"{"type":"record","name":"Lab","fields":[
            {"name":"code","type":"string"},
            {"name":"value","type":["null","boolean"],"default":null},
            {"name":"flag","type":{"type":"enum","name":"Flag","symbols":["LOW","HIGH"]}}]}"#;
        let problems = check_backward_transitive(&catalogue(&[V1, v2, v3]));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].reader_version, problems[0].writer_version), (3, 1));
        assert_eq!(problems[0].field, "value");
        assert!(problems[0].reason.contains("int"), "{}", problems[0].reason);
    }

    #[test]
    fn removed_enum_symbols_and_narrowed_numbers_are_refused() {
        let v2 = r#"{"type":"record","name":"Lab","fields":[
            {"name":"code","type":"string"},
            {"name":"value","type":"int"},
            {"name":"flag","type":{"type":"enum","name":"Flag","symbols":["LOW"]}}]}"#;
        let problems = check_backward_transitive(&catalogue(&[V1, v2]));
        assert_eq!(problems[0].field, "flag");
        assert!(problems[0].reason.contains("HIGH"));

        let wide = V1.replace(r#""type":"int""#, r#""type":"long""#);
        let problems = check_backward_transitive(&catalogue(&[&wide, V1]));
        assert_eq!(problems[0].field, "value");
        assert_eq!(problems[0].reason, "type changed from long to int");
    }
}
