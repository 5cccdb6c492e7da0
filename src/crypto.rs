//! Key material. Secrets live in types whose `Debug` is masked and which have
//! no `Serialize`/`Display` of their clear value; the value is reached only
//! through an explicit `expose()`.

use std::fmt;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use zeroize::Zeroizing;

/// A secret string from configuration (the master key as given).
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for SecretString {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretString(Zeroizing::new(s.to_owned())))
    }
}

/// Configuration shows that a secret is set, never what it is.
impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// The 256-bit master key everything at rest is protected with.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    pub fn from_base64(text: &str) -> anyhow::Result<MasterKey> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).context("the master key is not valid base64")?);
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("the master key must be 32 bytes (base64 of 32 random bytes)"))?;
        Ok(MasterKey(Zeroizing::new(key)))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// `CLIENTELE_MASTER_KEY` when given; else `DATA_DIR/master.key`, generated
/// (mode 0600, with a warning) on first start.
pub fn load_master_key(configured: Option<&SecretString>, data_dir: &Path) -> anyhow::Result<MasterKey> {
    if let Some(s) = configured {
        return MasterKey::from_base64(s.expose()).context("CLIENTELE_MASTER_KEY");
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return MasterKey::from_base64(&text).with_context(|| format!("reading {}", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    let text = Zeroizing::new(STANDARD.encode(key.as_ref()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(&path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    tracing::warn!(
        path = %path.display(),
        "CLIENTELE_MASTER_KEY is not set: generated a master key into this file. Back it up and keep it apart from the \
         database; payment data cannot be read without it. In production, set CLIENTELE_MASTER_KEY instead."
    );
    Ok(MasterKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_master_key(None, dir.path()).unwrap();
        let b = load_master_key(None, dir.path()).unwrap();
        assert_eq!(a.expose(), b.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(format!("{a:?}"), "MasterKey(***)");
    }

    #[test]
    fn configured_key_must_be_32_bytes() {
        let short: SecretString = STANDARD.encode([1u8; 16]).parse().unwrap();
        assert!(load_master_key(Some(&short), Path::new("/nonexistent")).is_err());
        let ok: SecretString = STANDARD.encode([1u8; 32]).parse().unwrap();
        assert_eq!(load_master_key(Some(&ok), Path::new("/nonexistent")).unwrap().expose(), &[1u8; 32]);
        assert_eq!(format!("{ok:?}"), "***");
    }
}
