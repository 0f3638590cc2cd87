//! A file's fingerprint (sha256 of its bytes) and the name it is listed
//! under in `rejects.csv` and the run's inputs.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IcpError, Result};

/// sha256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| IcpError::read(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| IcpError::read(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::util::ids::hex(&h.finalize()))
}

pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
