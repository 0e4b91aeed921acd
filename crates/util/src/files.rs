//! Small durable files: written to a temporary name, fsynced, renamed into place, and the
//! folder fsynced, so a crash leaves either the old or the new content, never a torn file.

use std::io::Write;
use std::path::Path;

pub fn write_durably(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(folder)?;
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(folder)?.sync_all()?;
    Ok(())
}

/// Reads a small text file written by [`write_durably`], or writes `make()` there first.
pub fn read_or_init(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            write_durably(path, value.as_bytes())?;
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
}
