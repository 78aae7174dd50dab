//! libFuzzer target: `--link NAME[:ALIAS]`. Parsing never panics; what parses has a usable name
//! and alias and prints back to itself; a refusal is one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netd::links::parse_link;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    match parse_link(spec) {
        Ok(link) => {
            for part in [&link.name, &link.alias] {
                assert!(!part.is_empty());
                assert!(!part
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == ':'));
            }
            assert_eq!(parse_link(&link.to_string()), Ok(link));
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
        }
    }
});
