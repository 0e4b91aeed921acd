//! Small durable files: written to a temporary name, fsynced, renamed into place, and the
//! folder fsynced, so a crash leaves either the old or the new content, never a torn file.

use std::io::Write;
use std::path::Path;

pub fn write_durably(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_durably_as(path, contents, false)
}

/// [`write_durably`] for a secret (a private key, credentials): the file is the owner's alone
/// (mode 0600) from the moment it exists, never readable by others for a moment.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_durably_as(path, contents, true)
}

fn write_durably_as(path: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(folder)?;
    let temporary = path.with_extension("tmp");
    {
        // A temporary left by a crash keeps its old mode: start from no file.
        let _ = std::fs::remove_file(&temporary);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if private {
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(folder)?.sync_all()?;
    Ok(())
}

/// Reads a small text file written by [`write_durably`], or writes `make()` there first.
pub fn read_or_init(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    read_or_init_as(path, make, false)
}

/// [`read_or_init`] for a secret, written with [`write_private`].
pub fn read_or_init_private(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    read_or_init_as(path, make, true)
}

fn read_or_init_as(
    path: &Path,
    make: impl FnOnce() -> String,
    private: bool,
) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            write_durably_as(path, value.as_bytes(), private)?;
            Ok(value)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/node-id");
        assert_eq!(read_or_init(&path, || "first".into()).unwrap(), "first");
        assert_eq!(read_or_init(&path, || "second".into()).unwrap(), "first");
    }

    #[test]
    fn private_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        assert_eq!(
            read_or_init_private(&path, || "s3cret".into()).unwrap(),
            "s3cret"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
