//! Embeds every schema file under `avro/<subject>/v<N>.avsc` into the crate, so the catalogue
//! compiled into `sluice` is exactly what is in the repository (the files are the single source
//! of truth; nothing is listed by hand).

use std::{env, fs, path::Path};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    let mut subjects: Vec<_> = fs::read_dir(&root)
        .expect("schemas/avro must exist")
        .map(|entry| entry.expect("readable schemas/avro").path())
        .filter(|path| path.is_dir())
        .collect();
    subjects.sort();
    for subject_dir in subjects {
        println!("cargo:rerun-if-changed={}", subject_dir.display());
        let subject = subject_dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = fs::read_dir(&subject_dir)
            .expect("readable subject directory")
            .map(|entry| entry.expect("readable subject directory").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "avsc"))
            .collect();
        files.sort();
        for file in files {
            println!("cargo:rerun-if-changed={}", file.display());
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            entries.push(format!(
                "    ({subject:?}, {stem:?}, include_str!({path:?})),\n",
                path = file.display().to_string()
            ));
        }
    }
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded_schemas.rs");
    let body = format!(
        "/// (subject, file stem such as `v1`, schema JSON) for every embedded schema file.\n\
         pub(crate) const EMBEDDED_SCHEMA_FILES: &[(&str, &str, &str)] = &[\n{}];\n",
        entries.concat()
    );
    fs::write(out, body).expect("write embedded_schemas.rs");
}
