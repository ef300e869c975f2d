//! Build script of the `sluice` binary: links it with packed relative relocations on Linux.
//!
//! sluice is a position-independent executable (so it loads at a random address), which needs
//! about 134,000 relative relocations, one per pointer in its read-only data (vtables, string
//! tables). In the classic RELA form they are 24 bytes each, 3.2 MB that the loader reads at
//! every start and that then stay resident for the life of the process. Packed (RELR, `-z
//! pack-relative-relocs`: GNU ld 2.38 or lld, loaded by glibc 2.36 or later, which refuses such
//! a binary with a clear error rather than misloading it) they take 40 KB. A lander's peak
//! memory falls by about as much (docs/BENCHMARKS.md, "Delta tables (issue 23)"); nothing else
//! changes. Only the binaries are linked so: libraries and tests are not affected.

fn main() {
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
