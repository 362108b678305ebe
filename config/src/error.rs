//! The crate's one error type, and the mapping from a TOML error's byte span to a key path.

use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use crate::raw::ParseError;

/// Why a configuration was rejected.
///
/// Every variant names the file; `Invalid` also names the key path (`lcores[2].rx`, where `[2]`
/// is the index of the entry in its array) and, in its message, the bad value. Only the first
/// problem found is reported: fix it and run again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid TOML. Fix the text at `line`:`column` (both 1-based; the column
    /// counts characters).
    #[error("{file}: line {line}, column {column}: TOML syntax error: {message}")]
    Syntax {
        /// The file name as given to [`Config::from_file`](crate::Config::from_file) or
        /// [`Config::from_str_named`](crate::Config::from_str_named).
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// What the TOML parser expected.
        message: String,
    },
    /// The TOML is well-formed but a key or value is not acceptable: an unknown key, a value of
    /// the wrong type, or a value that breaks a rule of the schema. Change the value at `key`.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The file name as given.
        file: String,
        /// Key path of the offending value, e.g. `ports[0].rx_descriptors`; `top level` for a
        /// problem with the document as a whole.
        key: String,
        /// What is wrong, naming the bad value.
        message: String,
    },
    /// A string value that does not parse as the type it should, from a [`FromStr`] impl in this
    /// crate ([`MacAddr`](crate::MacAddr), [`PciAddr`](crate::PciAddr)). Inside a config it is
    /// reported as [`ConfigError::Invalid`] with the file and key added.
    ///
    /// [`FromStr`]: std::str::FromStr
    #[error("{value:?} is not {expected}")]
    Value {
        /// The text that failed to parse.
        value: String,
        /// What it should have been.
        expected: String,
    },
    /// The config file could not be read. Check the path and its permissions.
    #[error("{}: cannot read config file: {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is longer than [`MAX_CONFIG_BYTES`](crate::MAX_CONFIG_BYTES) (or never
    /// ends, like `/dev/zero`): it is not a config. Check the path.
    #[error("{}: not read: a config file is at most {limit} bytes", path.display())]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
}

impl ConfigError {
    /// The file the error is about, where there is one (every variant but `Value`).
    pub fn file(&self) -> Option<String> {
        match self {
            ConfigError::Syntax { file, .. } | ConfigError::Invalid { file, .. } => {
                Some(file.clone())
            }
            ConfigError::Io { path, .. } | ConfigError::TooLarge { path, .. } => {
                Some(path.display().to_string())
            }
            ConfigError::Value { .. } => None,
        }
    }

    /// The key path of an `Invalid` error, e.g. `lcores[2].rx`.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    pub(crate) fn value(value: &str, expected: &str) -> Self {
        ConfigError::Value {
            value: value.to_owned(),
            expected: expected.to_owned(),
        }
    }

    /// Turns a TOML parse or deserialization error into `Syntax` or `Invalid`.
    pub(crate) fn from_parse(file: &str, text: &str, err: ParseError) -> Self {
        let ParseError { message, span } = err;
        let (line, column) = span.as_ref().map_or((1, 1), |s| line_column(text, s.start));
        match DeTable::parse(text) {
            Err(_) => ConfigError::Syntax {
                file: file.to_owned(),
                line,
                column,
                message,
            },
            Ok(root) => {
                let key = span
                    .and_then(|s| locate(root.get_ref(), &s))
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "top level".to_owned());
                ConfigError::Invalid {
                    file: file.to_owned(),
                    key,
                    message: format!("{message} (line {line}, column {column})"),
                }
            }
        }
    }
}

/// 1-based line and character column of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The key path (`ports[1].queues`) of the innermost key or value whose span holds `err`.
///
/// A table header (`[[ports]]`) is the span of the table it opens, which is how a "missing
/// field" error is located; the keys of such a table lie outside that span, so every table is
/// searched, not only the ones whose span holds `err`.
fn locate(table: &DeTable<'_>, err: &Range<usize>) -> Option<String> {
    for (key, value) in table.iter() {
        let name = key.get_ref();
        if contains(&key.span(), err) {
            return Some(name.to_string());
        }
        if let Some(rest) = locate_value(value.get_ref(), err) {
            return Some(if rest.starts_with('[') || rest.is_empty() {
                format!("{name}{rest}")
            } else {
                format!("{name}.{rest}")
            });
        }
        if contains(&value.span(), err) {
            return Some(name.to_string());
        }
    }
    None
}

fn locate_value(value: &DeValue<'_>, err: &Range<usize>) -> Option<String> {
    match value {
        DeValue::Table(table) => locate(table, err),
        DeValue::Array(array) => array
            .iter()
            .enumerate()
            .find_map(|(i, item)| match locate_value(item.get_ref(), err) {
                Some(rest) if rest.starts_with('[') => Some(format!("[{i}]{rest}")),
                Some(rest) => Some(format!("[{i}].{rest}")),
                None if contains(&item.span(), err) => Some(format!("[{i}]")),
                None => None,
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let text = "a = 1\nbé = x\n";
        let at = text.find('x').unwrap();
        assert_eq!(line_column(text, at), (2, 6));
        assert_eq!(line_column(text, 0), (1, 1));
    }

    #[test]
    fn locates_nested_keys_and_headers() {
        let text = "x = 1\n[[p]]\na = 1\n[[p]]\na = 2\nl = [1, 2]\n[t]\nin = { z = 1 }\n";
        let root = DeTable::parse(text).unwrap();
        // The span of `len` bytes at the start of `needle`'s first occurrence.
        let at = |needle: &str, len: usize| {
            let i = text.find(needle).unwrap();
            locate(root.get_ref(), &(i..i + len))
        };
        assert_eq!(at("x", 1).as_deref(), Some("x"));
        assert_eq!(at("a = 2", 5).as_deref(), None); // across key and value
        assert_eq!(at("2\n", 1).as_deref(), Some("p[1].a"));
        assert_eq!(at("2]", 1).as_deref(), Some("p[1].l[1]"));
        assert_eq!(at("[1, 2]", 6).as_deref(), Some("p[1].l"));
        assert_eq!(at("z", 1).as_deref(), Some("t.in.z"));
        assert_eq!(at("[t]", 3).as_deref(), Some("t"));
        let second_header = text.rfind("[[p]]").unwrap();
        assert_eq!(
            locate(root.get_ref(), &(second_header..second_header + 5)).as_deref(),
            Some("p[1]")
        );
    }
}
