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
impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        text.parse().map_err(serde::de::Error::custom)
    }
}

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

/// A key file that others than its owner may read is refused: whoever reads it
/// reads every card.
fn refuse_shared_key_file(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "{} can be read by others than its owner (mode {:o}); make it private (chmod 600) before starting",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
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
            refuse_shared_key_file(&path)?;
            return MasterKey::from_base64(&text).with_context(|| format!("reading {}", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    crate::store::backup::private_dir(data_dir)?;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    let text = Zeroizing::new(STANDARD.encode(key.as_ref()));
    let mut file =
        crate::store::backup::open_private(&path, true).with_context(|| format!("creating {}", path.display()))?;
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

    #[cfg(unix)]
    #[test]
    fn the_data_folder_is_private_and_a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let data = parent.path().join("data");
        load_master_key(None, &data).unwrap();
        assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(data.join("master.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = load_master_key(None, &data).unwrap_err().to_string();
        assert!(refused.contains("can be read by others") && refused.contains("644"), "{refused}");
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

// ---- the vault: data keys, encryption at rest, fingerprints ----

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NONCE_LEN: usize = 12;
const VERSION_LEN: usize = 4;

/// A ciphertext that does not open: wrong key, wrong row, or damaged.
#[derive(Debug, thiserror::Error)]
#[error("ciphertext could not be decrypted ({0})")]
pub struct DecryptError(&'static str);

/// Envelope encryption for secrets at rest.
///
/// Each *data key* is 32 random bytes, stored in `encryption_keys` wrapped
/// (AES-256-GCM) by the master key. Secrets are sealed with a data key as
/// `key_version (4 bytes, big-endian) || nonce (12) || ciphertext+tag`, with the
/// row's identity as associated data so a ciphertext cannot be moved to another
/// row or field. Rotation adds a data key version and re-encrypts rows; old
/// versions open until then. Fingerprints use an HMAC key derived from the master
/// key, separate from every encryption key.
pub struct Vault {
    master: MasterKey,
    fingerprint_key: Zeroizing<[u8; 32]>,
    digest_key: Zeroizing<[u8; 32]>,
    pepper: Zeroizing<[u8; 32]>,
    keys: RwLock<HashMap<u32, Arc<Aes256Gcm>>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(***)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(&(p.len() as u32).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn wrap_aad(version: u32) -> Vec<u8> {
    format!("clientele/data-key/v{version}").into_bytes()
}

impl Vault {
    pub fn new(master: MasterKey) -> Vault {
        let fingerprint_key = Zeroizing::new(hmac(master.expose(), &[b"clientele/fingerprint/v1"]));
        let digest_key = Zeroizing::new(hmac(master.expose(), &[b"clientele/digest/v1"]));
        let pepper = Zeroizing::new(hmac(master.expose(), &[b"clientele/answer-pepper/v1"]));
        Vault { master, fingerprint_key, digest_key, pepper, keys: RwLock::new(HashMap::new()) }
    }

    fn master_cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.master.expose()).expect("32-byte key")
    }

    /// A new random data key for `version`, wrapped by the master key.
    pub fn new_wrapped_key(&self, version: u32) -> Vec<u8> {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .master_cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: dek.as_ref(), aad: &wrap_aad(version) })
            .expect("AES-GCM encryption does not fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Loads wrapped data keys; fails when the master key is not the one they were wrapped with.
    pub fn install(&self, wrapped: &[(u32, Vec<u8>)]) -> anyhow::Result<()> {
        let cipher = self.master_cipher();
        let mut keys = self.keys.write().expect("key map lock");
        for (version, blob) in wrapped {
            if keys.contains_key(version) {
                continue;
            }
            anyhow::ensure!(blob.len() > NONCE_LEN, "data key {version} is damaged");
            let (nonce, sealed) = blob.split_at(NONCE_LEN);
            let dek = Zeroizing::new(
                cipher
                    .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &wrap_aad(*version) })
                    .map_err(|_| anyhow::anyhow!("data key {version} does not open with this master key: is CLIENTELE_MASTER_KEY the one this database was created with?"))?,
            );
            keys.insert(
                *version,
                Arc::new(
                    Aes256Gcm::new_from_slice(&dek)
                        .map_err(|_| anyhow::anyhow!("data key {version} has a bad length"))?,
                ),
            );
        }
        Ok(())
    }

    pub fn has_version(&self, version: u32) -> bool {
        self.keys.read().expect("key map lock").contains_key(&version)
    }

    fn key(&self, version: u32) -> Option<Arc<Aes256Gcm>> {
        self.keys.read().expect("key map lock").get(&version).cloned()
    }

    /// Seals `plaintext` under data key `version`, bound to `aad`.
    pub fn seal(&self, version: u32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let key = self.key(version).ok_or(DecryptError("unknown key version"))?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = key
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| DecryptError("encryption failed"))?;
        let mut out = Vec::with_capacity(VERSION_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The key version a sealed blob names.
    pub fn version_of(blob: &[u8]) -> Option<u32> {
        blob.get(..VERSION_LEN).map(|v| u32::from_be_bytes(v.try_into().expect("4 bytes")))
    }

    /// Opens a sealed blob; the key it names must be installed.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        if blob.len() < VERSION_LEN + NONCE_LEN + 16 {
            return Err(DecryptError("too short"));
        }
        let version = Vault::version_of(blob).ok_or(DecryptError("too short"))?;
        let key = self.key(version).ok_or(DecryptError("unknown key version"))?;
        let (nonce, sealed) = blob[VERSION_LEN..].split_at(NONCE_LEN);
        key.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| DecryptError("authentication failed"))
    }

    /// A keyed digest (HMAC-SHA-256) of `parts` for `purpose`, for what is stored to
    /// recognise a value again without keeping it: an `Idempotency-Key` and the
    /// request it came with. Unkeyed, a digest of a request that carries a card
    /// number could be confirmed against guesses by anyone holding a copy of the
    /// database (the BIN, last 4 and expiry stored beside it leave ~10^8 of them);
    /// keyed with a key derived from the master key, which is never in the
    /// database, it cannot.
    pub fn digest(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        all.push(purpose.as_bytes());
        all.extend_from_slice(parts);
        hmac(self.digest_key.as_ref(), &all)
    }

    /// Argon2id (OWASP's parameters, the crate's defaults) keyed with the vault's
    /// pepper: a security answer is a guessable word, so a salted hash alone
    /// would let a copy of the database be tried against a dictionary. Slow on
    /// purpose (tens of milliseconds): run it through [`slow_work`], never on the
    /// database writer or a runtime thread.
    pub fn hash_answer(&self, normalized: &str) -> Result<String, DecryptError> {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let salt = SaltString::generate(&mut OsRng);
        self.peppered()
            .hash_password(normalized.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| DecryptError("the answer could not be hashed"))
    }

    /// Whether `normalized` is the answer `stored` was made from. A hash made
    /// before answers were peppered (no key id) still verifies, and says so, so
    /// that the caller can store a peppered one in its place.
    pub fn check_answer(&self, stored: &str, normalized: &str) -> AnswerCheck {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let Ok(hash) = PasswordHash::new(stored) else { return AnswerCheck::Wrong };
        let peppered = argon2::Params::try_from(&hash).is_ok_and(|p| p.keyid() == PEPPER_KEY_ID);
        let ok = if peppered {
            self.peppered().verify_password(normalized.as_bytes(), &hash).is_ok()
        } else {
            argon2::Argon2::default().verify_password(normalized.as_bytes(), &hash).is_ok()
        };
        match (ok, peppered) {
            (false, _) => AnswerCheck::Wrong,
            (true, true) => AnswerCheck::Right,
            (true, false) => AnswerCheck::RightButUnpeppered,
        }
    }

    /// A portal user's password, hashed as security answers are (peppered Argon2id).
    pub fn hash_password(&self, password: &str) -> Result<String, DecryptError> {
        self.hash_answer(password)
    }

    /// Whether `password` is the one `stored` was made from. Slow, like hashing.
    pub fn password_matches(&self, stored: &str, password: &str) -> bool {
        self.check_answer(stored, password) != AnswerCheck::Wrong
    }

    fn peppered(&self) -> argon2::Argon2<'_> {
        let mut params = argon2::ParamsBuilder::new();
        params.keyid(argon2::KeyId::new(PEPPER_KEY_ID).expect("a short key id"));
        let params = params.build().expect("the default parameters with a key id");
        argon2::Argon2::new_with_secret(
            self.pepper.as_ref(),
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        )
        .expect("a 32-byte secret")
    }

    /// A stable, non-reversible identifier of a secret within one merchant:
    /// the same card gives the same value for a merchant, different merchants differ.
    pub fn fingerprint(&self, merchant: uuid::Uuid, kind: &str, secret: &[u8]) -> String {
        let mac = hmac(self.fingerprint_key.as_ref(), &[merchant.as_bytes(), kind.as_bytes(), secret]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac[..20])
    }
}

/// The key id a peppered answer hash carries in its PHC string (`keyid=cDE`):
/// hashes without it were made before answers were peppered.
const PEPPER_KEY_ID: &[u8] = b"p1";

/// What [`Vault::check_answer`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerCheck {
    Right,
    /// Right, against a hash made without the pepper: replace it.
    RightButUnpeppered,
    Wrong,
}

/// Runs CPU-heavy work (password hashing) on the blocking pool, at most one job
/// per core at a time: it never holds up the async runtime or the database
/// writer, and a burst of it queues here instead of taking every core.
pub async fn slow_work<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, SlowWorkFailed> {
    static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _permit = PERMITS.acquire().await.map_err(|_| SlowWorkFailed)?;
    tokio::task::spawn_blocking(work).await.map_err(|_| SlowWorkFailed)
}

/// Work given to [`slow_work`] panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("a background computation failed")]
pub struct SlowWorkFailed;

#[cfg(test)]
mod vault_tests {
    use super::*;

    fn vault(seed: u8) -> Vault {
        let v = Vault::new(MasterKey(Zeroizing::new([seed; 32])));
        let wrapped = v.new_wrapped_key(1);
        v.install(&[(1, wrapped)]).unwrap();
        v
    }

    #[test]
    fn seal_and_open_bound_to_the_row() {
        let v = vault(7);
        let blob = v.seal(1, b"row-a", b"4111111111111111").unwrap();
        assert_eq!(Vault::version_of(&blob), Some(1));
        assert_eq!(v.open(&blob, b"row-a").unwrap().as_slice(), b"4111111111111111");
        assert!(v.open(&blob, b"row-b").is_err(), "moved to another row, it does not open");
        let mut damaged = blob.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(v.open(&damaged, b"row-a").is_err());
        assert!(!blob.windows(4).any(|w| w == b"4111"), "no clear digits in the blob");
    }

    #[test]
    fn data_keys_need_the_right_master_key() {
        let a = Vault::new(MasterKey(Zeroizing::new([1; 32])));
        let wrapped = a.new_wrapped_key(1);
        let b = Vault::new(MasterKey(Zeroizing::new([2; 32])));
        assert!(b.install(&[(1, wrapped.clone())]).is_err());
        assert!(a.install(&[(2, wrapped)]).is_err(), "a data key is bound to its version");
    }

    #[test]
    fn digests_are_keyed_by_the_master_key_and_separated_by_purpose() {
        use sha2::Digest;
        let v = vault(3);
        let d = v.digest("idempotency/request", &[b"POST", b"/x", b"{}"]);
        assert_eq!(d, v.digest("idempotency/request", &[b"POST", b"/x", b"{}"]));
        assert_ne!(d, vault(4).digest("idempotency/request", &[b"POST", b"/x", b"{}"]), "another master key");
        assert_ne!(d, v.digest("idempotency/key", &[b"POST", b"/x", b"{}"]), "another purpose");
        assert_ne!(d.as_slice(), Sha256::digest(b"POST\0/x\0{}").as_slice());
    }

    #[test]
    fn answers_are_peppered_and_old_hashes_still_verify() {
        use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
        let v = vault(3);
        let stored = v.hash_answer("jimmy page").unwrap();
        assert!(stored.contains("keyid="), "{stored}");
        assert_eq!(v.check_answer(&stored, "jimmy page"), AnswerCheck::Right);
        assert_eq!(v.check_answer(&stored, "jimmy"), AnswerCheck::Wrong);
        assert_eq!(vault(4).check_answer(&stored, "jimmy page"), AnswerCheck::Wrong, "another master key");
        // Without the pepper, the right answer does not verify: a database copy is not enough.
        let parsed = PasswordHash::new(&stored).unwrap();
        assert!(argon2::Argon2::default().verify_password(b"jimmy page", &parsed).is_err());
        // A hash from before the pepper verifies, flagged for replacement.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let old = argon2::Argon2::default().hash_password(b"jimmy page", &salt).unwrap().to_string();
        assert_eq!(v.check_answer(&old, "jimmy page"), AnswerCheck::RightButUnpeppered);
        assert_eq!(v.check_answer(&old, "nope"), AnswerCheck::Wrong);
        assert_eq!(v.check_answer("not a hash", "nope"), AnswerCheck::Wrong);
    }

    #[test]
    fn fingerprints_are_per_merchant() {
        let v = vault(3);
        let (m1, m2) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        assert_eq!(v.fingerprint(m1, "card", b"4111111111111111"), v.fingerprint(m1, "card", b"4111111111111111"));
        assert_ne!(v.fingerprint(m1, "card", b"4111111111111111"), v.fingerprint(m2, "card", b"4111111111111111"));
        assert_ne!(v.fingerprint(m1, "card", b"4111111111111111"), v.fingerprint(m1, "card", b"4012888888881881"));
        assert_ne!(
            vault(4).fingerprint(m1, "card", b"4111111111111111"),
            v.fingerprint(m1, "card", b"4111111111111111")
        );
    }

    mod properties {
        use super::*;
        use crate::domain::card::{Pan, luhn_valid};
        use proptest::prelude::*;

        fn luhn_pan() -> impl Strategy<Value = String> {
            (11usize..=18).prop_flat_map(|n| proptest::collection::vec(0u8..10, n)).prop_map(|digits| {
                let partial: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                (0..10).map(|c| format!("{partial}{c}")).find(|s| luhn_valid(s)).expect("one check digit fits")
            })
        }

        proptest! {
            #[test]
            fn any_luhn_valid_pan_round_trips_and_masks(pan in luhn_pan(), row in any::<[u8; 16]>()) {
                let v = vault(9);
                let parsed = Pan::parse(&pan).unwrap();
                let blob = v.seal(1, &row, parsed.expose().as_bytes()).unwrap();
                let opened = v.open(&blob, &row).unwrap();
                prop_assert_eq!(opened.as_slice(), pan.as_bytes());
                let masked = parsed.masked();
                prop_assert_eq!(masked.len(), pan.len());
                let shown: Vec<(usize, char)> = masked.char_indices().filter(|(_, c)| *c != '*').collect();
                prop_assert!(shown.len() <= 10);
                for (i, c) in shown {
                    prop_assert!(i < 6 || i >= pan.len() - 4, "digit {} shown", i);
                    prop_assert_eq!(c, pan.as_bytes()[i] as char);
                }
                prop_assert_eq!(format!("{parsed:?}"), format!("Pan({masked})"));
            }
        }
    }
}
