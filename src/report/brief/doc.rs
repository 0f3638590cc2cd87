//! A tiny document model rendered twice, as Markdown and as self-contained
//! HTML, so the two briefs always say the same thing and every string is
//! escaped in exactly one place (account names are user data).

#[derive(Debug, Clone)]
pub enum Block {
    Heading(u8, String),
    Para(String),
    /// a highlighted paragraph (status lines, warnings)
    Callout(String),
    Bullets(Vec<String>),
    Checklist(Vec<String>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// SVGs drawn by this program (trusted), side by side where there is
    /// room; Markdown gets each `alt` instead
    Charts(Vec<Chart>),
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub svg: String,
    pub alt: String,
}

fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Markdown text: HTML-significant characters escaped (Markdown renders raw
/// HTML), plus the characters that would start emphasis or break a table.
fn escape_md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        match ch {
            // `<` starts raw HTML only before a letter, `/`, `!` or `?`:
            // "< 0.001" stays readable
            '<' if next.is_some_and(|c| c.is_ascii_alphabetic() || "/!?".contains(c)) => {
                o.push_str("&lt;")
            }
            '&' if next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '#') => {
                o.push_str("&amp;")
            }
            // an underscore inside a word never starts emphasis (funding_round)
            '_' if word(prev) && word(next) => o.push('_'),
            '|' => o.push_str("\\|"),
            '*' | '_' | '`' | '[' | ']' | '\\' => {
                o.push('\\');
                o.push(ch);
            }
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut o = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                o.push_str(&"#".repeat(*level as usize));
                o.push(' ');
                o.push_str(&escape_md(t));
                o.push_str("\n\n");
            }
            Block::Para(t) => {
                o.push_str(&escape_md(t));
                o.push_str("\n\n");
            }
            Block::Callout(t) => {
                o.push_str("> **");
                o.push_str(&escape_md(t));
                o.push_str("**\n\n");
            }
            Block::Bullets(items) | Block::Checklist(items) => {
                let mark = if matches!(b, Block::Checklist(_)) {
                    "- [ ] "
                } else {
                    "- "
                };
                for i in items {
                    o.push_str(mark);
                    o.push_str(&escape_md(i));
                    o.push('\n');
                }
                o.push('\n');
            }
            Block::Table { head, rows } => {
                let line = |cells: &[String]| {
                    format!(
                        "| {} |\n",
                        cells
                            .iter()
                            .map(|c| escape_md(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    )
                };
                o.push_str(&line(head));
                o.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
                for r in rows {
                    o.push_str(&line(r));
                }
                o.push('\n');
            }
            Block::Charts(charts) => {
                for c in charts {
                    o.push_str(&format!("_{}_\n\n", escape_md(&c.alt)));
                }
            }
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1040px;\
margin:1.5em auto;padding:0 1em;color:#1d2733;line-height:1.45}\
h1{font-size:1.6em;border-bottom:2px solid #1f4e79;padding-bottom:.2em;margin-bottom:.3em}\
h2{font-size:1.25em;margin-top:1.8em;color:#1f4e79}h3{font-size:1.05em}\
.scroll{overflow-x:auto;margin:.6em 0 1.2em;-webkit-overflow-scrolling:touch}\
table{border-collapse:collapse;font-size:.88em}\
th,td{border:1px solid #c9d3de;padding:.3em .55em;text-align:left;vertical-align:top;min-width:4.5em}\
td:nth-child(2){min-width:12em}th{background:#eef3f8}tr:nth-child(even) td{background:#fafbfc}\
.callout{background:#fff6e0;border-left:4px solid #e0a100;padding:.6em .9em;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:1em;margin:.6em 0}\
.charts figure{flex:1 1 380px;max-width:560px;margin:0}svg.fit{width:100%;height:auto;display:block}\
ul.check{list-style:none;padding-left:.4em}ul.check li{margin:.25em 0}\
ul.check li:before{content:'\\2610  '}\
@media (max-width:640px){.scroll table,.scroll tbody,.scroll tr,.scroll td{display:block}\
.scroll thead{display:none}.scroll tr{border:1px solid #c9d3de;margin:0 0 .7em;padding:.2em 0}\
.scroll td{border:none;padding:.15em .6em;min-width:0}.scroll td:nth-child(2){min-width:0}\
.scroll td:first-child{font-weight:600}\
.scroll td[data-label]:before{content:attr(data-label) ': ';color:#4a5a6a;font-weight:400}}";

pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    o.push_str(&format!(
        "<title>{}</title><style>{STYLE}</style></head><body>\n",
        escape_html(title)
    ));
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                o.push_str(&format!("<h{level}>{}</h{level}>\n", escape_html(t)));
            }
            Block::Para(t) => o.push_str(&format!("<p>{}</p>\n", escape_html(t))),
            Block::Callout(t) => {
                o.push_str(&format!("<p class=\"callout\">{}</p>\n", escape_html(t)));
            }
            Block::Bullets(items) | Block::Checklist(items) => {
                let class = if matches!(b, Block::Checklist(_)) {
                    " class=\"check\""
                } else {
                    ""
                };
                o.push_str(&format!("<ul{class}>\n"));
                for i in items {
                    o.push_str(&format!("<li>{}</li>\n", escape_html(i)));
                }
                o.push_str("</ul>\n");
            }
            Block::Table { head, rows } => {
                o.push_str("<div class=\"scroll\"><table><thead><tr>");
                for h in head {
                    o.push_str(&format!("<th>{}</th>", escape_html(h)));
                }
                o.push_str("</tr></thead><tbody>\n");
                for r in rows {
                    o.push_str("<tr>");
                    // on a narrow screen each row is a card, each cell
                    // labelled with its column
                    for (k, c) in r.iter().enumerate() {
                        match head.get(k).filter(|_| k > 0) {
                            Some(h) => o.push_str(&format!(
                                "<td data-label=\"{}\">{}</td>",
                                escape_html(h),
                                escape_html(c)
                            )),
                            None => o.push_str(&format!("<td>{}</td>", escape_html(c))),
                        }
                    }
                    o.push_str("</tr>\n");
                }
                o.push_str("</tbody></table></div>\n");
            }
            Block::Charts(charts) => {
                o.push_str("<div class=\"charts\">\n");
                for c in charts {
                    o.push_str(&format!(
                        "<figure role=\"img\" aria-label=\"{}\">{}</figure>\n",
                        escape_html(&c.alt),
                        super::charts::responsive(&c.svg)
                    ));
                }
                o.push_str("</div>\n");
            }
        }
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_strings_cannot_inject_markup() {
        let evil = "<script>alert(1)</script> | *x*".to_string();
        let blocks = vec![
            Block::Para(evil.clone()),
            Block::Table {
                head: vec!["name".into()],
                rows: vec![vec![evil.clone()]],
            },
        ];
        let h = html("t", &blocks);
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let m = markdown(&blocks);
        assert!(!m.contains("<script>"));
        assert!(m.contains("\\|"), "{m}");
    }
}
