//! The otpauth URI as a QR code in SVG: one path of unit squares, no raster image crates.

use std::fmt::Write;

use qrcodegen::{QrCode, QrCodeEcc};

/// Quiet zone around the symbol, in modules (ISO/IEC 18004 asks for four).
const BORDER: i32 = 4;

/// `None` only when the text is too long for any QR version (never for an otpauth URI
/// built from a bounded username and issuer).
pub fn svg(text: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = qr.size();
    let dim = size + 2 * BORDER;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + BORDER, y + BORDER);
            }
        }
    }
    Some(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 {dim} {dim}" "#,
            r#"shape-rendering="crispEdges" stroke="none">"#,
            r##"<rect width="100%" height="100%" fill="#FFFFFF"/>"##,
            r##"<path d="{path}" fill="#000000"/></svg>"##
        ),
        dim = dim,
        path = path
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_an_svg() {
        let svg = super::svg("otpauth://totp/example:alice?secret=JBSWY3DPEHPK3PXP&issuer=example").unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("M4,4h1v1h-1z"), "the top-left finder pattern starts at the border");
    }
}
