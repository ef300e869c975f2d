//! The governance commands as an information governance officer runs them: `sluice demo` lands
//! a lake with keys from a key file, `sluice erase` removes one patient's rows (NHS number given
//! on standard input), `sluice keys rotate` changes the key without losing erasability, and
//! `sluice audit verify` checks the trail and the files it records, and notices when either is edited.

mod support;

use std::{
    collections::HashMap,
    io::Write,
    path::Path,
    process::{Output, Stdio},
};

use sluice_producers::{SyntheticSource, SyntheticSourceConfig};
use support::*;

fn sluice(args: &[&str], keys: &Path, stdin: Option<&str>) -> Output {
    let mut child = support::sluice()
        .args(args)
        .env("SLUICE_KEYS_FILE", keys)
        .env_remove("SLUICE_KEYS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Rows per pseudonym over every file of a purpose.
fn rows_by_pseudonym(lake: &Path, purpose: &str) -> HashMap<String, usize> {
    let mut rows = HashMap::new();
    for file in parquet_files(&lake.join(purpose)) {
        for pseudonym in column_strings(&read_parquet(&file).batches, "patient_pseudonym") {
            *rows.entry(pseudonym).or_default() += 1;
        }
    }
    rows
}

/// Every file and directory sluice created under `lake` is closed to users outside its group and
/// not writable by the group; the audit log is the owner's alone.
fn assert_nothing_is_open_to_other_users(lake: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![lake.to_owned()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o027, 0, "{} has mode {mode:o}", path.display());
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        }
        seen += 1;
    }
    assert!(seen > 10, "only {seen} entries under the lake");
    let audit_log = sluice::commands::audit::audit_log_path(lake);
    let mode = std::fs::metadata(&audit_log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", audit_log.display());
}

#[test]
fn a_patient_is_erased_from_one_purpose_across_a_key_rotation_and_the_audit_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, keys) = (dir.path().join("lake"), dir.path().join("keys.toml"));
    let lake_arg = lake.to_str().unwrap();
    let generated =
        sluice(&["keys", "generate", "--purpose", "planning,research", "--out", keys.to_str().unwrap()], &keys, None);
    assert!(generated.status.success(), "{}", text(&generated));
    let demo = ["demo", "--events", "3000", "--patients", "200", "--seed", "11", "--lake", lake_arg];
    let landed = sluice(&demo, &keys, None);
    assert!(landed.status.success(), "{}", text(&landed));
    assert_nothing_is_open_to_other_users(&lake);

    // The patient with the most research rows, found through the same key the lander used.
    let source = SyntheticSource::new(SyntheticSourceConfig {
        patients: 200,
        events: 3000,
        seed: 11,
        ..SyntheticSourceConfig::default()
    })
    .unwrap();
    let rings = sluice::keys::load_rings(&keys, &["planning".into(), "research".into()]).unwrap();
    let research = rows_by_pseudonym(&lake, "research");
    let planning_before = rows_by_pseudonym(&lake, "planning");
    let patient = (0..200)
        .map(|i| source.patient(i).nhs_number.digits())
        .max_by_key(|digits| research.get(&rings["research"].active().patient_pseudonym(digits)).copied().unwrap_or(0))
        .unwrap();
    let pseudonym = rings["research"].active().patient_pseudonym(&patient);
    assert!(research[&pseudonym] >= 3, "the chosen patient has research rows");

    // Rotate first: the files were written with what is now a retired key.
    let rotated = sluice(&["keys", "rotate", "--purpose", "research", "--file", keys.to_str().unwrap()], &keys, None);
    assert!(rotated.status.success(), "{}", text(&rotated));

    let erase =
        ["erase", "--lake", lake_arg, "--purpose", "research", "--patients-file", "-", "--reference", "IG-2026-118"];
    let erased = sluice(&erase, &keys, Some(&format!("{patient}\n")));
    let output = text(&erased);
    assert!(erased.status.success(), "{output}");
    assert!(output.contains(&format!("erased {} rows of 1 patients", research[&pseudonym])), "{output}");
    assert!(!output.contains(&patient), "the command never prints the NHS number");

    let research_after = rows_by_pseudonym(&lake, "research");
    assert_eq!(research_after.get(&pseudonym), None, "no research row of the patient is left");
    assert_eq!(
        research_after.values().sum::<usize>(),
        research.values().sum::<usize>() - research[&pseudonym],
        "every other research row is still there"
    );
    assert_eq!(rows_by_pseudonym(&lake, "planning"), planning_before, "planning was not asked to erase");

    let bad = sluice(&erase, &keys, Some("9434765918\n"));
    assert!(!bad.status.success());
    assert!(text(&bad).contains("patient number 1 of 1 is not a valid NHS number"), "{}", text(&bad));
    assert!(!text(&bad).contains("9434765918"));

    let audit = lake.join("_audit/audit.jsonl");
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(log.contains("\"reference\":\"IG-2026-118\""));
    assert!(!log.contains(&patient) && !log.contains(&pseudonym), "the audit never identifies the patient");
    let verified = sluice(&["audit", "verify", "--lake", lake_arg], &keys, None);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("hash chain intact"));
    assert!(text(&verified).contains("every checksum matches"), "{}", text(&verified));

    // A landed file edited after the fact is named, and fails the check.
    let victim = parquet_files(&lake).into_iter().next().unwrap();
    let original = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, b"edited").unwrap();
    let edited = sluice(&["audit", "verify", "--lake", lake_arg], &keys, None);
    assert_eq!(edited.status.code(), Some(1), "{}", text(&edited));
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(text(&edited).lines().any(|l| l.contains(&name) && l.contains("changed since line")), "{}", text(&edited));
    std::fs::write(&victim, original).unwrap();

    // No secret of any key, active or retired, in anything the commands printed or wrote.
    let secrets: Vec<String> = std::fs::read_to_string(&keys)
        .unwrap()
        .lines()
        .filter_map(|line| {
            line.trim().strip_prefix("secret_hex = \"").map(|rest| rest.trim_end_matches('"').to_owned())
        })
        .collect();
    assert_eq!(secrets.len(), 3, "planning, research and the retired research key");
    let mut emitted = vec![text(&generated), text(&landed), text(&rotated), output.clone(), log.clone()];
    for file in parquet_files(&lake) {
        emitted.push(String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned());
    }
    for secret in &secrets {
        assert!(emitted.iter().all(|text| !text.contains(&secret[..16])), "a key secret was emitted");
    }

    std::fs::write(&audit, log.replacen("\"rows_removed\":", "\"rows_removed\":1", 1)).unwrap();
    let tampered = sluice(&["audit", "verify", "--lake", lake_arg], &keys, None);
    assert_eq!(tampered.status.code(), Some(1), "{}", text(&tampered));
    assert!(text(&tampered).contains("hash mismatch"), "{}", text(&tampered));
}

#[test]
fn policy_check_shows_every_field_and_refuses_a_policy_that_misses_one() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let research = std::fs::read_to_string(repository.join("research.toml")).unwrap();
    std::fs::write(policies.join("research.toml"), &research).unwrap();

    let checked = sluice(&["policy", "check", "--policies", policies.to_str().unwrap()], &keys, None);
    let output = text(&checked);
    assert!(checked.status.success(), "{output}");
    assert!(output.contains("research@v5"), "{output}");
    assert!(output.contains("nhs_number                 hmac               -> patient_pseudonym"), "{output}");
    assert!(output.contains("family_name                drop               not landed"), "{output}");
    // Its disclosure control, with each subject's quasi-identifiers and their ladders.
    assert!(
        output.contains("disclosure control: classes of at least 5 distinct patients (by `patient_pseudonym`)"),
        "{output}"
    );
    assert!(
        output.contains("diagnosis quasi-identifiers: age_band_at_reference_date (age_band:10 > age_band:20 > withhold), sex, postcode_district (postcode_area), code (prefix:3 > prefix:1)"),
        "{output}"
    );

    // A study policy written before observation v2 added `interpretation`: refused, naming it.
    let study = research
        .replace("purpose = \"research\"", "purpose = \"study:IRAS-301234\"")
        .replace("name = \"research\"", "name = \"iras-301234\"")
        .lines()
        .filter(|line| !line.starts_with("interpretation ="))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(policies.join("study:IRAS-301234.toml"), study).unwrap();
    let refused = sluice(&["policy", "check", "--policies", policies.to_str().unwrap()], &keys, None);
    let output = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{output}");
    assert!(output.contains("no action for field `interpretation` of subject `observation` v4"), "{output}");

    // A study without a policy file is never landed under a default.
    let generated = sluice(
        &["keys", "generate", "--purpose", "study:IRAS-9", "--out", dir.path().join("k2.toml").to_str().unwrap()],
        &keys,
        None,
    );
    assert!(generated.status.success(), "{}", text(&generated));
    let land = sluice(
        &[
            "land",
            "--purpose",
            "study:IRAS-9",
            "--brokers",
            "127.0.0.1:9",
            "--lake",
            dir.path().join("lake").to_str().unwrap(),
        ],
        &dir.path().join("k2.toml"),
        None,
    );
    assert!(!land.status.success());
    assert!(text(&land).contains("no policy for purpose `study:IRAS-9`"), "{}", text(&land));
}
