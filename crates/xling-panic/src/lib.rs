//! The text of a caught panic, for the places where xling catches panics and carries on: the
//! batcher (a panicking encoder fails its batch only), the index (hnsw_rs panics on some
//! malformed graph files) and the fuzz runner (a panic is a finding). Those crates share no
//! other dependency, hence a crate of its own.
//!
//! # Layout
//! - [`message`]: a `catch_unwind` payload as text.

use std::any::Any;

/// The message a panic was raised with: `panic!("...")` gives a `&str` payload, a formatted
/// `panic!("{x}")` a `String`; anything else (`panic_any`) has no text to show.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::message;
    use std::panic::{catch_unwind, panic_any};

    fn caught(f: fn()) -> String {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {})); // keep the expected panics out of the output
        let payload = catch_unwind(f).unwrap_err();
        std::panic::set_hook(hook);
        message(&*payload)
    }

    #[test]
    fn literal_formatted_and_other_payloads() {
        assert_eq!(caught(|| panic!("plain")), "plain");
        assert_eq!(caught(|| panic!("{} of {}", 3, 4)), "3 of 4");
        assert_eq!(caught(|| panic_any(7u8)), "panic with a non-text payload");
    }
}
