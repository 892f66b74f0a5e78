//! How a workspace file is served. The agent writes these files, and the agent runs code the
//! user did not review: nothing it writes may run script on Roost's origin. So only raster
//! images keep their own type; every text (HTML, SVG and XML included) is `text/plain`; the rest
//! is an `application/octet-stream` attachment; and every answer carries `nosniff` and a
//! `sandbox` CSP, so even a browser that rendered one would give it no origin.

/// Raster image types browsers cannot run script from.
const IMAGES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("ico", "image/x-icon"),
];

/// Shown as text in the browser (the file page's viewer reads them); HTML and SVG are among
/// them on purpose, as source.
const TEXTS: &[&str] = &[
    "md", "markdown", "txt", "text", "log", "csv", "tsv", "json", "jsonl", "yaml", "yml", "toml", "ini", "cfg", "conf",
    "env", "xml", "html", "htm", "svg", "css", "js", "mjs", "ts", "tsx", "jsx", "py", "rs", "go", "rb", "java", "c",
    "h", "cpp", "hpp", "sh", "bash", "zsh", "sql", "diff", "patch",
];

#[derive(Debug, PartialEq, Eq)]
pub struct Served {
    pub content_type: &'static str,
    /// `inline` or `attachment`.
    pub disposition: &'static str,
}

/// The type and disposition for a file named `name`; `download` forces an attachment.
pub fn for_name(name: &str, download: bool) -> Served {
    let ext = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    let (content_type, inline) = if let Some((_, image)) = IMAGES.iter().find(|(e, _)| *e == ext) {
        (*image, true)
    } else if TEXTS.contains(&ext.as_str()) || !name.contains('.') {
        ("text/plain; charset=utf-8", true)
    } else {
        ("application/octet-stream", false)
    };
    Served { content_type, disposition: if inline && !download { "inline" } else { "attachment" } }
}

/// `inline; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII fallback without quotes or
/// control characters, and the exact name percent-encoded.
pub fn disposition_header(disposition: &str, name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_written_pages_are_never_served_as_pages() {
        for name in ["index.html", "x.HTM", "logo.svg", "feed.xml", "notes.md", "README"] {
            assert_eq!(for_name(name, false).content_type, "text/plain; charset=utf-8", "{name}");
        }
        assert_eq!(for_name("a.png", false), Served { content_type: "image/png", disposition: "inline" });
        assert_eq!(for_name("a.PNG", true).disposition, "attachment");
        assert_eq!(
            for_name("report.pdf", false),
            Served { content_type: "application/octet-stream", disposition: "attachment" }
        );
        assert_eq!(for_name("x.xhtml", false).disposition, "attachment");
    }

    #[test]
    fn file_names_cannot_break_the_header() {
        assert_eq!(
            disposition_header("attachment", "a \"b\".txt"),
            "attachment; filename=\"a _b_.txt\"; filename*=UTF-8''a%20%22b%22.txt"
        );
        assert_eq!(disposition_header("inline", "é.md"), "inline; filename=\"_.md\"; filename*=UTF-8''%C3%A9.md");
    }
}
