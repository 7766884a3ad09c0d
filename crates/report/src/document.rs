//! Document — the report's content as structure (headings, paragraphs, tables, figures, code),
//! built once and rendered twice: as Markdown (`markdown`) and as HTML (`html`), so the two
//! pages cannot say different things.
//!
//! Text is plain; a span between backticks is code in both renderings.

/// A report page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    /// The page title.
    pub title: String,
    /// The content, in order.
    pub blocks: Vec<Block>,
}

/// One piece of content.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section heading; level 2 or 3.
    Heading {
        /// 2 for a section, 3 for a subsection.
        level: u8,
        /// The heading.
        text: String,
    },
    /// A paragraph.
    Paragraph(String),
    /// A bulleted list.
    Bullets(Vec<String>),
    /// A table.
    Table(Table),
    /// A chart, written as `<stem>.svg` and `<stem>.png` beside the page.
    Figure(FigureRef),
    /// A command or file, shown verbatim.
    Code(String),
}

/// A table: a header and rows of the same width.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names, units in them (`msgs/s`, `µs`).
    pub header: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<String>>,
}

/// A figure as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRef {
    /// File name without extension.
    pub stem: String,
    /// The chart's title.
    pub title: String,
    /// What it shows: its unit and configuration.
    pub caption: String,
}

impl Document {
    /// An empty page titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), blocks: Vec::new() }
    }

    /// Adds a section heading.
    pub fn section(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading { level: 2, text: text.into() });
    }

    /// Adds a subsection heading.
    pub fn subsection(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading { level: 3, text: text.into() });
    }

    /// Adds a paragraph.
    pub fn paragraph(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Paragraph(text.into()));
    }

    /// Adds a table.
    pub fn table(&mut self, table: Table) {
        self.blocks.push(Block::Table(table));
    }

    /// Every figure on the page.
    pub fn figures(&self) -> impl Iterator<Item = &FigureRef> {
        self.blocks.iter().filter_map(|block| match block {
            Block::Figure(figure) => Some(figure),
            _ => None,
        })
    }
}

impl Table {
    /// A table with `header`; rows are added with [`Table::row`].
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds a row; it must be as wide as the header.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let row: Vec<String> = cells.into_iter().map(Into::into).collect();
        assert_eq!(
            row.len(),
            self.header.len(),
            "a row of {} cells in a table of {} columns: {row:?}",
            row.len(),
            self.header.len()
        );
        self.rows.push(row);
    }
}

/// Splits text into plain and code spans (between backticks); an unmatched backtick is text.
pub fn spans(text: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        let Some(length) = rest[start + 1..].find('`') else { break };
        if start > 0 {
            out.push((false, &rest[..start]));
        }
        out.push((true, &rest[start + 1..start + 1 + length]));
        rest = &rest[start + 2 + length..];
    }
    if !rest.is_empty() {
        out.push((false, rest));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_are_found_between_backticks() {
        assert_eq!(
            spans("run `twinmq compare` now"),
            vec![(false, "run "), (true, "twinmq compare"), (false, " now")]
        );
        assert_eq!(spans("a ` b"), vec![(false, "a ` b")]);
        assert_eq!(spans("`x`"), vec![(true, "x")]);
    }

    #[test]
    #[should_panic(expected = "a row of 1 cells in a table of 2 columns")]
    fn a_row_must_fit_its_header() {
        Table::new(["a", "b"]).row(["only one"]);
    }
}
