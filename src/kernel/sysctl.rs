//! Namespaced sysctls (`net.*`), read and written from inside a namespace.
//!
//! /proc/sys/net resolves by the network namespace of the task that opens
//! the file: these run on the namespace's worker thread.

use std::{fs, io, path::PathBuf};

/// /proc/sys path of a `net.*` key; other keys are not namespaced and are
/// refused. Dots separate levels (an interface name with a dot, e.g. a VLAN
/// `eth0.10`, would need the slash notation: not supported here).
fn sysctl_path(key: &str) -> io::Result<PathBuf> {
    if !key.starts_with("net.")
        || key.contains('/')
        || key.split('.').any(|part| part.is_empty() || part == "..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a namespaced sysctl: {key}"),
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(key.replace('.', "/")))
}

/// Reads `keys` in the calling thread's namespace; a key the kernel does
/// not have reads as `None`.
pub fn read_here(keys: &[String]) -> io::Result<Vec<(String, Option<String>)>> {
    keys.iter()
        .map(|key| {
            let value = fs::read_to_string(sysctl_path(key)?)
                .ok()
                .map(|v| v.trim().to_owned());
            Ok((key.clone(), value))
        })
        .collect()
}

/// Writes `value` to `key` in the calling thread's namespace.
pub fn write_here(key: &str, value: &str) -> io::Result<()> {
    let path = sysctl_path(key)?;
    fs::write(&path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}
