//! Reading the files an operator names (config, model): regular files only, with a hard size
//! limit. A FIFO, a device (`/dev/zero`) or a directory is refused before anything is read, so a
//! wrong path can neither hang the sensor nor exhaust its memory.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Reads `path` as UTF-8 text, refusing anything but a regular file of at most `max_bytes`.
///
/// The file is opened non-blocking (opening a FIFO with no writer would otherwise wait for
/// ever), its type is checked on the opened descriptor, and the read stops at `max_bytes + 1`
/// whatever the metadata says.
pub fn read_regular(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo_like() {
            "a FIFO or socket"
        } else {
            "a device or special file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("is {what}, not a regular file"),
        ));
    }
    let mut buf = Vec::new();
    (&mut f)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max_bytes {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("is larger than the {max_bytes}-byte limit"),
        ));
    }
    String::from_utf8(buf).map_err(|_| Error::new(ErrorKind::InvalidData, "is not UTF-8 text"))
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo() || self.is_socket()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "x = 1\n").unwrap();
        assert_eq!(read_regular(&p, 100).unwrap(), "x = 1\n");
        let e = read_regular(&p, 3).unwrap_err().to_string();
        assert!(e.contains("3-byte limit"), "{e}");
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_at_once() {
        let e = read_regular(Path::new("/dev/zero"), 1 << 30).unwrap_err();
        assert!(e.to_string().contains("device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_regular(dir.path(), 100).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let t = std::time::Instant::now();
        let e = read_regular(&fifo, 100).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }
}
