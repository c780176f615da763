//! What a service said while it ran: its WARN and ERROR lines (and panics),
//! each distinct line once with how often it came. A check prints them
//! after its table, so that a service's own error reaches the screen, and
//! the judge names a mistake a service reported (`set_parent` too late).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use stitch_model::{LogLine, Role, ServiceLog};

/// Distinct lines kept per service; the rest are counted in the last one.
pub const MOST_LINES: usize = 8;

/// Reads `role`'s log at `path`.
pub fn read(role: Role, path: &Path) -> anyhow::Result<ServiceLog> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}'s log {}", role, path.display()))?;
    Ok(ServiceLog { role, path: path.to_owned(), lines: distinct(&text) })
}

/// Each distinct WARN or ERROR line of `text`, its timestamp left out, the
/// most frequent first.
pub fn distinct(text: &str) -> Vec<LogLine> {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in text.lines() {
        if let Some(key) = classify(line) {
            *counts.entry(key).or_default() += 1;
        }
    }
    let mut lines: Vec<LogLine> =
        counts.into_iter().map(|((level, text), count)| LogLine { level, text, count }).collect();
    lines.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
    if lines.len() > MOST_LINES {
        let rest: Vec<LogLine> = lines.split_off(MOST_LINES - 1);
        lines.push(LogLine {
            level: "WARN".to_owned(),
            text: format!("… and {} more distinct lines (see the whole log)", rest.len()),
            count: rest.iter().map(|line| line.count).sum(),
        });
    }
    lines
}

/// `(level, text)` of a WARN or ERROR line as `tracing_subscriber`'s
/// formatter writes it (`2026-12-07T17:21:58.105342Z  WARN message…`), or of
/// a panic; `None` for anything else.
fn classify(line: &str) -> Option<(String, String)> {
    if line.starts_with("thread '") && line.contains("panicked") {
        return Some(("ERROR".to_owned(), line.trim().to_owned()));
    }
    let (timestamp, rest) = line.split_once(char::is_whitespace)?;
    if !timestamp.ends_with('Z') || !timestamp.contains('T') {
        return None;
    }
    let rest = rest.trim_start();
    let (level, text) = rest.split_once(char::is_whitespace)?;
    // The spans it was logged in (`request{otel.name=…}: `) say where, not what.
    let text = text.rsplit_once("}: ").map_or(text, |(_, message)| message);
    matches!(level, "WARN" | "ERROR").then(|| (level.to_owned(), text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_and_errors_are_counted_once_each_without_their_time() {
        let log = "\
2026-12-07T17:18:43.523532Z  INFO worker listening listen=127.0.0.1:29383
2026-12-07T17:22:23.003119Z  WARN cannot continue the caller's trace err=Span has already been started
2026-12-07T17:22:23.071047Z  WARN request{otel.name=POST /work otel.kind=\"server\"}: cannot continue the caller's trace err=Span has already been started
2026-12-07T17:21:58.105342Z ERROR name=\"BatchSpanProcessor.ExportError\" error=\"refused\"
worker: 600 spans ended, 600 exported, 0 failed to export, 0 dropped before export
thread 'tokio-runtime-worker' panicked at steps/step-01-http/src/http.rs:20:35:
";
        let lines = distinct(log);
        assert_eq!(
            lines,
            [
                LogLine {
                    level: "WARN".to_owned(),
                    text: "cannot continue the caller's trace err=Span has already been started".to_owned(),
                    count: 2
                },
                LogLine {
                    level: "ERROR".to_owned(),
                    text: "name=\"BatchSpanProcessor.ExportError\" error=\"refused\"".to_owned(),
                    count: 1
                },
                LogLine {
                    level: "ERROR".to_owned(),
                    text: "thread 'tokio-runtime-worker' panicked at steps/step-01-http/src/http.rs:20:35:".to_owned(),
                    count: 1
                },
            ]
        );
    }

    #[test]
    fn past_the_most_lines_the_rest_is_summed_in_one() {
        let log: String = (0..20).map(|i| format!("2026-12-07T17:22:23.0Z  WARN line {i}\n")).collect();
        let lines = distinct(&log);
        assert_eq!(lines.len(), MOST_LINES);
        assert_eq!(lines.last().unwrap().text, "… and 13 more distinct lines (see the whole log)");
        assert_eq!(lines.last().unwrap().count, 13);
    }

    #[test]
    fn a_missing_log_is_an_error_not_a_quiet_service() {
        let error = read(Role::Worker, Path::new("/nonexistent/worker.log")).unwrap_err();
        assert!(format!("{error:#}").contains("reading worker's log /nonexistent/worker.log"));
    }
}
