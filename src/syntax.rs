//! Stage 1: protobuf text format → [`Message`] tree with byte spans.
//!
//! The grammar (`grammar/prototxt.pest`) follows protobuf's C++ `TextFormat` parser, which
//! is what Caffe reads `.prototxt` files with. This module turns its parse tree into
//! [`Message`]s, decodes literals (escapes, hex/octal integers, floats with an `f` suffix)
//! and turns syntax errors into [`Diagnostic`]s that say what was expected and where.

use pest::iterators::Pair;
use pest::Parser as _;

use crate::diag::{Diagnostic, Severity};
use crate::spec::{Field, Message, Source, Span, Value};

#[derive(pest_derive::Parser)]
#[grammar = "grammar/prototxt.pest"]
struct TextFormat;

/// protobuf's default recursion limit for nested messages.
pub const MAX_DEPTH: usize = 100;

/// Parses `src` as one protobuf text-format message. Returns the root message when the
/// text is well formed (warnings, such as for a byte order mark, may be present), or `None`
/// and the syntax errors.
pub fn parse(src: &Source) -> (Option<Message>, Vec<Diagnostic>) {
    let text: &str = &src.text;
    let mut diags = Vec::new();
    if let Some(d) = too_deep(src) {
        return (None, vec![d]);
    }
    let pairs = match TextFormat::parse(Rule::file, text) {
        Ok(p) => p,
        Err(e) => return (None, vec![syntax_error(src, &e)]),
    };
    let mut root = Message {
        fields: Vec::new(),
        span: 0..text.len(),
    };
    for pair in pairs.flat_map(|p| p.into_inner()) {
        match pair.as_rule() {
            Rule::bom => diags.push(Diagnostic {
                severity: Severity::Warning,
                code: "netc::byte_order_mark",
                message: "the file starts with a UTF-8 byte order mark, which Caffe rejects".into(),
                labels: vec![(span_of(&pair), "byte order mark".into())],
                help: Some(
                    "save the file as UTF-8 without a BOM so that Caffe can read it too".into(),
                ),
                source: Some(src.clone()),
            }),
            Rule::field => convert_field(src, pair, &mut root.fields, &mut diags),
            _ => {}
        }
    }
    let failed = diags.iter().any(|d| d.severity == Severity::Error);
    (if failed { None } else { Some(root) }, diags)
}

/// The span from the first token of `pair` to its last, without trailing whitespace.
fn token_span(pair: &Pair<Rule>) -> Span {
    let mut span: Option<Span> = None;
    for p in pair.clone().into_inner().flatten() {
        if matches!(
            p.as_rule(),
            Rule::string | Rule::number | Rule::ident | Rule::neg | Rule::message
        ) {
            let s = span_of(&p);
            span = Some(match span {
                None => s,
                Some(o) => o.start.min(s.start)..o.end.max(s.end),
            });
        }
    }
    span.unwrap_or_else(|| span_of(pair))
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    s.start()..s.end()
}

fn error(
    src: &Source,
    code: &'static str,
    message: String,
    span: Span,
    label: &str,
    help: Option<String>,
) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code,
        message,
        labels: vec![(span, label.to_string())],
        help,
        source: Some(src.clone()),
    }
}

/// Appends the field(s) `pair` holds to `out` (a `[a, b]` list gives one field per item).
fn convert_field(
    src: &Source,
    pair: Pair<Rule>,
    out: &mut Vec<Field>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut inner = pair.into_inner();
    let Some(name) = inner.next() else { return };
    let name_span = span_of(&name);
    let name = name.as_str().to_string();
    for value in inner {
        match value.as_rule() {
            Rule::message => {
                let value_span = span_of(&value);
                let msg = convert_message(src, value, diags);
                out.push(Field {
                    name: name.clone(),
                    name_span: name_span.clone(),
                    value: Value::Message(msg),
                    value_span,
                });
            }
            Rule::msg_list | Rule::scalar_list => {
                for item in value.into_inner() {
                    let value_span = token_span(&item);
                    let v = match item.as_rule() {
                        Rule::message => Value::Message(convert_message(src, item, diags)),
                        _ => convert_scalar(src, item, diags),
                    };
                    out.push(Field {
                        name: name.clone(),
                        name_span: name_span.clone(),
                        value: v,
                        value_span,
                    });
                }
            }
            Rule::scalar => {
                let value_span = token_span(&value);
                let v = convert_scalar(src, value, diags);
                out.push(Field {
                    name: name.clone(),
                    name_span: name_span.clone(),
                    value: v,
                    value_span,
                });
            }
            _ => {}
        }
    }
}

fn convert_message(src: &Source, pair: Pair<Rule>, diags: &mut Vec<Diagnostic>) -> Message {
    let span = span_of(&pair);
    let mut fields = Vec::new();
    for inner in pair.into_inner() {
        if inner.as_rule() == Rule::field {
            convert_field(src, inner, &mut fields, diags);
        }
    }
    Message { fields, span }
}

fn convert_scalar(src: &Source, pair: Pair<Rule>, diags: &mut Vec<Diagnostic>) -> Value {
    let mut negative = false;
    for inner in pair.into_inner() {
        match inner.as_rule() {
            Rule::neg => negative = true,
            Rule::strings => {
                let mut bytes = Vec::new();
                for s in inner.into_inner() {
                    bytes.extend(unescape(s.as_str()));
                }
                return Value::Str(String::from_utf8_lossy(&bytes).into_owned());
            }
            Rule::ident => {
                let s = inner.as_str();
                return Value::Ident(if negative {
                    format!("-{s}")
                } else {
                    s.to_string()
                });
            }
            Rule::number => match parse_number(inner.as_str()) {
                Ok(Value::Int(i)) => return Value::Int(if negative { -i } else { i }),
                Ok(Value::Float(f)) => return Value::Float(if negative { -f } else { f }),
                Ok(v) => return v,
                Err((msg, help)) => {
                    diags.push(error(
                        src,
                        "netc::bad_number",
                        msg,
                        span_of(&inner),
                        "this number",
                        help,
                    ));
                    return Value::Int(0);
                }
            },
            _ => {}
        }
    }
    Value::Int(0)
}

/// Reads a number token the way protobuf's tokenizer does: `0x1F` hex, `017` octal,
/// decimal, and floats (`1.`, `.5`, `1e-3`, `2f`).
pub fn parse_number(tok: &str) -> Result<Value, (String, Option<String>)> {
    let out_of_range = || {
        (
            format!("integer `{tok}` is out of range"),
            Some("integers in protobuf text format fit in 64 bits".to_string()),
        )
    };
    if let Some(hex) = tok.strip_prefix("0x").or_else(|| tok.strip_prefix("0X")) {
        let v = i128::from_str_radix(hex, 16).map_err(|_| out_of_range())?;
        return if v > u64::MAX as i128 {
            Err(out_of_range())
        } else {
            Ok(Value::Int(v))
        };
    }
    let is_float = tok.contains(['.', 'e', 'E', 'f', 'F']);
    let leading_zero = tok.len() > 1 && tok.starts_with('0') && tok.as_bytes()[1].is_ascii_digit();
    if is_float && leading_zero {
        // protobuf's tokenizer reads `01.5` as octal `01` and then fails at the dot.
        return Err((
            format!("`{tok}` starts with a leading zero but is not an octal integer"),
            Some(format!("write `{}`", tok.trim_start_matches('0'))),
        ));
    }
    if is_float {
        let t = tok.trim_end_matches(['f', 'F']);
        return t
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| (format!("`{tok}` is not a valid number"), None));
    }
    let v = if tok.len() > 1 && tok.starts_with('0') {
        i128::from_str_radix(&tok[1..], 8).map_err(|_| {
            (
                format!("`{tok}` starts with a leading zero but is not octal"),
                Some(format!(
                    "numbers starting with 0 are read as octal; write `{}` for decimal",
                    tok.trim_start_matches('0')
                )),
            )
        })?
    } else {
        tok.parse::<i128>().map_err(|_| out_of_range())?
    };
    if v > u64::MAX as i128 {
        return Err(out_of_range());
    }
    Ok(Value::Int(v))
}

/// Decodes one quoted string literal (quotes included) with C escapes into bytes.
pub fn unescape(lit: &str) -> Vec<u8> {
    let body = if lit.len() >= 2 {
        &lit[1..lit.len() - 1]
    } else {
        lit
    };
    let b = body.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        let simple = match c {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' | b'?' | b'\'' | b'"' => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        match c {
            b'0'..=b'7' => {
                let mut v: u32 = (c - b'0') as u32;
                let mut n = 1;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + (b[i] - b'0') as u32;
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'x' | b'X' => {
                let mut v: u32 = 0;
                let mut n = 0;
                while n < 2 && i < b.len() && b[i].is_ascii_hexdigit() {
                    v = v * 16 + (b[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'u' | b'U' => {
                let n = if c == b'u' { 4 } else { 8 };
                let end = (i + n).min(b.len());
                let code = std::str::from_utf8(&b[i..end])
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok());
                i = end;
                let ch = code
                    .and_then(char::from_u32)
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            other => out.push(other),
        }
    }
    out
}

/// Opening brackets not yet closed at the end of the text, outermost first, skipping
/// strings and comments; also the greatest nesting depth reached.
fn scan_brackets(text: &str) -> (Vec<(usize, u8)>, usize) {
    let b = text.as_bytes();
    let mut stack: Vec<(usize, u8)> = Vec::new();
    let mut max_depth = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q && b[i] != b'\n' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            c @ (b'{' | b'<') => {
                stack.push((i, c));
                max_depth = max_depth.max(stack.len());
            }
            b'}' | b'>' => {
                stack.pop();
            }
            _ => {}
        }
        i += 1;
    }
    (stack, max_depth)
}

fn too_deep(src: &Source) -> Option<Diagnostic> {
    let text: &str = &src.text;
    if text.len() < 2 * MAX_DEPTH {
        return None;
    }
    // Find the first bracket past the limit.
    let b = text.as_bytes();
    let (_, depth) = scan_brackets(text);
    if depth <= MAX_DEPTH {
        return None;
    }
    let mut d = 0;
    let mut at = 0;
    for (i, c) in b.iter().enumerate() {
        match c {
            b'{' | b'<' => {
                d += 1;
                if d > MAX_DEPTH {
                    at = i;
                    break;
                }
            }
            b'}' | b'>' => d -= 1,
            _ => {}
        }
    }
    Some(error(
        src,
        "netc::too_deep",
        format!("messages are nested more than {MAX_DEPTH} levels deep"),
        at..at + 1,
        "too deep",
        Some("protobuf refuses text nested this deeply; check for unbalanced braces".into()),
    ))
}

fn describe(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::field | Rule::ident => "a field name",
        Rule::message => "`{`",
        Rule::msg_list | Rule::scalar_list => "`[`",
        Rule::close_brace => "`}`",
        Rule::close_angle => "`>`",
        Rule::scalar | Rule::strings | Rule::string | Rule::number | Rule::neg => "a value",
        Rule::hex | Rule::int | Rule::float | Rule::exp => "a number",
        Rule::escape => "an escape sequence",
        _ => "something else",
    }
}

/// The token at byte `pos`, for "found ..." in messages.
fn token_at(text: &str, pos: usize) -> (String, Span) {
    let rest = &text[pos..];
    let Some(c) = rest.chars().next() else {
        return ("end of file".into(), pos..pos);
    };
    let len = if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
        rest.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '.'))
            .unwrap_or(rest.len())
    } else if c == '"' || c == '\'' {
        rest[1..]
            .find([c, '\n'])
            .map(|i| i + 2)
            .unwrap_or(rest.len())
            .min(rest.find('\n').unwrap_or(rest.len()).max(1))
    } else {
        c.len_utf8()
    };
    (format!("`{}`", &rest[..len]), pos..pos + len)
}

fn syntax_error(src: &Source, e: &pest::error::Error<Rule>) -> Diagnostic {
    let text: &str = &src.text;
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let pos = pos.min(text.len());
    let (unclosed, _) = scan_brackets(text);
    let rest_is_blank = is_blank(&text[pos..]);
    if rest_is_blank {
        if let Some(&(open, c)) = unclosed.last() {
            let close = if c == b'{' { '}' } else { '>' };
            let mut d = error(
                src,
                "netc::unclosed_brace",
                format!("this `{}` is never closed", c as char),
                open..open + 1,
                "opened here",
                Some(format!("add the missing `{close}`")),
            );
            let end = text.trim_end().len();
            if end > open + 1 {
                d.labels.push((
                    end - 1..end,
                    format!("the file ends here, still inside it; expected `{close}`"),
                ));
            }
            return d;
        }
    }
    let (found, span) = token_at(text, pos);
    let mut expected: Vec<&str> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().map(describe).collect()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    expected.dedup();
    let mut seen = Vec::new();
    expected.retain(|x| {
        if seen.contains(x) {
            false
        } else {
            seen.push(x);
            true
        }
    });
    let found_text = &text[span.clone()];
    let (message, help) = if (found_text == "}" || found_text == ">")
        && scan_brackets(&text[..pos]).0.is_empty()
    {
        (
            format!("unexpected {found}: there is no open bracket to close"),
            Some("remove it, or add the `{` it should close".to_string()),
        )
    } else if found_text.starts_with(['"', '\'']) && !found_text[1..].ends_with(&found_text[..1]) {
        (
            "this string is not closed on its line".to_string(),
            Some("strings cannot span lines; close the quote".to_string()),
        )
    } else {
        let exp = match expected.len() {
            0 => "something else".to_string(),
            1 => expected[0].to_string(),
            _ => {
                let (last, init) = expected
                    .split_last()
                    .map(|(l, i)| (*l, i.join(", ")))
                    .unwrap_or(("", String::new()));
                format!("{init} or {last}")
            }
        };
        let help = if expected.contains(&"`{`") && !expected.contains(&"a value") {
            Some("a field is written `name: value` or `name { ... }`".to_string())
        } else if found_text.starts_with('\\') || expected.contains(&"an escape sequence") {
            Some("valid escapes are \\n \\t \\\\ \\\" \\' \\NNN (octal) and \\xHH".to_string())
        } else {
            None
        };
        (format!("expected {exp}, found {found}"), help)
    };
    let label_span = if span.is_empty() {
        span.start..span.start
    } else {
        span
    };
    error(src, "netc::syntax", message, label_span, "here", help)
}

/// Whether `s` holds only whitespace and comments.
fn is_blank(s: &str) -> bool {
    s.lines().all(|l| {
        let t = l.trim_start_matches([' ', '\t', '\r', '\u{0B}', '\u{0C}']);
        t.is_empty() || t.starts_with('#')
    })
}

/// Writes `msg` in protobuf text format, two spaces per level, the way Caffe's tools print
/// nets; the output parses back to the same tree (spans aside).
pub fn print(msg: &Message) -> String {
    let mut out = String::new();
    print_fields(msg, 0, &mut out);
    out
}

fn print_fields(msg: &Message, depth: usize, out: &mut String) {
    for f in &msg.fields {
        out.push_str(&"  ".repeat(depth));
        out.push_str(&f.name);
        match &f.value {
            Value::Message(m) => {
                out.push_str(" {\n");
                print_fields(m, depth + 1, out);
                out.push_str(&"  ".repeat(depth));
                out.push_str("}\n");
            }
            v => {
                out.push_str(": ");
                out.push_str(&print_scalar(v));
                out.push('\n');
            }
        }
    }
}

/// One scalar value as protobuf text.
pub fn print_scalar(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => "nan".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.into(),
        Value::Float(f) => format!("{f:?}"),
        Value::Ident(s) => s.clone(),
        Value::Str(s) => {
            let mut q = String::with_capacity(s.len() + 2);
            q.push('"');
            for c in s.chars() {
                match c {
                    '"' => q.push_str("\\\""),
                    '\\' => q.push_str("\\\\"),
                    '\n' => q.push_str("\\n"),
                    '\r' => q.push_str("\\r"),
                    '\t' => q.push_str("\\t"),
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        q.push_str(&format!("\\{:03o}", c as u32))
                    }
                    c => q.push(c),
                }
            }
            q.push('"');
            q
        }
        Value::Message(m) => format!("{{\n{}}}", print(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn src(t: &str) -> Source {
        Source {
            path: PathBuf::from("t.prototxt"),
            text: t.into(),
        }
    }
    fn root(t: &str) -> Message {
        let (m, d) = parse(&src(t));
        match m {
            Some(m) => m,
            None => panic!(
                "{t:?} failed: {:?}",
                d.iter().map(|d| &d.message).collect::<Vec<_>>()
            ),
        }
    }
    fn value(t: &str) -> Value {
        root(&format!("x: {t}")).fields[0].value.clone()
    }
    fn fails(t: &str) -> Diagnostic {
        let (m, d) = parse(&src(t));
        assert!(m.is_none(), "{t:?} should fail");
        d.into_iter()
            .next()
            .unwrap_or_else(|| panic!("no diagnostic for {t:?}"))
    }

    #[test]
    fn integers() {
        assert_eq!(value("42"), Value::Int(42));
        assert_eq!(value("-42"), Value::Int(-42));
        assert_eq!(value("- 7"), Value::Int(-7));
        assert_eq!(value("0x1F"), Value::Int(31));
        assert_eq!(value("0X1f"), Value::Int(31));
        assert_eq!(value("017"), Value::Int(15));
        assert_eq!(value("0"), Value::Int(0));
        assert_eq!(value("18446744073709551615"), Value::Int(u64::MAX as i128));
        assert_eq!(fails("x: 019").code, "netc::bad_number");
        assert_eq!(fails("x: 18446744073709551616").code, "netc::bad_number");
        assert_eq!(fails("x: 12abc").code, "netc::syntax");
        assert_eq!(fails("x: 0x").code, "netc::syntax");
    }

    #[test]
    fn floats() {
        assert_eq!(value("1.5"), Value::Float(1.5));
        assert_eq!(value("-1.5"), Value::Float(-1.5));
        assert_eq!(value(".5"), Value::Float(0.5));
        assert_eq!(value("5."), Value::Float(5.0));
        assert_eq!(value("1e-3"), Value::Float(1e-3));
        assert_eq!(value("1E+2"), Value::Float(100.0));
        assert_eq!(value("2.5f"), Value::Float(2.5));
        assert_eq!(value("2F"), Value::Float(2.0));
        assert_eq!(value("0.00390625"), Value::Float(0.00390625));
        assert_eq!(value("inf"), Value::Ident("inf".into()));
        assert_eq!(value("-inf").as_float(), Some(f64::NEG_INFINITY));
        assert!(value("nan").as_float().is_some_and(f64::is_nan));
        assert_eq!(fails("x: 1e").code, "netc::syntax");
        assert_eq!(fails("x: 01.5").code, "netc::bad_number");
        assert_eq!(value("0.5"), Value::Float(0.5));
        assert_eq!(value("0f"), Value::Float(0.0));
        assert_eq!(fails("x: 1.5e").code, "netc::syntax");
        assert_eq!(fails("x: 0x1.5").code, "netc::syntax");
    }

    #[test]
    fn bools_and_idents() {
        for t in ["true", "True", "t", "1"] {
            assert_eq!(value(t).as_bool(), Some(true), "{t}");
        }
        for t in ["false", "False", "f", "0"] {
            assert_eq!(value(t).as_bool(), Some(false), "{t}");
        }
        assert_eq!(value("TRUE").as_bool(), None);
        assert_eq!(value("LMDB"), Value::Ident("LMDB".into()));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(value(r#""a\tb""#), Value::Str("a\tb".into()));
        assert_eq!(value(r"'it\'s'"), Value::Str("it's".into()));
        assert_eq!(value(r#""\101\x42\n\\\"""#), Value::Str("AB\n\\\"".into()));
        assert_eq!(
            value(r#""\a\b\f\v\r\?""#),
            Value::Str("\x07\x08\x0c\x0b\r?".into())
        );
        assert_eq!(value(r#""\0""#), Value::Str("\0".into()));
        assert_eq!(value(r#""\u00e9""#), Value::Str("é".into()));
        assert_eq!(
            value(
                r#""ab" 'cd' # comment
            "ef""#
            ),
            Value::Str("abcdef".into())
        );
        assert_eq!(value("\"h\u{e9}\""), Value::Str("hé".into()));
        assert_eq!(fails(r#"x: "\q""#).code, "netc::syntax");
        assert_eq!(fails("x: \"ab\ncd\"").code, "netc::syntax");
    }

    #[test]
    fn structure() {
        let m = root("a: 1; b: 2, c { d: 3 } e: { f: 4 } g < h: 5 > i: [1, 2, 3] j [{k: 1}, {k: 2}] l: []\r\n# end");
        let names: Vec<&str> = m.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "e", "g", "i", "i", "i", "j", "j"]);
        assert_eq!(m.msg("g").and_then(|g| g.int("h")), Some(5));
        assert_eq!(m.ints("i"), vec![1, 2, 3]);
        assert_eq!(m.msgs("j").len(), 2);
        let c = &m.fields[2];
        assert_eq!(c.name_span, 12..13);
        assert_eq!(c.value_span, 14..22);
    }

    #[test]
    fn spans() {
        let t = "name: \"LeNet\"\nlayer {\n  name: \"conv1\"\n}\n";
        let m = root(t);
        assert_eq!(&t[m.fields[0].value_span.clone()], "\"LeNet\"");
        let layer = &m.fields[1];
        assert_eq!(&t[layer.name_span.clone()], "layer");
        let inner = layer
            .value
            .as_message()
            .map(|l| l.fields[0].value_span.clone());
        assert_eq!(inner.map(|s| &t[s]), Some("\"conv1\""));
    }

    #[test]
    fn errors() {
        let d = fails("layer {\n  name: \"x\"\n");
        assert_eq!(d.code, "netc::unclosed_brace");
        assert_eq!(d.labels[0].0, 6..7);
        assert_eq!(fails("a: 1 }").code, "netc::syntax");
        assert!(fails("a 1").message.contains("expected"));
        assert_eq!(fails("a: {").code, "netc::unclosed_brace");
        assert_eq!(fails("a { b: 1 >").code, "netc::syntax");
        assert_eq!(fails("a: 1;; b: 2").code, "netc::syntax");
        assert_eq!(fails("a: 1 2").code, "netc::syntax");
        assert_eq!(fails("a: -\"s\"").code, "netc::syntax");
        assert_eq!(fails("a: - - 1").code, "netc::syntax");
        assert_eq!(fails("a: +1").code, "netc::syntax");
        assert_eq!(fails("1a: 1").code, "netc::syntax");
        assert_eq!(fails("a: \"\\x\"").code, "netc::syntax");
        assert_eq!(fails("a: 1\0").code, "netc::syntax");
        assert_eq!(fails(&"a {".repeat(200)).code, "netc::too_deep");
    }

    #[test]
    fn print_round_trips() {
        let t = "a: 1 b: -2.5 c: 1e-8 d: \"q\\\"\\\\\\n\\001\" e: MAX f { g: inf h: 'x' } f { }";
        let m = root(t);
        let printed = print(&m);
        assert_eq!(printed, "a: 1\nb: -2.5\nc: 1e-8\nd: \"q\\\"\\\\\\n\\001\"\ne: MAX\nf {\n  g: inf\n  h: \"x\"\n}\nf {\n}\n");
        let again = root(&printed);
        let strip = |m: &Message| print(m);
        assert_eq!(strip(&again), printed);
    }

    #[test]
    fn bom_is_a_warning() {
        let (m, d) = parse(&src("\u{FEFF}name: \"x\""));
        assert_eq!(m.map(|m| m.fields.len()), Some(1));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].severity, Severity::Warning);
    }
}
