//! Everything a client or user types that reaches the token and account endpoints:
//! the `Authorization: Basic` header as the server decodes it, then scope, client id,
//! username, email and password parsing. Besides "never panics", each parser must accept
//! its own output (what is stored parses again to the same value).
#![no_main]

use latchkey::model::{Email, Password, Username};
use latchkey::oauth::client::PresentedClient;
use latchkey::model::{ClientId, Scope};
use libfuzzer_sys::fuzz_target;
use poem_openapi::auth::{Basic, BasicAuthorization};

fuzz_target!(|data: &[u8]| {
    basic_header(data);
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Some(scope) = Scope::parse(text) {
        assert_eq!(Scope::parse(&scope.to_string()), Some(scope));
    }
    if let Some(id) = ClientId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Ok(name) = Username::parse(text) {
        assert_eq!(Username::parse(name.as_str()), Ok(name));
    }
    if let Ok(email) = Email::parse(text) {
        assert_eq!(Email::parse(email.as_str()), Ok(email));
    }
    if let Ok(password) = Password::candidate(text.to_owned()) {
        assert!(password.expose().len() <= Password::MAX_BYTES);
    }
    let context: Vec<&str> = text.split('@').collect();
    if let Ok(password) = Password::new_checked(text.to_owned(), &context) {
        assert!(password.expose().len() <= Password::MAX_BYTES);
    }
});

/// The header as poem-openapi's Basic scheme reads it, then `client_secret_basic` decoding.
fn basic_header(data: &[u8]) {
    let mut value = b"Basic ".to_vec();
    value.extend_from_slice(data);
    let Ok(value) = poem::http::HeaderValue::from_bytes(&value) else { return };
    let req = poem::Request::builder().header(poem::http::header::AUTHORIZATION, value).finish();
    if let Ok(basic) = Basic::from_request(&req) {
        let presented = PresentedClient::from_basic(&basic.username, &basic.password);
        if let Some(id) = presented.id.as_deref() {
            let _ = ClientId::parse(id);
        }
    }
}
