//! Reading the real process environment (its own test binary: it sets variables, which other tests must not
//! see).

#[cfg(unix)]
#[test]
fn a_variable_that_is_not_utf8_is_an_error_naming_it_not_a_default() {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: this test binary runs this one test, on one thread; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("NONUTF8_URL", std::ffi::OsStr::from_bytes(b"secret\xff"));
    }
    let err = aquifer_mysql::MySqlConfig::from_env("NONUTF8").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("NONUTF8_URL") && msg.contains("not valid UTF-8"), "{msg}");
    // Another prefix is not affected: its only complaint is its own missing URL.
    let other = aquifer_mysql::MySqlConfig::from_env("OTHERPREFIX").unwrap_err().to_string();
    assert!(other.contains("OTHERPREFIX_URL") && !other.contains("UTF-8"), "{other}");
}
