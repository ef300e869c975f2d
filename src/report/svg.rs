//! Inline SVG charts for the report: no scripts, no external resources. Every number drawn or
//! put in a tooltip is a [`Shown`] count, and a suppressed count is drawn at a fixed placeholder
//! size (hatched grey), whatever its value.

use std::fmt::Write;

use super::{html::escape, suppress::Shown};

/// Length in pixels of a suppressed bar, whatever the scale.
const PLACEHOLDER: u32 = 6;

fn length(shown: Shown, max: u64, full: u32) -> u32 {
    match shown {
        Shown::Zero => 0,
        Shown::Suppressed => PLACEHOLDER,
        Shown::Rounded(value) => ((value as f64 / max.max(1) as f64) * f64::from(full)).round().max(1.0) as u32,
    }
}

const HATCH: &str = r##"<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="4" height="4" fill="#ddd"/><line x1="0" y1="0" x2="0" y2="4" stroke="#888" stroke-width="2"/></pattern></defs>"##;

fn bar_class(shown: Shown) -> &'static str {
    if shown.is_suppressed() { r#"class="bar suppressed" fill="url(#hatch)""# } else { r#"class="bar""# }
}

/// Horizontal bars, one per labelled count, with the shown count after each bar.
pub fn horizontal_bars(bars: &[(String, u64)]) -> String {
    const LABEL: u32 = 190;
    const FULL: u32 = 250;
    const ROW: u32 = 22;
    let shown: Vec<(&String, Shown)> = bars.iter().map(|(label, count)| (label, Shown::of(*count))).collect();
    let max = shown.iter().map(|(_, s)| s.value()).max().unwrap_or(0);
    let height = ROW * shown.len() as u32 + 4;
    let mut svg = format!(
        r#"<svg class="chart" width="{}" height="{height}" viewBox="0 0 {} {height}" role="img">{HATCH}"#,
        LABEL + FULL + 70,
        LABEL + FULL + 70
    );
    for (index, (label, count)) in shown.iter().enumerate() {
        let y = ROW * index as u32 + 2;
        let width = length(*count, max, FULL);
        let suppressed = if count.is_suppressed() { " (suppressed)" } else { "" };
        let _ = write!(
            svg,
            r#"<g><title>{label}: {n}{suppressed}</title><text x="{}" y="{}" text-anchor="end" class="label">{label}</text><rect {} x="{LABEL}" y="{}" width="{width}" height="{}"/><text x="{}" y="{}" class="n">{n}</text></g>"#,
            LABEL - 8,
            y + 15,
            bar_class(*count),
            y + 3,
            ROW - 6,
            LABEL + width + 6,
            y + 15,
            label = escape(label),
            n = escape(&count.to_string()),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Small vertical bars, one per day (all of `days`, zero where there is no count), with the date
/// and shown count as each bar's tooltip.
pub fn daily_bars(days: &[String], counts: &std::collections::BTreeMap<String, u64>) -> String {
    const HEIGHT: u32 = 40;
    let bar = (160 / days.len().max(1) as u32).clamp(3, 24);
    let width = bar * days.len().max(1) as u32;
    let shown: Vec<Shown> = days.iter().map(|day| Shown::of(counts.get(day).copied().unwrap_or(0))).collect();
    let max = shown.iter().map(|s| s.value()).max().unwrap_or(0);
    let mut svg = format!(
        r#"<svg class="spark" width="{width}" height="{}" viewBox="0 0 {width} {}" role="img">{HATCH}"#,
        HEIGHT + 2,
        HEIGHT + 2
    );
    for (index, (day, count)) in days.iter().zip(&shown).enumerate() {
        let h = length(*count, max, HEIGHT);
        let suppressed = if count.is_suppressed() { " (suppressed)" } else { "" };
        let _ = write!(
            svg,
            r#"<rect {} x="{}" y="{}" width="{}" height="{h}"><title>{}: {}{suppressed}</title></rect>"#,
            bar_class(*count),
            bar * index as u32,
            HEIGHT + 1 - h,
            bar.saturating_sub(1).max(1),
            escape(day),
            escape(&count.to_string()),
        );
    }
    let _ = write!(svg, r##"<line x1="0" y1="{}" x2="{width}" y2="{}" stroke="#999"/></svg>"##, HEIGHT + 1, HEIGHT + 1);
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressed_bars_have_the_placeholder_size_whatever_their_value() {
        let three = horizontal_bars(&[("a".into(), 3), ("b".into(), 100)]);
        let five = horizontal_bars(&[("a".into(), 5), ("b".into(), 100)]);
        assert_eq!(three, five, "a 3 and a 5 draw the same chart");
        assert!(three.contains(&format!(r#"width="{PLACEHOLDER}""#)) && three.contains("&lt;8 (suppressed)"));
        let days = vec!["2026-11-24".to_owned(), "2026-11-25".to_owned()];
        let one = daily_bars(&days, &[("2026-11-24".to_owned(), 1), ("2026-11-25".to_owned(), 50)].into());
        let seven = daily_bars(&days, &[("2026-11-24".to_owned(), 7), ("2026-11-25".to_owned(), 50)].into());
        assert_eq!(one, seven);
    }
}
