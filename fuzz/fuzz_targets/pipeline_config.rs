//! Pipeline files: TOML, `${VAR}` substitution and validation. Variables
//! come from the file itself: a comment line `#env NAME=VALUE` sets one, so
//! the fuzzer steers substitution as it steers the text.

#![no_main]

use std::path::Path;

use ferry::config::PipelineConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lookup = |name: &str| -> Option<String> {
        let found = text.lines().find_map(|line| {
            let (key, value) = line.strip_prefix("#env ")?.split_once('=')?;
            (key == name).then(|| value.to_owned())
        });
        // Unset names of an even length read as set but empty.
        found.or_else(|| (name.len() % 2 == 0).then(String::new))
    };
    let Ok(config) = PipelineConfig::parse(text, Path::new("pipelines/fuzz.toml"), &lookup) else { return };
    // What the runner reads from a valid file, before any I/O.
    let connection = config.iggy_connection();
    if let Some(dead_letter) = &config.dead_letter {
        let _ = dead_letter.connection(&connection);
    }
    for transform in &config.transforms {
        assert!(transform.single_record_deadline() <= transform.timeout);
        let _ = transform.recycle_threshold();
        let _ = transform.config_json();
    }
    if let ferry::config::Route::ChangesToIggy { source, .. } = &config.route {
        if source.start == ferry::config::StreamStart::CopyExisting {
            assert!(source.copied_collection().is_some(), "a valid copy-existing file names its collection");
        }
    }
});
