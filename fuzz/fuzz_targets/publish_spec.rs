//! libFuzzer target: `-p/--publish` and `--expose` specs. Whatever the text, parsing never panics;
//! a refusal is one line quoting the spec; every parsed mapping prints as a spec that parses back
//! to exactly it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netd::ports::{parse_expose, parse_publish};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    match parse_publish(spec) {
        Ok(mappings) => {
            assert!(!mappings.is_empty());
            for m in mappings {
                assert!(m.container_port != 0, "{spec:?}");
                let printed = m.to_string();
                assert_eq!(
                    parse_publish(&printed),
                    Ok(vec![m]),
                    "{spec:?} -> {printed:?}"
                );
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text:?}");
            assert!(text.contains(&format!("{spec:?}")), "{text:?}");
        }
    }
    match parse_expose(spec) {
        Ok(ports) => {
            assert!(ports.iter().all(|p| p.port != 0) && !spec.contains(':'));
            let printed = ports[0].to_string();
            assert_eq!(parse_expose(&printed).unwrap()[0], ports[0]);
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
