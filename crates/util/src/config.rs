//! Config files: TOML whose keys are the long flag names with `_` for `-`. A binary parses its
//! flags (all optional), loads the file named by `--config`, and lets each flag given on the
//! command line win over the file.

use serde::de::DeserializeOwned;
use std::path::Path;

/// Loads `path` as TOML into `T`; no path gives `T::default()`.
pub fn load<T: DeserializeOwned + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("reading config file {}: {err}", path.display()))?;
    toml::from_str(&text)
        .map_err(|err| anyhow::anyhow!("parsing config file {}: {err}", path.display()))
}

/// Picks the flag when given, else the file's value, else the default.
pub fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        rack: Option<String>,
        listen: Option<String>,
    }

    #[test]
    fn file_values_load_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "rack = \"r1\"\nlisten = \"127.0.0.1:1\"\n").unwrap();
        let file: Sample = load(Some(&path)).unwrap();
        assert_eq!(file.rack.as_deref(), Some("r1"));
        assert_eq!(
            pick(Some("r2".to_string()), file.rack.clone(), "d".into()),
            "r2"
        );
        assert_eq!(pick(None, file.rack, "d".to_string()), "r1");
        assert_eq!(pick::<String>(None, None, "d".into()), "d");
    }

    #[test]
    fn unknown_keys_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "rakc = \"r1\"\n").unwrap();
        assert!(load::<Sample>(Some(&path)).is_err());
    }
}
