//! Compile-time checks of `#[receiver]` and `signal!`: every file under `tests/ui/fail` is a
//! mistake that must not compile, with the expected message in its `.stderr`; every file
//! under `tests/ui/pass` must compile. The `.stderr` files are rustc 1.95's output, the
//! toolchain of this project's machines; regenerate them with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
