//! Records the commit the binary is built from, for `clientele_build_info`, and
//! lists the migrations the binary embeds (`store::migrations`).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CLIENTELE_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");

    let mut out = String::new();
    for (name, dir) in [("SQLITE", "migrations/sqlite"), ("POSTGRES", "migrations/postgres")] {
        println!("cargo:rerun-if-changed={dir}");
        writeln!(out, "/// `{dir}`: version, description, SQL.").unwrap();
        writeln!(out, "const {name}: &[(i64, &str, &str)] = &[").unwrap();
        for (version, description, path) in migrations(Path::new(dir)) {
            writeln!(out, "    ({version}, {description:?}, include_str!({path:?})),").unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let file = Path::new(&std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(file, out).unwrap();
}

/// The `<version>_<description>.sql` files of `dir` by version, named as sqlx
/// names them (the description is the rest of the name, `_` read as a space).
fn migrations(dir: &Path) -> Vec<(i64, String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().expect("migration file names are UTF-8").to_owned();
        let Some((version, rest)) = name.split_once('_') else { continue };
        let Some(description) = rest.strip_suffix(".sql") else { continue };
        assert!(!description.ends_with(".up") && !description.ends_with(".down"), "{name}: migrations are one-way");
        let version: i64 = version.parse().unwrap_or_else(|_| panic!("{name}: no version number"));
        let absolute = std::fs::canonicalize(&path).unwrap();
        found.push((version, description.replace('_', " "), absolute.to_str().unwrap().to_owned()));
    }
    found.sort();
    found
}
