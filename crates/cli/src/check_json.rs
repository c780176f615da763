//! The JSON of `cargo xtask check … --json`: one verdict at the top,
//! whatever the step judges (`step`, `package`, `solution`, `kafka`,
//! `passed`, `failures`), beside what the step measured. A script reads
//! `passed` and `failures` the same way for every step; it never has to
//! recompute a verdict from a stage's own fields.

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;

/// The top-level verdict of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckVerdict {
    /// `step-1`.
    pub step: String,
    /// The crate that ran.
    pub package: String,
    pub solution: bool,
    /// The broker the run used.
    pub kafka: String,
    pub passed: bool,
    /// One line per claim that failed; empty when `passed`.
    pub failures: Vec<String>,
}

/// The verdict's fields, then `measured`'s (a JSON object). A field of
/// `measured` the verdict has too must say the same.
pub fn object(verdict: &CheckVerdict, measured: Value) -> anyhow::Result<Value> {
    let Value::Object(mut out) = serde_json::to_value(verdict)? else { bail!("a verdict serializes to an object") };
    let Value::Object(measured) = measured else { bail!("what a check measured must be a JSON object") };
    for (key, value) in measured {
        match out.get(&key) {
            Some(said) if *said != value => {
                bail!("the check's JSON says {key} = {said} in its verdict but {value} in what it measured")
            }
            Some(_) => {}
            None => {
                out.insert(key, value);
            }
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn verdict() -> CheckVerdict {
        CheckVerdict {
            step: "step-5".to_owned(),
            package: "step-05-ci-gate".to_owned(),
            solution: false,
            kafka: "tansu".to_owned(),
            passed: false,
            failures: vec!["log-filter: let through (spans lost)".to_owned()],
        }
    }

    #[test]
    fn the_verdict_comes_first_and_what_was_measured_beside_it() {
        let out = object(&verdict(), json!({ "step": "step-5", "flows": [] })).unwrap();
        assert_eq!(out["passed"], false);
        assert_eq!(out["failures"], json!(["log-filter: let through (spans lost)"]));
        assert_eq!(out["flows"], json!([]));
    }

    #[test]
    fn a_measured_field_that_contradicts_the_verdict_is_an_error() {
        let err = object(&verdict(), json!({ "kafka": "apache" })).unwrap_err();
        assert!(err.to_string().contains("kafka"), "{err}");
        assert!(object(&verdict(), json!([1, 2])).is_err());
    }
}
