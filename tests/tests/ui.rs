//! Compile tests of `#[emit_event]`: what must build, and the errors a mistake gets.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
