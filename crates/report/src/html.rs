//! HTML — a [`Document`] as `index.html`: one self-contained page (styles inline), figures as
//! the SVG charts beside it with the PNG as a fallback link.

use std::fmt::Write as _;

use crate::document::{Block, Document, spans};

/// The page's file name.
pub const HTML_FILE: &str = "index.html";

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;\
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid \
#bbb;padding:0.3em 0.6em;text-align:left}th{background:#eee}figure{margin:1.5em 0}\
figure img{max-width:100%;border:1px solid #ddd}figcaption{font-style:italic;color:#444}\
pre{background:#f4f4f4;padding:0.8em;overflow-x:auto}code{background:#f4f4f4}";

/// Renders `document` as HTML.
pub fn render(document: &Document) -> String {
    let mut out = String::new();
    let title = escape(&document.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for block in &document.blocks {
        match block {
            Block::Heading { level, text } => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "<p>{}</p>", inline(text));
            }
            Block::Bullets(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", inline(item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table(table) => {
                out.push_str("<table>\n<thead><tr>");
                for cell in &table.header {
                    let _ = write!(out, "<th>{}</th>", inline(cell));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in &table.rows {
                    out.push_str("<tr>");
                    for cell in row {
                        let _ = write!(out, "<td>{}</td>", inline(cell));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Figure(figure) => {
                let _ = writeln!(
                    out,
                    "<figure>\n<a href=\"{stem}.png\"><img src=\"{stem}.svg\" alt=\"{}\"></a>\n\
                     <figcaption>{}</figcaption>\n</figure>",
                    escape(&figure.title),
                    inline(&figure.caption),
                    stem = escape(&figure.stem)
                );
            }
            Block::Code(code) => {
                let _ = writeln!(out, "<pre><code>{}</code></pre>", escape(code));
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Escapes text and turns backtick spans into `<code>`.
fn inline(text: &str) -> String {
    spans(text)
        .into_iter()
        .map(
            |(code, span)| {
                if code { format!("<code>{}</code>", escape(span)) } else { escape(span) }
            },
        )
        .collect()
}

/// Escapes the characters HTML gives a meaning.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{FigureRef, Table};

    #[test]
    fn a_page_escapes_text_and_shows_figures_as_svg() {
        let mut document = Document::new("a < b");
        document.paragraph("run `twinmq compare --out <dir>`");
        let mut table = Table::new(["p99 (µs)"]);
        table.row(["1 & 2"]);
        document.table(table);
        document.blocks.push(Block::Figure(FigureRef {
            stem: "latency".into(),
            title: "Latency".into(),
            caption: "Unit: µs.".into(),
        }));
        let page = render(&document);
        assert!(page.contains("<h1>a &lt; b</h1>"));
        assert!(page.contains("<p>run <code>twinmq compare --out &lt;dir&gt;</code></p>"));
        assert!(page.contains("<td>1 &amp; 2</td>"));
        assert!(page.contains("<img src=\"latency.svg\" alt=\"Latency\">"));
        assert!(page.trim_end().ends_with("</html>"));
    }
}
