//! Gzip-compressed CSV tables written row by row. MIMIC-III v1.4 quotes its header and every text
//! field (`"EMERGENCY"`); MIMIC-IV quotes only where needed. Empty fields are never quoted (they
//! mean NULL in both). Hand-written, not the `csv` crate: no `QuoteStyle` of it quotes text but leaves
//! dates and NULLs bare (`NonNumeric` writes an empty field as `""`, an empty string, not NULL).

use super::dates::{write_date, write_datetime};
use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct Table {
    path: PathBuf,
    out: GzEncoder<BufWriter<File>>,
    line: Vec<u8>,
    /// Fields already in `line` (an empty first field leaves `line` empty).
    fields: usize,
    quote_text: bool,
    rows: u64,
}

impl Table {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path, columns: &[&str], quote_text: bool, level: u32) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let out = GzEncoder::new(BufWriter::with_capacity(1 << 20, file), Compression::new(level));
        let mut table =
            Self { path: path.to_path_buf(), out, line: Vec::with_capacity(512), fields: 0, quote_text, rows: 0 };
        for c in columns {
            table.text(c);
        }
        table.write_line()?;
        Ok(table)
    }

    fn sep(&mut self) {
        if self.fields > 0 {
            self.line.push(b',');
        }
        self.fields += 1;
    }

    /// A text field: quoted in MIMIC-III style, or when it holds a comma, quote or line break.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.sep();
        if s.is_empty() {
            // An empty field is a NULL and stays unquoted.
        } else if self.quote_text || s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
            self.line.push(b'"');
            for b in s.bytes() {
                if b == b'"' {
                    self.line.push(b'"');
                }
                self.line.push(b);
            }
            self.line.push(b'"');
        } else {
            self.line.extend_from_slice(s.as_bytes());
        }
        self
    }

    /// A text field or NULL.
    pub fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        self.text(s.unwrap_or(""))
    }

    pub fn int(&mut self, v: impl itoa::Integer) -> &mut Self {
        self.sep();
        self.line.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self
    }

    pub fn opt_int(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.empty(),
        }
    }

    pub fn empty(&mut self) -> &mut Self {
        self.sep();
        self
    }

    pub fn datetime(&mut self, minutes: i64) -> &mut Self {
        self.sep();
        write_datetime(&mut self.line, minutes);
        self
    }

    pub fn opt_datetime(&mut self, minutes: Option<i64>) -> &mut Self {
        match minutes {
            Some(m) => self.datetime(m),
            None => self.empty(),
        }
    }

    pub fn date(&mut self, minutes: i64) -> &mut Self {
        self.sep();
        write_date(&mut self.line, minutes);
        self
    }

    /// Ends the row: a header or data line.
    pub fn end(&mut self) -> Result<()> {
        self.rows += 1;
        self.write_line()
    }

    fn write_line(&mut self) -> Result<()> {
        self.line.push(b'\n');
        self.out.write_all(&self.line).with_context(|| format!("writing {}", self.path.display()))?;
        self.line.clear();
        self.fields = 0;
        Ok(())
    }

    /// Flushes the file and returns the number of data rows.
    pub fn finish(self) -> Result<u64> {
        let inner = self.out.finish().with_context(|| format!("compressing {}", self.path.display()))?;
        inner.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", self.path.display()))?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(path: &Path) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap()).read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn quoting_styles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv.gz");
        let mut t = Table::create(&path, &["A", "B"], true, 1).unwrap();
        t.int(42u64).text("say \"hi\"").end().unwrap();
        t.int(0u32).empty().end().unwrap();
        t.empty().text("").end().unwrap();
        assert_eq!(t.finish().unwrap(), 3);
        assert_eq!(read(&path), "\"A\",\"B\"\n42,\"say \"\"hi\"\"\"\n0,\n,\n");

        let mut t = Table::create(&path, &["a", "b"], false, 1).unwrap();
        t.text("x, y").text("plain").end().unwrap();
        t.finish().unwrap();
        assert_eq!(read(&path), "a,b\n\"x, y\",plain\n");
    }
}
