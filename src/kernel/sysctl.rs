//! Namespaced sysctls (`net.*`), read and written from inside a namespace.
//!
//! /proc/sys/net resolves by the network namespace of the task that opens
//! the file, so the open happens on a dedicated thread that has entered the
//! namespace.

use std::{fs, io, path::PathBuf};

use super::netns::{NetnsGuard, on_dedicated_thread};

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

/// Reads `keys` in namespace `ns` (`""`: the process's own), on one
/// thread; a key the kernel does not have reads as `None`.
pub async fn read_sysctls(ns: &str, keys: &[String]) -> io::Result<Vec<(String, Option<String>)>> {
    let paths = keys
        .iter()
        .map(|key| Ok((key.clone(), sysctl_path(key)?)))
        .collect::<io::Result<Vec<_>>>()?;
    let ns = ns.to_owned();
    on_dedicated_thread(move || {
        let _netns = NetnsGuard::enter(&ns)?;
        Ok(paths
            .into_iter()
            .map(|(key, path)| {
                let value = fs::read_to_string(path).ok().map(|v| v.trim().to_owned());
                (key, value)
            })
            .collect())
    })
    .await
}

/// Writes every `(key, value)` in namespace `ns`, in order, on one thread.
pub async fn write_sysctls(ns: &str, settings: &[(&str, &str)]) -> io::Result<()> {
    let writes = settings
        .iter()
        .map(|(key, value)| Ok((sysctl_path(key)?, value.to_string())))
        .collect::<io::Result<Vec<_>>>()?;
    let ns = ns.to_owned();
    on_dedicated_thread(move || {
        let _netns = NetnsGuard::enter(&ns)?;
        for (path, value) in writes {
            fs::write(&path, value)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        Ok(())
    })
    .await
}
