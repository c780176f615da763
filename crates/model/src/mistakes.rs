//! The wrong fixes of a step that the book names, each kept beside the
//! solution as lesson files of its own (`solutions/step-NN-name/mistakes/
//! <name>/`), with what the check must answer: `cargo xtask ci` copies each
//! over the learner's crate and proves the check fails with that message.

use serde::Deserialize;

/// `solutions/step-NN-name/mistakes.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mistakes {
    #[serde(rename = "mistake")]
    pub mistakes: Vec<Mistake>,
}

/// One wrong fix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mistake {
    /// Its directory under `mistakes/`, and its name in tables.
    pub name: String,
    /// What the wrong fix does, in a few words.
    pub what: String,
    /// Where the course names it: a chapter, a hint, a test, the instructors' page.
    pub named_in: String,
    /// What the check's failures must say about it (a part of one line).
    pub says: String,
}

impl Mistakes {
    /// A `mistakes.toml`'s text, parsed and checked: names are distinct
    /// directory names, and nothing is left empty.
    pub fn parse(text: &str) -> anyhow::Result<Mistakes> {
        let mistakes: Mistakes = toml::from_str(text)?;
        let mut names = std::collections::BTreeSet::new();
        for mistake in &mistakes.mistakes {
            let valid_name = !mistake.name.is_empty()
                && mistake.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            anyhow::ensure!(valid_name, "mistake {:?}: a name is lowercase letters, digits and `-`", mistake.name);
            anyhow::ensure!(names.insert(&mistake.name), "mistake {:?} is listed twice", mistake.name);
            for (field, value) in [("what", &mistake.what), ("named_in", &mistake.named_in), ("says", &mistake.says)] {
                anyhow::ensure!(!value.trim().is_empty(), "mistake {:?}: `{field}` is empty", mistake.name);
            }
        }
        Ok(mistakes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[[mistake]]
name = "client-only"
what = "the client's middleware, nothing on the worker"
named_in = "book/src/step-01-http.md"
says = "server side missing"
"#;

    #[test]
    fn a_mistake_names_its_lesson_files_directory_and_its_message() {
        let mistakes = Mistakes::parse(ONE).unwrap();
        assert_eq!(mistakes.mistakes[0].name, "client-only");
        assert_eq!(mistakes.mistakes[0].says, "server side missing");
    }

    #[test]
    fn a_bad_name_a_twice_listed_one_or_an_empty_message_is_refused() {
        let twice = format!("{ONE}{ONE}");
        assert!(Mistakes::parse(&twice).unwrap_err().to_string().contains("listed twice"));
        let bad = ONE.replace("client-only", "Client Only");
        assert!(Mistakes::parse(&bad).unwrap_err().to_string().contains("lowercase"));
        let empty = ONE.replace("server side missing", " ");
        assert!(Mistakes::parse(&empty).unwrap_err().to_string().contains("`says` is empty"));
        let unknown = format!("{ONE}expect = 1\n");
        assert!(Mistakes::parse(&unknown).is_err());
    }
}
