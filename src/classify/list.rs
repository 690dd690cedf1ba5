//! DIGITS' image list files for "classify many": one path a line, optionally followed by
//! whitespace and an integer ground-truth label (`(.*\S)\s+(\d+)$`, as DIGITS matches it),
//! so paths may contain spaces. Blank lines, `#` comment lines, CRLF line ends and a UTF-8
//! byte-order mark are fine. Relative paths join the image folder.

use std::path::{Path, PathBuf};

/// One image to classify.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The line in the list file (1-based), or `None` for a command-line argument.
    pub line: Option<usize>,
    /// The path as written.
    pub text: String,
    /// The path to open.
    pub path: PathBuf,
    pub label: Option<usize>,
}

/// Splits one line into its path and optional label.
pub fn parse_line(line: &str) -> Option<(&str, Option<usize>)> {
    let line = line.trim();
    // Blank lines and `#` comments, as `netc data create` reads list files.
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    if let Some(cut) = line.rfind(char::is_whitespace) {
        let (head, tail) = (line[..cut].trim_end(), line[cut..].trim_start());
        if !head.is_empty() && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(label) = tail.parse() {
                return Some((head, Some(label)));
            }
        }
    }
    Some((line, None))
}

/// The entries of a list file's text; relative paths join `folder`; at most `limit`.
pub fn parse(text: &str, folder: &Path, limit: Option<usize>) -> Vec<Entry> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let (p, label) = parse_line(l)?;
            let path = Path::new(p);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                folder.join(path)
            };
            Some(Entry {
                line: Some(i + 1),
                text: p.to_string(),
                path,
                label,
            })
        })
        .take(limit.unwrap_or(usize::MAX))
        .collect()
}

/// Reads a list file; `folder` defaults to the list's own folder.
pub fn read(
    list: &Path,
    folder: Option<&Path>,
    limit: Option<usize>,
) -> miette::Result<Vec<Entry>> {
    let text = crate::data::read_text(
        list,
        "the image list",
        "a file of image paths, one a line (a label after a path is optional)",
    )?;
    let dir = folder
        .map(Path::to_path_buf)
        .unwrap_or_else(|| list.parent().unwrap_or(Path::new(".")).to_path_buf());
    Ok(parse(&text, &dir, limit))
}

/// Command-line image arguments as entries.
pub fn from_args(paths: &[PathBuf]) -> Vec<Entry> {
    paths
        .iter()
        .map(|p| Entry {
            line: None,
            text: p.display().to_string(),
            path: p.clone(),
            label: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_labels() {
        assert_eq!(parse_line("a.png"), Some(("a.png", None)));
        assert_eq!(parse_line("a.png 3"), Some(("a.png", Some(3))));
        assert_eq!(parse_line("  a.png\t\t12  "), Some(("a.png", Some(12))));
        assert_eq!(
            parse_line("my digits/seven 1.png 7"),
            Some(("my digits/seven 1.png", Some(7)))
        );
        assert_eq!(
            parse_line("my digits/seven 1.png"),
            Some(("my digits/seven 1.png", None))
        );
        // A negative or non-integer "label" is part of the path, as in DIGITS.
        assert_eq!(parse_line("a.png -1"), Some(("a.png -1", None)));
        assert_eq!(parse_line("a.png 1.5"), Some(("a.png 1.5", None)));
        // A bare number is a path.
        assert_eq!(parse_line("42"), Some(("42", None)));
        assert_eq!(parse_line("   "), None);
        assert_eq!(parse_line("  # the sevens"), None);
        assert_eq!(parse_line("a.png 3\r"), Some(("a.png", Some(3))));
    }

    #[test]
    fn files_with_blank_lines_crlf_bom_and_limit() {
        let text = "\u{feff}one.png 1\r\n\r\nsub dir/two.png\r\n/abs/three.png 2\r\n   \n";
        let e = parse(text, Path::new("/imgs"), None);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            Entry {
                line: Some(1),
                text: "one.png".into(),
                path: "/imgs/one.png".into(),
                label: Some(1)
            }
        );
        assert_eq!(e[1].line, Some(3));
        assert_eq!(e[1].path, PathBuf::from("/imgs/sub dir/two.png"));
        assert_eq!(e[1].label, None);
        assert_eq!(e[2].path, PathBuf::from("/abs/three.png"));
        assert_eq!(e[2].line, Some(4));
        assert_eq!(parse(text, Path::new("/imgs"), Some(2)).len(), 2);
    }
}
