//! Rates as people read them.

/// `0.4%`, `100%`: a rate as a percentage, one decimal under 10%.
pub fn percent(rate: f64) -> String {
    let value = rate * 100.0;
    if value == 0.0 || value >= 10.0 { format!("{value:.0}%") } else { format!("{value:.1}%") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_read_as_people_write_them() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.004), "0.4%");
        assert_eq!(percent(1.0), "100%");
    }
}
