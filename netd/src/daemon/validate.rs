//! Checks on names and options that need no state: done before anything else so that bad input
//! changes nothing.
use std::collections::BTreeMap;

use super::error::{invalid, OpResult};

/// Names Docker accepts for containers and networks: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn name(kind: &str, name: &str) -> OpResult<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        || name.len() > 128
    {
        return Err(invalid(format!(
            "invalid {kind} name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(())
}

/// A hostname label sequence (RFC 1123).
pub fn hostname(name: &str) -> OpResult<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(invalid(format!("invalid hostname {name:?}")));
    }
    Ok(())
}

/// `KEY=VALUE` pairs; a missing `=` or empty key is refused.
pub fn key_values(what: &str, items: &[String]) -> OpResult<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(invalid(format!(
                "invalid {what} {item:?}: expected KEY=VALUE"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(name("network", "my-net_1.0").is_ok());
        for bad in ["", "-x", "a b", "a/b", "ümlaut"] {
            let err = name("network", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid network name"), "{err}");
        }
    }

    #[test]
    fn hostnames_are_rfc1123() {
        assert!(hostname("web-1.example").is_ok());
        assert!(hostname("-web").is_err());
        assert!(hostname("a..b").is_err());
        assert!(hostname("under_score").is_err());
    }

    #[test]
    fn key_values_need_an_equals_sign() {
        let kv = key_values("option", &["a=1".into(), "b=".into()]).unwrap();
        assert_eq!(kv["a"], "1");
        assert_eq!(kv["b"], "");
        assert!(key_values("option", &["novalue".into()]).is_err());
        assert!(key_values("option", &["=v".into()]).is_err());
    }
}
