//! Side-by-side comparisons with stock Docker: what each side showed, in order, and the table
//! that holds the two equal but for the differences a list (mirrored in README.md) names.
use std::time::Instant;

/// What one side showed: observable and value, in the order observed.
#[derive(Default)]
pub struct Observed(pub Vec<(String, String)>);

impl Observed {
    pub fn note(&mut self, what: impl Into<String>, value: impl Into<String>) {
        self.0.push((what.into(), value.into()));
    }

    pub fn get(&self, what: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, v)| v.as_str())
    }
}

/// Why an observable may differ, if its name contains the first text of an entry of `listed`.
pub fn listed_why(listed: &[(&str, &'static str)], what: &str) -> Option<&'static str> {
    listed
        .iter()
        .find(|(part, _)| what.contains(part))
        .map(|(_, why)| *why)
}

/// The two sides of one comparison, the list of differences allowed and what the list calls
/// them ("known", "intended").
pub struct Comparison<'a> {
    pub stock: &'a Observed,
    pub netd: &'a Observed,
    pub stock_label: &'a str,
    pub listed: &'a [(&'a str, &'static str)],
    pub listed_as: &'a str,
}

impl Comparison<'_> {
    /// Prints a line SAME / DIFFERENT (listed) / DIFFERENT per observable (in the order the
    /// stock side showed them, then the netd side's own) and the list; returns the differences
    /// the list does not allow.
    pub fn print(&self) -> Vec<String> {
        let mut whats: Vec<&str> = self.stock.0.iter().map(|(w, _)| w.as_str()).collect();
        for (w, _) in &self.netd.0 {
            if !whats.contains(&w.as_str()) {
                whats.push(w);
            }
        }
        let allowed = format!("DIFFERENT ({})", self.listed_as);
        let width = allowed.len();
        println!("{:<width$} | observable | {} | netd", "", self.stock_label);
        let mut unexpected = Vec::new();
        for what in whats {
            let a = self.stock.get(what).unwrap_or("(not observed)");
            let b = self.netd.get(what).unwrap_or("(not observed)");
            let verdict = match (a == b, listed_why(self.listed, what)) {
                (true, _) => "SAME",
                (false, Some(_)) => allowed.as_str(),
                (false, None) => "DIFFERENT",
            };
            println!("{verdict:<width$} | {what} | {a} | {b}");
            if verdict == "DIFFERENT" {
                unexpected.push(format!("{what}: stock {a:?}, netd {b:?}"));
            }
        }
        for (part, why) in self.listed {
            println!("{}: {part}: {why}", self.listed_as);
        }
        unexpected
    }
}

/// The timing line of a comparison whose sides ran at once.
pub fn print_times(stock: f64, netd: f64, started: Instant) {
    println!(
        "stock side {stock:.1} s, netd side {netd:.1} s, in all {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Docker's (and Linux's default) ephemeral port range, from which both sides pick host ports.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// `text` with every `:PORT` in the ephemeral range as `:EPHEMERAL` (the ports either side
/// picks are not compared).
pub fn ephemeral(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        match rest[..digits].parse::<u16>() {
            Ok(port) if EPHEMERAL.contains(&port) => out.push_str("EPHEMERAL"),
            _ => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}
