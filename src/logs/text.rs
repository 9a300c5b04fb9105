//! What a log line may contain: client text escaped so that one event stays
//! one line and no terminal control sequence reaches an operator's screen.
//!
//! [`EscapedFields`] writes the fields of the human format (it replaces
//! tracing-subscriber's default visitor, which writes `%` values and error
//! messages raw, newlines included). [`JsonEscaping`] wraps the JSON
//! format's writer: serde_json escapes C0 controls already, and the writer
//! adds `\uXXXX` for DEL, C1 and the invisible Unicode marks, which serde
//! leaves raw and which can only occur inside JSON strings, so the value of
//! each line is unchanged.

use std::fmt::{self, Write as _};
use std::io;

use tracing::field::{Field, Visit};
use tracing::Metadata;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

/// Whether `c` is written as an escape rather than as itself: control
/// characters (C0, DEL, C1), the line and paragraph separators, and the
/// invisible marks that reorder or hide text (bidi controls, zero widths,
/// the byte order mark).
pub(super) fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// Writes `s` with each [`must_escape`] character as `\n`, `\r`, `\t` or
/// `\u{hex}`.
pub(super) fn write_escaped(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let mut rest = s;
    while let Some(at) = rest.find(must_escape) {
        out.write_str(&rest[..at])?;
        let Some(c) = rest[at..].chars().next() else {
            break;
        };
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => write!(out, "\\u{{{:x}}}", u32::from(c))?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// A `fmt::Write` that escapes what goes through it.
struct Escaping<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

/// The human format's fields: `message` first as text, then `name=value`,
/// strings quoted (Rust's `Debug`), every value escaped.
pub(super) struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Fields {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Fields<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_> {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // tracing-log's metadata, already in the line's prefix.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = self.write(name, value);
    }

    fn write(&mut self, name: &str, value: fmt::Arguments<'_>) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            self.writer
                .write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char('=')?;
        }
        Escaping(&mut self.writer).write_fmt(value)
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, format_args!("{}", Chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// An error and its sources, on one line.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// The JSON format's writer, adding `\uXXXX` escapes (see the module docs).
pub(super) struct JsonEscaping<M>(pub(super) M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for JsonEscaping<M> {
    type Writer = JsonLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        JsonLine(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        JsonLine(self.0.make_writer_for(meta))
    }
}

/// One event's JSON (the fmt layer writes each event whole, in one call).
pub(super) struct JsonLine<W>(W);

/// Characters serde_json leaves raw that [`must_escape`] covers: all but C0,
/// which serde escapes (the line's own final newline is one).
fn json_must_escape(c: char) -> bool {
    u32::from(c) >= 0x20 && must_escape(c)
}

/// `s` with [`json_must_escape`] characters as JSON `\uXXXX` escapes (all
/// of them are in the Basic Multilingual Plane).
pub(super) fn json_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if json_must_escape(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

impl<W: io::Write> io::Write for JsonLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(s) if s.contains(json_must_escape) => {
                self.0.write_all(json_escaped(s).as_bytes())?;
            }
            _ => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s).unwrap();
        out
    }

    #[test]
    fn control_characters_and_invisible_marks_are_escaped() {
        assert_eq!(escaped("eth_call"), "eth_call");
        assert_eq!(escaped("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escaped("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escaped("\u{7f}\u{85}\u{9b}"), "\\u{7f}\\u{85}\\u{9b}");
        assert_eq!(escaped("x\u{2028}y\u{2029}"), "x\\u{2028}y\\u{2029}");
        assert_eq!(escaped("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
        assert_eq!(escaped("\u{feff}\u{200b}"), "\\u{feff}\\u{200b}");
        // Printable text, accents and emoji included, is left alone.
        assert_eq!(escaped("héllo wörld ✓ 🦀"), "héllo wörld ✓ 🦀");
    }

    #[test]
    fn json_lines_keep_their_value_and_their_final_newline() {
        let line = "{\"m\":\"a\u{2028}b\u{7f}\u{9b}\"}\n";
        let out = json_escaped(line);
        assert_eq!(out, "{\"m\":\"a\\u2028b\\u007f\\u009b\"}\n");
        let before: serde_json::Value = serde_json::from_str(line).unwrap();
        let after: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(before, after);
    }
}
