//! `sluice report` as a governance officer opens it: a demo lake is landed, the report written,
//! and the page loaded in a real headless browser (Chromium, from Debian's `chromium` package),
//! which renders a screenshot and dumps the DOM it built. The DOM must show every flow, the
//! audit status and no count from 1 to 7; the screenshot must be a real picture.

mod support;

use std::{
    path::Path,
    process::{Command, Output},
};

fn sluice(args: &[&str], keys: &Path) -> Output {
    support::sluice()
        .args(args)
        .env("SLUICE_KEYS_FILE", keys)
        .env_remove("SLUICE_KEYS")
        .output()
        .expect("the sluice binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs headless Chromium with `args` then the page; fails with how to install it if missing.
fn chromium(profile: &Path, args: &[&str], page: &Path) -> Output {
    let url = format!("file://{}", page.display());
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(&url)
        .output();
    match output {
        Ok(output) => {
            assert!(output.status.success(), "chromium failed on {url}:\n{}", text(&output));
            output
        }
        Err(error) => panic!(
            "cannot run chromium ({error}): this test needs a headless browser; install it with \
             `apt-get install -y chromium` (Debian's package; .ci/run installs it)"
        ),
    }
}

/// The contents of every `<td class="n...">` cell of `dom`.
fn count_cells(dom: &str) -> Vec<String> {
    dom.split(r#"<td class="n"#)
        .skip(1)
        .filter_map(|rest| {
            rest.split_once('>').and_then(|(_, cell)| cell.split_once("</td>")).map(|(c, _)| c.to_owned())
        })
        .collect()
}

#[test]
fn the_report_renders_in_a_real_browser_with_every_flow_and_no_small_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, keys, report) = (dir.path().join("lake"), dir.path().join("keys.toml"), dir.path().join("report.html"));
    let lake_arg = lake.to_str().unwrap();
    let purposes = "direct-care,planning,research";
    let generated = sluice(&["keys", "generate", "--purpose", purposes, "--out", keys.to_str().unwrap()], &keys);
    assert!(generated.status.success(), "{}", text(&generated));
    let demo =
        ["demo", "--events", "3000", "--patients", "200", "--seed", "7", "--purposes", purposes, "--lake", lake_arg];
    let landed = sluice(&demo, &keys);
    assert!(landed.status.success(), "{}", text(&landed));

    let written = sluice(&["report", "--lake", lake_arg, "--output", report.to_str().unwrap()], &keys);
    assert!(written.status.success(), "{}", text(&written));
    assert!(text(&written).contains(&format!("wrote {}", report.display())), "{}", text(&written));
    assert!(text(&written).contains("audit log and lake verify"), "{}", text(&written));

    let profile = dir.path().join("chromium-profile");
    let dom = String::from_utf8(chromium(&profile, &["--dump-dom"], &report).stdout).unwrap();
    let flows = dom.matches(r#"<tr class="flow">"#).count();
    assert_eq!(flows, 9, "three clinical topics for each of three purposes");
    for purpose in ["direct-care", "planning", "research"] {
        for subject in ["adt", "observation", "diagnosis"] {
            assert!(dom.contains(&format!("<td>{purpose}/{subject}</td>")), "no row for {purpose}/{subject}");
        }
    }
    assert!(dom.contains("Audit verification: intact") && dom.contains("Hash chain intact"), "status");
    assert!(dom.contains("Lake matches its log: every checksum matches"), "lake check");
    assert!(!dom.contains("PROBLEMS FOUND"));
    let cells = count_cells(&dom);
    assert!(cells.len() > 9 * 5, "{} count cells", cells.len());
    for cell in &cells {
        assert!(!matches!(cell.trim().parse::<u64>(), Ok(1..=7)), "a count cell shows {cell}");
        assert!(cell == "0" || cell == "&lt;8" || cell.parse::<u64>().is_ok_and(|n| n % 10 == 0), "cell {cell}");
    }
    assert!(dom.contains(r#"<section id="withheld">"#) && dom.matches("<svg").count() > 9, "charts drawn");
    assert!(!dom.contains("<script"), "no scripts");

    let png = dir.path().join("report.png");
    chromium(&profile, &[&format!("--screenshot={}", png.display()), "--window-size=1280,2000"], &report);
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000), "the window size");
    // A page of one colour compresses to a few kilobytes; text, tables and charts do not.
    assert!(bytes.len() > 30_000, "the screenshot is only {} bytes: a blank page?", bytes.len());
    if let Some(keep) = std::env::var_os("SLUICE_REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}
