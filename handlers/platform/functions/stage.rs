//! A runnable Function App folder, as the Functions host and Core Tools (`func start`,
//! `func azure functionapp publish`) expect it:
//!
//! ```text
//! <dir>/host.json
//! <dir>/<Function>/function.json     one folder per function
//! <dir>/<executable>                 the custom handler (host.json `defaultExecutablePath`)
//! <dir>/local.settings.json          the local profile for `func start` (never published:
//!                                    Core Tools leaves it out of the package)
//! ```
//!
//! Nothing else is written, so the folder holds exactly what the host reads.

use std::path::{Path, PathBuf};

/// What goes into the folder.
pub struct Stage<'a> {
    pub host_json: &'a str,
    /// `(function name, function.json text)`.
    pub functions: &'a [(&'a str, &'a str)],
    /// The handler binary to copy.
    pub executable: &'a Path,
    pub local_settings: &'a str,
}

/// The executable name host.json runs (`customHandler.description.defaultExecutablePath`).
pub fn executable_name(host_json: &str) -> anyhow::Result<String> {
    let host: serde_json::Value = serde_json::from_str(host_json)
        .map_err(|e| anyhow::anyhow!("host.json is not valid JSON: {e}"))?;
    let path = host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .ok_or_else(|| {
            anyhow::anyhow!("host.json has no customHandler.description.defaultExecutablePath")
        })?;
    let name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n == path)
        .ok_or_else(|| {
            anyhow::anyhow!("host.json runs '{path}'; expected a file name in the app folder")
        })?;
    Ok(name.to_owned())
}

impl Stage<'_> {
    /// Writes the folder `dir`, which must not exist or be empty (`force` empties it first).
    /// Returns the files written, relative to `dir`.
    pub fn write(&self, dir: &Path, force: bool) -> anyhow::Result<Vec<PathBuf>> {
        if dir.exists() {
            let mut entries = std::fs::read_dir(dir)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
            if entries.next().is_some() {
                if !force {
                    anyhow::bail!(
                        "{} is not empty; choose a new folder or pass --force to replace its contents",
                        dir.display()
                    );
                }
                std::fs::remove_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("cannot empty {}: {e}", dir.display()))?;
            }
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let mut written = Vec::new();
        let mut put = |rel: PathBuf, text: &str| -> anyhow::Result<()> {
            let path = dir.join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            written.push(rel);
            Ok(())
        };
        put("host.json".into(), self.host_json)?;
        for (name, json) in self.functions {
            put(Path::new(name).join("function.json"), json)?;
        }
        put("local.settings.json".into(), self.local_settings)?;
        let exe = executable_name(self.host_json)?;
        let target = dir.join(&exe);
        std::fs::copy(self.executable, &target).map_err(|e| {
            anyhow::anyhow!(
                "cannot copy {} to {}: {e}",
                self.executable.display(),
                target.display()
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
        written.push(PathBuf::from(exe));
        Ok(written)
    }
}
