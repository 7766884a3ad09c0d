//! Markdown — a [`Document`] as `index.md`: GitHub-flavoured tables, figures as PNG images
//! linking to their SVG, captions in italics under them.

use std::fmt::Write as _;

use crate::document::{Block, Document, Table};

/// The page's file name.
pub const MARKDOWN_FILE: &str = "index.md";

/// Renders `document` as Markdown.
pub fn render(document: &Document) -> String {
    let mut out = format!("# {}\n", document.title);
    for block in &document.blocks {
        out.push('\n');
        match block {
            Block::Heading { level, text } => {
                let _ = writeln!(out, "{} {text}", "#".repeat(usize::from(*level)));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "{text}");
            }
            Block::Bullets(items) => {
                for item in items {
                    let _ = writeln!(out, "- {item}");
                }
            }
            Block::Table(table) => table_into(&mut out, table),
            Block::Figure(figure) => {
                let _ = writeln!(
                    out,
                    "[![{}]({stem}.png)]({stem}.svg)\n\n*{}*",
                    figure.title,
                    figure.caption,
                    stem = figure.stem
                );
            }
            Block::Code(code) => {
                let _ = writeln!(out, "```sh\n{code}\n```");
            }
        }
    }
    out
}

fn table_into(out: &mut String, table: &Table) {
    let line = |cells: &[String]| {
        let escaped: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |\n", escaped.join(" | "))
    };
    out.push_str(&line(&table.header));
    let rule: Vec<String> = table.header.iter().map(|_| "---".to_owned()).collect();
    out.push_str(&line(&rule));
    for row in &table.rows {
        out.push_str(&line(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::FigureRef;

    #[test]
    fn tables_figures_and_code_render_as_markdown() {
        let mut document = Document::new("Report");
        document.section("Throughput");
        let mut table = Table::new(["model", "msgs/s"]);
        table.row(["Kafka | one", "1,000"]);
        document.table(table);
        document.blocks.push(Block::Figure(FigureRef {
            stem: "throughput".into(),
            title: "Throughput".into(),
            caption: "Unit: msgs/s.".into(),
        }));
        document.blocks.push(Block::Code("twinmq compare".into()));
        let text = render(&document);
        assert!(text.starts_with("# Report\n\n## Throughput\n"), "{text}");
        assert!(text.contains("| model | msgs/s |\n| --- | --- |\n| Kafka \\| one | 1,000 |\n"));
        assert!(
            text.contains("[![Throughput](throughput.png)](throughput.svg)\n\n*Unit: msgs/s.*")
        );
        assert!(text.contains("```sh\ntwinmq compare\n```"));
    }
}
