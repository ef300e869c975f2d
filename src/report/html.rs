//! The report as one self-contained HTML page: inline CSS and SVG, no scripts, no external
//! resources. Every text taken from the log is escaped and every count goes through [`Shown`].

use std::{collections::BTreeMap, fmt::Write};

use super::{
    model::{Counts, ReportModel},
    suppress::{ROUNDING, Shown, THRESHOLD},
    svg,
};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A table cell holding a count, suppressed and rounded.
pub(crate) fn cell(count: u64) -> String {
    let shown = Shown::of(count);
    let class = if shown.is_suppressed() { "n suppressed" } else { "n" };
    format!(r#"<td class="{class}">{}</td>"#, escape(&shown.to_string()))
}

/// What the page says about where it came from.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The lake (a directory or object-store URL).
    pub lake: String,
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222;line-height:1.4}
h1{margin:0 0 4px}h2{margin-top:32px;border-bottom:2px solid #ddd;padding-bottom:4px}h3{margin:16px 0 4px}
.meta,.note{color:#555;font-size:14px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:middle}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.suppressed{color:#777;font-style:italic}tr.total td{font-weight:bold;background:#fafafa}
code{font-size:12px}td.when{white-space:nowrap;font-size:13px}code.hash{word-break:break-all}
.status{padding:12px 16px;border-radius:6px;margin-top:16px}
.status.ok{background:#e7f6ea;border:1px solid #2e7d32}
.status.bad{background:#fdecea;border:2px solid #c62828;color:#b71c1c}
.status h2{margin:0;border:0;padding:0}
.status ul{margin:8px 0 0}
svg .bar{fill:#1f6fb2}svg .label,svg .n{font-size:12px;fill:#222}
.charts{display:flex;flex-wrap:wrap;gap:24px}
";

/// Renders the whole page.
pub fn render(model: &ReportModel, context: &Context) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>sluice governance report</title><style>{STYLE}</style></head><body>"#
    );
    let period = match &model.period {
        Some((first, last)) => format!("records from {} to {}", escape(first), escape(last)),
        None => "no records".to_owned(),
    };
    let _ = write!(
        page,
        r#"<h1>sluice governance report</h1><p class="meta">Lake <code>{}</code>; generated {}; {period}.</p>"#,
        escape(&context.lake),
        escape(&context.generated_at),
    );
    status(&mut page, model);
    let _ = write!(
        page,
        r#"<p class="note" id="suppression">Small numbers are suppressed: every count from 1 to {} is shown as <b>&lt;{THRESHOLD}</b> and drawn as a hatched bar of fixed size; 0 is shown as 0; every other count is rounded to the nearest {ROUNDING}, so no total or difference of shown numbers reveals a suppressed count. Totals are rounded from the exact sums, so shown cells need not add up to shown totals.</p>"#,
        THRESHOLD - 1
    );
    flows(&mut page, model);
    withheld(&mut page, model);
    versions(&mut page, model);
    tables(&mut page, model);
    super::disclosure::render(&mut page, &model.disclosure);
    operations(&mut page, model);
    page.push_str("</body></html>\n");
    page
}

fn status(page: &mut String, model: &ReportModel) {
    let status = &model.status;
    let (class, headline) = if status.intact() {
        ("ok", "Audit verification: intact")
    } else {
        ("bad", "Audit verification: PROBLEMS FOUND")
    };
    let _ = write!(page, r#"<section id="status" class="status {class}"><h2>{headline}</h2><ul>"#);
    let records = escape(&Shown::of(status.records).to_string());
    if status.chain_problems.is_empty() {
        let _ = write!(page, r#"<li id="chain">Hash chain intact ({records} records).</li>"#);
    } else {
        let _ = write!(page, r#"<li id="chain">Hash chain broken ({records} records):<ul>"#);
        for problem in &status.chain_problems {
            let _ = write!(page, "<li>{}</li>", escape(problem));
        }
        page.push_str("</ul></li>");
    }
    match &status.lake {
        None => page.push_str(r#"<li id="lake">The lake was not checked against the log.</li>"#),
        Some(lake) => {
            let (recorded, found) = (Shown::of(lake.recorded), Shown::of(lake.found));
            let counts =
                format!("{} files recorded, {} found", escape(&recorded.to_string()), escape(&found.to_string()));
            if lake.problems.is_empty() {
                let _ = write!(page, r#"<li id="lake">Lake matches its log: every checksum matches ({counts}).</li>"#);
            } else {
                let _ = write!(page, r#"<li id="lake">The lake differs from its log ({counts}):<ul>"#);
                for problem in &lake.problems {
                    let _ = write!(page, "<li>{}</li>", escape(problem));
                }
                page.push_str("</ul></li>");
            }
        }
    }
    page.push_str("</ul></section>");
}

fn flows(page: &mut String, model: &ReportModel) {
    page.push_str(
        r#"<section id="flows"><h2>Flows: topic &rarr; purpose &rarr; dataset</h2><p class="note">Source systems are reported per topic: each clinical topic carries one subject from every source system publishing it, and audit records do not name the organisation. Received = invalid + withheld + landed. Landed per day is by the date the landing was recorded (UTC).</p>"#,
    );
    page.push_str(
        "<table><thead><tr><th>Topic</th><th>Purpose</th><th>Dataset</th><th>Received</th><th>Invalid</th><th>Withheld</th><th>Released under exemption</th><th>Landed</th><th>Landed per day</th></tr></thead><tbody>",
    );
    let mut total = Counts::default();
    for flow in &model.flows {
        let per_day: BTreeMap<String, u64> = flow.per_day.iter().map(|(day, c)| (day.clone(), c.landed)).collect();
        let _ = write!(
            page,
            r#"<tr class="flow"><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}{}<td>{}</td></tr>"#,
            escape(&flow.topic),
            escape(&flow.purpose),
            escape(&flow.dataset),
            cell(flow.totals.received),
            cell(flow.totals.invalid),
            cell(flow.totals.withheld_total()),
            cell(flow.totals.exempted),
            cell(flow.totals.landed),
            svg::daily_bars(&model.days, &per_day),
        );
        total.received += flow.totals.received;
        total.invalid += flow.totals.invalid;
        total.exempted += flow.totals.exempted;
        total.landed += flow.totals.landed;
        for (reason, count) in &flow.totals.withheld {
            *total.withheld.entry(reason.clone()).or_default() += count;
        }
    }
    if model.flows.is_empty() {
        page.push_str(r#"<tr><td colspan="9">No landings recorded.</td></tr>"#);
    }
    let _ = write!(
        page,
        r#"<tr class="total"><td colspan="3">All flows</td>{}{}{}{}{}<td></td></tr></tbody></table></section>"#,
        cell(total.received),
        cell(total.invalid),
        cell(total.withheld_total()),
        cell(total.exempted),
        cell(total.landed),
    );
}

fn withheld(page: &mut String, model: &ReportModel) {
    page.push_str(r#"<section id="withheld"><h2>Withheld by reason</h2><div class="charts">"#);
    let mut nothing = Vec::new();
    for (purpose, reasons) in &model.withheld_by_purpose {
        if reasons.values().all(|count| *count == 0) {
            nothing.push(escape(purpose));
            continue;
        }
        let bars: Vec<(String, u64)> = reasons.iter().map(|(reason, count)| (reason.clone(), *count)).collect();
        let _ =
            write!(page, r#"<div class="purpose"><h3>{}</h3>{}</div>"#, escape(purpose), svg::horizontal_bars(&bars));
    }
    page.push_str("</div>");
    if !nothing.is_empty() {
        let _ = write!(page, "<p>Nothing withheld for {}.</p>", nothing.join(", "));
    }
    if model.withheld_by_purpose.is_empty() {
        page.push_str("<p>No landings recorded.</p>");
    }
    page.push_str("</section>");
}

fn versions(page: &mut String, model: &ReportModel) {
    page.push_str(
        r#"<section id="versions"><h2>Policies, keys and schemas</h2><p class="note">Every combination a dataset was landed under, with the first and last landing recorded under it; the one its latest landing used is in force.</p><table><thead><tr><th>Dataset</th><th>Policy</th><th>Policy SHA-256</th><th>Key id</th><th>Reader schema</th><th>First</th><th>Last</th><th>In force</th></tr></thead><tbody>"#,
    );
    for seen in &model.versions {
        let _ = write!(
            page,
            r#"<tr><td>{}</td><td>{}</td><td><code class="hash">{}</code></td><td><code>{}</code></td><td><code class="hash">{}</code></td><td class="when">{}</td><td class="when">{}</td><td>{}</td></tr>"#,
            escape(&seen.dataset),
            escape(&seen.policy),
            escape(&seen.policy_hash),
            escape(&seen.key_id),
            escape(&seen.reader_schema),
            escape(&seen.first),
            escape(&seen.last),
            if seen.in_force { "<b>yes</b>" } else { "no" },
        );
    }
    page.push_str("</tbody></table></section>");
}

fn tables(page: &mut String, model: &ReportModel) {
    page.push_str(
        r#"<section id="tables"><h2>Tables</h2><p class="note">Each dataset is a Delta table; an analysis names the version it read (docs/TABLES.md). The current version is the newest the audit log records.</p><table><thead><tr><th>Dataset</th><th>Current version</th></tr></thead><tbody>"#,
    );
    for (table, version) in &model.table_versions {
        // Not a count, so neither suppressed nor styled as one.
        let _ = write!(page, r#"<tr><td>{}</td><td class="version">v{version}</td></tr>"#, escape(table));
    }
    page.push_str("</tbody></table></section>");
}

fn operations(page: &mut String, model: &ReportModel) {
    let ops = &model.operations;
    let _ = write!(
        page,
        r#"<section id="operations"><h2>Other records</h2><table><thead><tr><th>Record</th><th>Count</th></tr></thead><tbody><tr><td>Erasure runs</td>{}</tr><tr><td>Rows erased</td>{}</tr><tr><td>Compaction runs</td>{}</tr><tr><td>Withdrawals of uncommitted files</td>{}</tr><tr><td>Log repairs after a crash</td>{}</tr><tr><td>Consent records that could not be read</td>{}</tr><tr><td>Patients held back by them (at the latest)</td>{}</tr>"#,
        cell(ops.erasures),
        cell(ops.rows_erased),
        cell(ops.compactions),
        cell(ops.withdrawals),
        cell(ops.recoveries),
        cell(ops.unreadable_consent_records),
        cell(ops.patients_held),
    );
    for (kind, count) in &ops.other_kinds {
        let _ = write!(
            page,
            "<tr><td>Records of kind <code>{}</code> (not interpreted)</td>{}</tr>",
            escape(kind),
            cell(*count)
        );
    }
    page.push_str("</tbody></table></section>");
}
