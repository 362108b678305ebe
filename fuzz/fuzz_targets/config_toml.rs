//! The config file: any text through parse and validation. Invariants: no panic; an error
//! names the file; a config that validates renders to TOML that reads back equal; checking
//! its cores against any CPU list answers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_str_named(text, "fuzz.toml") {
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml: "), "{e}"),
        Ok(config) => {
            let again = Config::from_str_named(&config.to_toml(), "fuzz.toml")
                .expect("a rendered config validates");
            assert_eq!(again, config);
            let _ = config.check_cores(&[0, 1]);
            let _ = config.check_cores(&[]);
        }
    }
});
