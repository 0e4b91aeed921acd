//! One config pattern for every node binary.
//!
//! Each layer's library has a flat options struct `T` (serde, `#[serde(default,
//! deny_unknown_fields)]`, its `Default` the documented defaults); its field names are the
//! binary's long flag names with `_` for `-`. A value is taken from, lowest first:
//!
//! 1. the defaults (`T::default()`),
//! 2. the TOML file named by `--config` (keys = field names; an unknown key is an error),
//! 3. the environment, `STRATA_<FIELD>` in upper case (e.g. `STRATA_LIFECYCLE_DAY_MS`),
//! 4. the flags given on the command line.
//!
//! The binary's flags are a clap struct whose fields are all `Option`s (`None` = not given)
//! named like `T`'s fields, with the `--config` path marked `#[serde(skip)]`; [`load`] merges
//! them into `T` in one place, so no binary merges values by hand. The flags every node has
//! (`--config`, `--listen`, `--http-listen`, `--data-dir` and the TLS files) are one
//! [`NodeFlags`] struct, flattened into each binary's flags; [`load_node`] also reads the TLS
//! files (`mtls_ca`, `mtls_cert`, `mtls_key`: flag, environment or file) into the node's identity.

use crate::tls::{Identity, TlsFiles};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Prefix of the environment variables that set options: `STRATA_` + field name in upper case.
pub const ENV_PREFIX: &str = "STRATA_";

/// The flags of every node binary, flattened into its own (`#[command(flatten)]` and
/// `#[serde(flatten)]`); a node whose options lack one (the front-end keeps no data) refuses it.
#[derive(clap::Args, Debug, Default, Serialize)]
pub struct NodeFlags {
    /// TOML file of options.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Listen address of the node's service (gRPC; S3 HTTP for the front-end).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Admin HTTP listen address (/health, /metrics).
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// The node's data folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub tls: TlsFiles,
}

/// [`load`] for a node binary: its options `T` and its TLS identity (`None`: plain gRPC), read
/// from the same sources (`node.config`, environment, `flags`).
pub fn load_node<T, F>(node: &NodeFlags, flags: &F) -> anyhow::Result<(T, Option<Identity>)>
where
    T: Serialize + DeserializeOwned + Default,
    F: Serialize,
{
    let (options, tls) = load_node_with_env::<T, _>(
        node.config.as_deref(),
        |name| std::env::var(name).ok(),
        flags,
    )?;
    Ok((options, tls.load()?))
}

/// [`load_node`] reading the environment through `env`, returning the TLS file names.
pub fn load_node_with_env<T, F>(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    flags: &F,
) -> anyhow::Result<(T, TlsFiles)>
where
    T: Serialize + DeserializeOwned + Default,
    F: Serialize,
{
    let tls_fields = field_names::<TlsFiles>()?;
    let mut fields = field_names::<T>()?;
    fields.extend(tls_fields.iter().cloned());
    let mut merged = merged_values::<T, F>(path, env, fields, flags)?;
    let tls: Map<String, Value> = tls_fields
        .iter()
        .filter_map(|field| merged.remove_entry(field))
        .collect();
    let options = serde_json::from_value(Value::Object(merged))
        .map_err(|err| anyhow::anyhow!("config: {err}"))?;
    let tls = serde_json::from_value(Value::Object(tls))
        .map_err(|err| anyhow::anyhow!("config: {err}"))?;
    Ok((options, tls))
}

/// Builds `T` from its defaults, the TOML file at `path` (if any), the process environment and
/// `flags` (a struct of `Option`s; `None` fields are not given), later sources winning.
pub fn load<T, F>(path: Option<&Path>, flags: &F) -> anyhow::Result<T>
where
    T: Serialize + DeserializeOwned + Default,
    F: Serialize,
{
    load_with_env(path, |name| std::env::var(name).ok(), flags)
}

/// [`load`] reading the environment through `env` (a variable name -> its value), so tests
/// need not change the process environment.
pub fn load_with_env<T, F>(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    flags: &F,
) -> anyhow::Result<T>
where
    T: Serialize + DeserializeOwned + Default,
    F: Serialize,
{
    let merged = merged_values::<T, F>(path, env, field_names::<T>()?, flags)?;
    serde_json::from_value(Value::Object(merged)).map_err(|err| anyhow::anyhow!("config: {err}"))
}

/// The file's values, then the environment's for `fields`, then the given flags, merged.
fn merged_values<T: DeserializeOwned, F: Serialize>(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    fields: Vec<String>,
    flags: &F,
) -> anyhow::Result<Map<String, Value>> {
    let mut merged = match path {
        Some(path) => file_values(path)?,
        None => Map::new(),
    };
    // The defaults' keys are every field (an unset `Option` serializes as null), so only
    // variables naming a field are read: unrelated STRATA_* variables (STRATA_BIN_DIR, ...) are
    // left alone.
    for field in fields {
        let name = format!("{ENV_PREFIX}{}", field.to_uppercase());
        if let Some(raw) = env(&name) {
            let value = env_value::<T>(&field, &raw);
            merged.insert(field, value);
        }
    }
    match serde_json::to_value(flags)? {
        Value::Object(given) => {
            merged.extend(given.into_iter().filter(|(_, value)| !value.is_null()));
        }
        other => anyhow::bail!("flags must be a struct, got {other}"),
    }
    Ok(merged)
}

/// Splits a comma-separated address list (`--manager a,b,c`), dropping blanks.
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

fn file_values(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("reading config file {}: {err}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|err| anyhow::anyhow!("parsing config file {}: {err}", path.display()))?;
    match serde_json::to_value(table)? {
        Value::Object(map) => Ok(map),
        _ => unreachable!("a TOML table serializes as an object"),
    }
}

fn field_names<T: Serialize + Default>() -> anyhow::Result<Vec<String>> {
    match serde_json::to_value(T::default())? {
        Value::Object(map) => Ok(map.keys().cloned().collect()),
        other => anyhow::bail!("options must be a struct, got {other}"),
    }
}

/// An environment value is text; it is typed by what the field accepts: a number or boolean
/// when `T` takes it as one (`STRATA_SPLIT_SUSTAIN_MS=10000`), else the text itself (so a
/// secret key "12345" stays a string).
fn env_value<T: DeserializeOwned>(field: &str, raw: &str) -> Value {
    if let Ok(parsed) = serde_json::from_str::<Value>(raw) {
        if parsed.is_number() || parsed.is_boolean() {
            let probe = Value::Object(Map::from_iter([(field.to_string(), parsed.clone())]));
            if serde_json::from_value::<T>(probe).is_ok() {
                return parsed;
            }
        }
    }
    Value::String(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        rack: String,
        listen: String,
        interval_ms: u64,
        ratio: f64,
        secret: String,
        node_id: Option<String>,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                rack: "default-rack".into(),
                listen: "127.0.0.1:0".into(),
                interval_ms: 1_000,
                ratio: 0.5,
                secret: String::new(),
                node_id: None,
            }
        }
    }

    #[derive(serde::Serialize, Default)]
    struct Flags {
        rack: Option<String>,
        listen: Option<String>,
        interval_ms: Option<u64>,
        ratio: Option<f64>,
        secret: Option<String>,
        node_id: Option<String>,
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write_file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_then_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            "rack = \"file-rack\"\nlisten = \"127.0.0.1:1\"\ninterval_ms = 2000\n",
        );
        let env = env_of(&[
            ("STRATA_LISTEN", "127.0.0.1:2"),
            ("STRATA_INTERVAL_MS", "3000"),
            ("STRATA_RATIO", "0.25"),
            ("STRATA_BIN_DIR", "/not/a/field"),
        ]);
        let flags = Flags {
            interval_ms: Some(4_000),
            ..Flags::default()
        };
        let got: Sample = load_with_env(Some(&path), env, &flags).unwrap();
        assert_eq!(
            got,
            Sample {
                rack: "file-rack".into(),     // file over default
                listen: "127.0.0.1:2".into(), // env over file
                interval_ms: 4_000,           // flag over env over file
                ratio: 0.25,                  // env over default
                secret: String::new(),        // default
                node_id: None,                // default
            }
        );
    }

    #[test]
    fn nothing_given_is_the_defaults() {
        let got: Sample = load_with_env(None, env_of(&[]), &Flags::default()).unwrap();
        assert_eq!(got, Sample::default());
    }

    #[test]
    fn env_text_that_looks_like_a_number_stays_text_for_string_fields() {
        let env = env_of(&[("STRATA_SECRET", "12345"), ("STRATA_NODE_ID", "7")]);
        let got: Sample = load_with_env(None, env, &Flags::default()).unwrap();
        assert_eq!(got.secret, "12345");
        assert_eq!(got.node_id.as_deref(), Some("7"));
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "rakc = \"r1\"\n");
        assert!(load_with_env::<Sample, _>(Some(&path), env_of(&[]), &Flags::default()).is_err());
        let env = env_of(&[("STRATA_INTERVAL_MS", "soon")]);
        assert!(load_with_env::<Sample, _>(None, env, &Flags::default()).is_err());
        let missing = dir.path().join("missing.toml");
        assert!(
            load_with_env::<Sample, _>(Some(&missing), env_of(&[]), &Flags::default()).is_err()
        );
    }

    #[derive(serde::Serialize, Default)]
    struct FlattenedFlags {
        #[serde(flatten)]
        node: NodeFlags,
        rack: Option<String>,
    }

    #[test]
    fn node_flags_and_tls_files_come_from_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "rack = \"file-rack\"\nmtls_ca = \"/file/ca.pem\"\n");
        let env = env_of(&[("STRATA_MTLS_CERT", "/env/node.pem")]);
        let flags = FlattenedFlags {
            node: NodeFlags {
                listen: Some("127.0.0.1:7".parse().unwrap()),
                tls: TlsFiles {
                    mtls_key: Some("/flag/node.key".into()),
                    ..TlsFiles::default()
                },
                ..NodeFlags::default()
            },
            rack: None,
        };
        let (got, tls): (Sample, TlsFiles) = load_node_with_env(Some(&path), env, &flags).unwrap();
        assert_eq!(got.rack, "file-rack");
        assert_eq!(got.listen, "127.0.0.1:7");
        assert_eq!(
            tls,
            TlsFiles {
                mtls_ca: Some("/file/ca.pem".into()),
                mtls_cert: Some("/env/node.pem".into()),
                mtls_key: Some("/flag/node.key".into()),
            }
        );
        // A node whose options lack a common flag refuses it rather than ignoring it.
        let flags = FlattenedFlags {
            node: NodeFlags {
                data_dir: Some("/data".into()),
                ..NodeFlags::default()
            },
            rack: None,
        };
        let refused = load_node_with_env::<Sample, _>(None, env_of(&[]), &flags);
        assert!(refused.is_err());
    }

    #[test]
    fn lists_split_on_commas() {
        assert_eq!(split_list(" a:1, b:2 ,,"), vec!["a:1", "b:2"]);
        assert!(split_list("").is_empty());
    }
}
