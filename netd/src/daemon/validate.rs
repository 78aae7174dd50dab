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

/// Names Docker accepts for containers: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, two characters at least
/// (`docker run --name j` is refused). Containers that a runtime names (CNI, Docker's sandboxes)
/// follow the runtime's rules and take [`name`]'s.
pub fn container_name(name: &str) -> OpResult<()> {
    self::name("container", name)?;
    if name.len() < 2 {
        return Err(invalid(format!(
            "invalid container name {name:?}: two characters at least, and only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
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

/// A network device name the kernel accepts (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`,
/// no `/`, `:` or whitespace; and no NUL, which would end the name early in netlink.
pub fn device_name(kind: &str, name: &str) -> OpResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0x0b || b == 0);
    if !ok {
        return Err(invalid(format!(
            "invalid {kind} name {name:?}: 1 to 15 bytes, not . or .., no '/', ':' or whitespace"
        )));
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
    fn container_names_have_two_characters_at_least_as_dockers() {
        assert!(container_name("jj").is_ok());
        assert!(container_name("a.b-c_1").is_ok());
        for bad in ["j", "", "-x", "_a", "a b"] {
            let err = container_name(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid container name"), "{err}");
        }
    }

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

    /// Property tests: device names are what the kernel takes, names what Docker takes, and
    /// every refusal is one line. `PROPTEST_CASES` sets the number of cases.
    mod props {
        use proptest::prelude::*;

        use super::*;

        /// The kernel's `dev_valid_name` (net/core/dev.c), byte for byte: C's `isspace` is
        /// space, \t, \n, \v, \f and \r; a NUL ends the name early.
        fn kernel_accepts(name: &[u8]) -> bool {
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            !name.is_empty()
                && name.len() < 16
                && name != b"."
                && name != b".."
                && !name
                    .iter()
                    .any(|&b| b == b'/' || b == b':' || b" \t\n\x0b\x0c\r".contains(&b))
        }

        fn one_line(e: &crate::daemon::error::OpError) -> Result<(), TestCaseError> {
            let text = e.to_string();
            prop_assert!(!text.contains('\n') && !text.contains('\r'), "{:?}", text);
            Ok(())
        }

        proptest! {
            #[test]
            fn device_names_are_what_the_kernel_accepts(name in prop_oneof![
                "[a-z0-9./: \t\n\x0b\x0c-]{0,17}", any::<String>()
            ]) {
                let ours = device_name("bridge", &name);
                // A NUL would cut the name short in the kernel: it is refused.
                let kernel = !name.contains('\0') && kernel_accepts(name.as_bytes());
                prop_assert_eq!(ours.is_ok(), kernel, "{:?}", name);
                if let Err(e) = &ours {
                    one_line(e)?;
                }
            }

            #[test]
            fn names_follow_dockers_pattern_and_fail_in_one_line(name in prop_oneof![
                "[a-zA-Z0-9_.-]{0,130}", any::<String>()
            ]) {
                let docker = name.len() <= 128
                    && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                let got = super::name("container", &name);
                prop_assert_eq!(got.is_ok(), docker, "{:?}", name);
                if let Err(e) = &got {
                    one_line(e)?;
                }
                if let Err(e) = &hostname(&name) {
                    one_line(e)?;
                }
            }

            #[test]
            fn key_values_keep_everything_after_the_first_equals(
                items in proptest::collection::vec(any::<String>(), 0..4)
            ) {
                match key_values("option", &items) {
                    Ok(kv) => for item in &items {
                        let (k, _) = item.split_once('=').unwrap();
                        prop_assert!(!k.is_empty());
                        // The last of several equal keys wins.
                        let last = items.iter().rev().find_map(|i| i.split_once('=').filter(|(kk, _)| kk == &k)).unwrap().1;
                        prop_assert_eq!(kv.get(k).map(String::as_str), Some(last));
                    },
                    Err(e) => {
                        prop_assert!(items.iter().any(|i| i.split_once('=').is_none_or(|(k, _)| k.is_empty())));
                        one_line(&e)?;
                    }
                }
            }
        }
    }
}
