//! libFuzzer target: the daemon's request decoder. Whatever the bytes, decoding never panics; a
//! refusal is one line; a decoded request encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netd::api::decode_request;

fuzz_target!(|data: &[u8]| {
    match decode_request(data) {
        Ok(request) => {
            let again = serde_json::to_vec(&request).unwrap();
            let decoded = decode_request(&again).expect("an encoded request decodes");
            assert_eq!(
                serde_json::to_value(&decoded).unwrap(),
                serde_json::to_value(&request).unwrap()
            );
        }
        Err(e) => {
            assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
            assert!(e.starts_with("malformed request: ") || e.starts_with("request too large"));
        }
    }
});
