//! Function libraries (`FUNCTION LOAD`, `FCALL`): cluster-wide configuration that the
//! control plane keeps beside the topology and every data node applies.
//!
//! A [`Library`] is its code (with the `#!lua name=...` first line) and what it
//! registered (function names, descriptions, flags), as found when it was loaded. The
//! rules of a library set ([`load`], [`restore`], [`delete`]) are pure functions over
//! [`Libraries`], used alike by the control plane's state machine and by a standalone
//! node. Running a library's code to learn what it registers needs Lua: see [`lua`]
//! (feature `lua`). Errors read as Redis's (without the `ERR ` prefix).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every library, by name.
pub type Libraries = BTreeMap<String, Library>;

/// One loaded library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    pub name: String,
    /// The code as it was sent, first line included.
    pub code: String,
    pub functions: Vec<FunctionInfo>,
}

/// One function a library registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<String>,
    /// Canonical flag names, in [`FLAGS`] order.
    pub flags: Vec<String>,
}

impl FunctionInfo {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// The script flags Redis knows, in the order `FUNCTION LIST` prints them.
pub const FLAGS: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// How `FUNCTION RESTORE` treats libraries that exist already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePolicy {
    /// A name that exists already fails the restore.
    Append,
    /// Same-named libraries are replaced.
    Replace,
    /// Every existing library goes first.
    Flush,
}

/// Why a library change was refused; the libraries are unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FunctionError {
    #[error("Missing library metadata")]
    MissingMetadata,
    #[error("Invalid library metadata")]
    InvalidMetadata,
    #[error("Invalid metadata value, name argument was given multiple times")]
    NameTwice,
    #[error("Invalid metadata value given: {0}")]
    BadMetadata(String),
    #[error("Library name was not given")]
    NoName,
    #[error("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")]
    BadName,
    #[error("Engine '{0}' not found")]
    NoEngine(String),
    #[error("Library '{0}' already exists")]
    Exists(String),
    /// As `FUNCTION RESTORE` words it.
    #[error("Library {0} already exists")]
    ExistsOnRestore(String),
    #[error("Function {0} already exists")]
    FunctionExists(String),
    #[error("No functions registered")]
    NoFunctions,
    #[error("Error compiling function: {0}")]
    Compile(String),
    #[error("Error registering functions: {0}")]
    Register(String),
    #[error("Library not found")]
    NotFound,
    #[error("library code must be UTF-8 text (ember keeps libraries as text)")]
    NotText,
}

/// What the first line of a library says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    /// Where the code after the first line starts (its newline, so line numbers hold).
    pub body_at: usize,
}

/// Parses `#!lua name=NAME` (the only engine, any case).
pub fn metadata(code: &str) -> Result<Metadata, FunctionError> {
    if !code.starts_with("#!") {
        return Err(FunctionError::MissingMetadata);
    }
    let end = code.find('\n').ok_or(FunctionError::InvalidMetadata)?;
    let mut parts = code[..end].split_whitespace();
    let engine = &parts.next().ok_or(FunctionError::InvalidMetadata)?[2..];
    let mut name = None;
    for part in parts {
        match part.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("name=") => {
                if name.is_some() {
                    return Err(FunctionError::NameTwice);
                }
                name = Some(part[5..].to_string());
            }
            _ => return Err(FunctionError::BadMetadata(part.to_string())),
        }
    }
    let name = name.ok_or(FunctionError::NoName)?;
    if !valid_name(&name) {
        return Err(FunctionError::BadName);
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(FunctionError::NoEngine(engine.to_string()));
    }
    Ok(Metadata { name, body_at: end })
}

/// Library and function names: letters, digits and `_`, at least one.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `FUNCTION LOAD [REPLACE]`: adds `lib` (checked by [`lua::check`]). Loading the
/// exact library that is there already changes nothing and succeeds, so a client that
/// sends the same `FUNCTION LOAD` to every primary gets the same answer from each.
/// Returns whether anything changed.
pub fn load(libs: &mut Libraries, lib: Library, replace: bool) -> Result<bool, FunctionError> {
    match libs.get(&lib.name) {
        Some(old) if *old == lib => return Ok(false),
        Some(_) if !replace => return Err(FunctionError::Exists(lib.name)),
        _ => {}
    }
    check_collisions(libs, std::slice::from_ref(&lib))?;
    libs.insert(lib.name.clone(), lib);
    Ok(true)
}

/// `FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]`. Under APPEND, a library that is
/// there already with the same code is no conflict (a repeated restore succeeds).
pub fn restore(
    libs: &mut Libraries,
    new: Vec<Library>,
    policy: RestorePolicy,
) -> Result<bool, FunctionError> {
    let mut next = match policy {
        RestorePolicy::Flush => Libraries::new(),
        _ => libs.clone(),
    };
    for lib in &new {
        match next.get(&lib.name) {
            Some(old) if old != lib && policy == RestorePolicy::Append => {
                return Err(FunctionError::ExistsOnRestore(lib.name.clone()))
            }
            _ => {}
        }
    }
    check_collisions(&next, &new)?;
    for lib in new {
        next.insert(lib.name.clone(), lib);
    }
    let changed = next != *libs;
    *libs = next;
    Ok(changed)
}

/// `FUNCTION DELETE name`.
pub fn delete(libs: &mut Libraries, name: &str) -> Result<(), FunctionError> {
    libs.remove(name).map(drop).ok_or(FunctionError::NotFound)
}

/// A function name of `new` that a library not replaced by `new` already has (or that
/// two of `new` share).
fn check_collisions(libs: &Libraries, new: &[Library]) -> Result<(), FunctionError> {
    let mut seen = std::collections::HashSet::new();
    for (name, lib) in libs {
        if new.iter().any(|n| n.name == *name) {
            continue;
        }
        seen.extend(lib.functions.iter().map(|f| f.name.as_str()));
    }
    for f in new.iter().flat_map(|l| &l.functions) {
        if !seen.insert(f.name.as_str()) {
            return Err(FunctionError::FunctionExists(f.name.clone()));
        }
    }
    Ok(())
}

#[cfg(feature = "lua")]
pub mod lua;

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str, functions: &[&str]) -> Library {
        Library {
            name: name.into(),
            code: format!("#!lua name={name}\n-- {functions:?}"),
            functions: functions
                .iter()
                .map(|f| FunctionInfo {
                    name: f.to_string(),
                    description: None,
                    flags: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn metadata_is_parsed_as_redis_does() {
        assert_eq!(metadata("#!lua name=a\nx").unwrap().name, "a");
        assert_eq!(metadata("#!LUA NAME=a_1\n").unwrap().body_at, 14);
        assert_eq!(metadata("x"), Err(FunctionError::MissingMetadata));
        assert_eq!(
            metadata("#!lua name=a"),
            Err(FunctionError::InvalidMetadata)
        );
        assert_eq!(metadata("#!lua\n"), Err(FunctionError::NoName));
        assert_eq!(metadata("#!lua name=a-b\n"), Err(FunctionError::BadName));
        assert_eq!(
            metadata("#!lua name=a name=b\n"),
            Err(FunctionError::NameTwice)
        );
        assert_eq!(
            metadata("#!lua foo=b\n"),
            Err(FunctionError::BadMetadata("foo=b".into()))
        );
        assert_eq!(
            metadata("#!js name=b\n"),
            Err(FunctionError::NoEngine("js".into()))
        );
    }

    #[test]
    fn loading_is_idempotent_and_refuses_conflicts() {
        let mut libs = Libraries::new();
        assert_eq!(load(&mut libs, lib("a", &["f"]), false), Ok(true));
        assert_eq!(load(&mut libs, lib("a", &["f"]), false), Ok(false));
        assert_eq!(
            load(&mut libs, lib("a", &["g"]), false),
            Err(FunctionError::Exists("a".into()))
        );
        assert_eq!(
            load(&mut libs, lib("b", &["f"]), false),
            Err(FunctionError::FunctionExists("f".into()))
        );
        assert_eq!(load(&mut libs, lib("a", &["g"]), true), Ok(true));
        assert_eq!(libs["a"].functions[0].name, "g");
        assert_eq!(load(&mut libs, lib("b", &["f"]), false), Ok(true));
        assert_eq!(delete(&mut libs, "a"), Ok(()));
        assert_eq!(delete(&mut libs, "a"), Err(FunctionError::NotFound));
    }

    #[test]
    fn restore_follows_its_policy() {
        let mut libs = Libraries::new();
        load(&mut libs, lib("a", &["f"]), false).unwrap();
        let before = libs.clone();
        assert_eq!(
            restore(&mut libs, vec![lib("a", &["g"])], RestorePolicy::Append),
            Err(FunctionError::ExistsOnRestore("a".into()))
        );
        assert_eq!(
            restore(&mut libs, vec![lib("b", &["f"])], RestorePolicy::Replace),
            Err(FunctionError::FunctionExists("f".into()))
        );
        assert_eq!(libs, before);
        assert_eq!(
            restore(&mut libs, vec![lib("a", &["f"])], RestorePolicy::Append),
            Ok(false)
        );
        assert_eq!(
            restore(&mut libs, vec![lib("b", &["f"])], RestorePolicy::Flush),
            Ok(true)
        );
        assert_eq!(libs.keys().collect::<Vec<_>>(), ["b"]);
    }
}
