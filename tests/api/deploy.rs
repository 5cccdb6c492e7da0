//! The files in `deploy/` an operator installs.

use std::path::Path;

/// The unit passes `systemd-analyze verify` (with the binary's path pointed at
/// one that exists here) and keeps its hardening; skipped where systemd's tools
/// are not installed.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/clientele.service")).unwrap();
    for line in
        ["User=clientele", "NoNewPrivileges=yes", "ProtectSystem=strict", "StateDirectoryMode=0700", "UMask=0077"]
    {
        assert!(unit.lines().any(|l| l == line), "the unit has {line}");
    }
    let Ok(version) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit's verification is skipped");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clientele.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/clientele", env!("CARGO_BIN_EXE_clientele"))).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

/// The container file runs the service as a non-root user on a `/data` volume,
/// with a health check on `/readyz`.
#[test]
fn the_container_file_runs_unprivileged_with_a_health_check() {
    let file = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Containerfile")).unwrap();
    assert!(file.contains("USER clientele") && file.contains("VOLUME /data") && file.contains("/readyz"));
    let compose = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose.yaml")).unwrap();
    assert!(compose.contains("postgres://") && compose.contains("CLIENTELE_MASTER_KEY"));
}
