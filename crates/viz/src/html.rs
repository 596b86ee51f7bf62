//! The HTML report: the Markdown report ([`crate::report::render`]) turned into one
//! self-contained HTML file, with every figure inlined as SVG (no file beside it is
//! needed to read it). The converter handles exactly the Markdown the report writes:
//! headings, paragraphs, lists (with `[x]`/`[ ]` check boxes), tables, and inline
//! code, bold, links and images.

use std::collections::HashMap;
use std::fmt::Write as _;

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `[text](target)` at the start of `s`: (text, target, bytes consumed).
fn bracket_link(s: &str) -> Option<(&str, &str, usize)> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find("](")?;
    let text = &rest[..close];
    let after = &rest[close + 2..];
    let end = after.find(')')?;
    Some((text, &after[..end], 1 + close + 2 + end + 1))
}

/// Inline Markdown → HTML: `code`, **bold**, [links](x), ![images](x).
pub fn inline(s: &str, images: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some(r) = rest.strip_prefix('`') {
            if let Some(end) = r.find('`') {
                let _ = write!(out, "<code>{}</code>", escape(&r[..end]));
                i += end + 2;
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix("**") {
            if let Some(end) = r.find("**") {
                let _ = write!(out, "<strong>{}</strong>", inline(&r[..end], images));
                i += end + 4;
                continue;
            }
        }
        if let Some(r) = rest.strip_prefix('!') {
            if let Some((alt, src, n)) = bracket_link(r) {
                match images.get(src) {
                    Some(svg) => {
                        let _ = write!(
                            out,
                            "<figure>{svg}<figcaption>{}</figcaption></figure>",
                            escape(alt)
                        );
                    }
                    None => {
                        let _ = write!(out, "<a href=\"{}\">{}</a>", escape(src), escape(alt));
                    }
                }
                i += 1 + n;
                continue;
            }
        }
        if let Some((text, href, n)) = bracket_link(rest) {
            let _ = write!(
                out,
                "<a href=\"{}\">{}</a>",
                escape(href),
                inline(text, images)
            );
            i += n;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push_str(&escape(&c.to_string()));
        i += c.len_utf8();
    }
    out
}

/// Cells of a table row `| a | b \| c |`.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

fn is_separator(line: &str) -> bool {
    let c = cells(line);
    !c.is_empty()
        && c.iter()
            .all(|x| !x.is_empty() && x.chars().all(|ch| ch == '-' || ch == ':'))
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1400px;\
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
table{border-collapse:collapse;margin:0.6em 0 1.4em;font-size:0.9em}\
th,td{border:1px solid #ccc;padding:0.25em 0.6em}th{background:#f2f2f2}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1em 0}figure svg{width:100%;height:auto;border:1px solid #ddd}\
figcaption{font-size:0.85em;color:#555}code{background:#f4f4f4;padding:0 0.2em}\
ul.check{list-style:none;padding-left:1em}";

/// Convert the report's Markdown to a complete HTML document. `images` maps an image
/// target of the Markdown to the SVG markup to inline in its place.
pub fn render(markdown: &str, title: &str, images: &HashMap<String, String>) -> String {
    let mut body = String::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, body: &mut String| {
        if !para.is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(&para.join(" "), images));
            para.clear();
        }
    };
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_end();
        if t.is_empty() {
            flush(&mut para, &mut body);
            i += 1;
        } else if let Some(h) = ["### ", "## ", "# "]
            .iter()
            .enumerate()
            .find_map(|(k, p)| t.strip_prefix(p).map(|h| (3 - k, h)))
        {
            flush(&mut para, &mut body);
            let _ = writeln!(body, "<h{0}>{1}</h{0}>", h.0, inline(h.1, images));
            i += 1;
        } else if t.starts_with('|') {
            flush(&mut para, &mut body);
            let mut rows: Vec<&str> = Vec::new();
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                rows.push(lines[i]);
                i += 1;
            }
            let (head, rest) = if rows.len() >= 2 && is_separator(rows[1]) {
                (Some(rows[0]), &rows[2..])
            } else {
                (None, &rows[..])
            };
            body.push_str("<table>\n");
            if let Some(h) = head {
                body.push_str("<thead><tr>");
                for c in cells(h) {
                    let _ = write!(body, "<th>{}</th>", inline(&c, images));
                }
                body.push_str("</tr></thead>\n");
            }
            body.push_str("<tbody>\n");
            for r in rest {
                body.push_str("<tr>");
                for c in cells(r) {
                    let numeric = !c.is_empty()
                        && c.chars()
                            .all(|ch| ch.is_ascii_digit() || ".,-+ %*".contains(ch));
                    let class = if numeric { " class=\"num\"" } else { "" };
                    let _ = write!(body, "<td{class}>{}</td>", inline(&c, images));
                }
                body.push_str("</tr>\n");
            }
            body.push_str("</tbody></table>\n");
        } else if t.starts_with("- ") {
            flush(&mut para, &mut body);
            let check = t.starts_with("- [");
            body.push_str(if check {
                "<ul class=\"check\">\n"
            } else {
                "<ul>\n"
            });
            while i < lines.len() && lines[i].starts_with("- ") {
                let item = &lines[i][2..];
                let (mark, text) = if let Some(x) = item.strip_prefix("[x] ") {
                    ("&#9745; ", x)
                } else if let Some(x) = item.strip_prefix("[ ] ") {
                    ("&#9744; ", x)
                } else {
                    ("", item)
                };
                let _ = writeln!(body, "<li>{mark}{}</li>", inline(text, images));
                i += 1;
            }
            body.push_str("</ul>\n");
        } else {
            para.push(t);
            i += 1;
        }
    }
    flush(&mut para, &mut body);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// SVG markup fit for inlining (any XML prolog before `<svg` removed).
pub fn inline_svg(svg: &str) -> String {
    match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_report_subset() {
        let md = "# Title <x>\n\nSome `code & more` and **bold** [link](a.md).\n\n\
                  ## Figures\n\n![plot.png](../plots/plot.png)\n\n\
                  | A | B \\| C |\n|---|---:|\n| x | 1.5 |\n\n- [x] done: `ok`\n- [ ] missing\n";
        let mut images = HashMap::new();
        images.insert(
            "../plots/plot.png".to_string(),
            "<svg viewBox=\"0 0 1 1\"></svg>".to_string(),
        );
        let html = render(md, "T", &images);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<h1>Title &lt;x&gt;</h1>"));
        assert!(html.contains("<code>code &amp; more</code>"));
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<a href=\"a.md\">link</a>"));
        assert!(html.contains("<figure><svg viewBox=\"0 0 1 1\"></svg>"));
        assert!(html.contains("<th>B | C</th>"));
        assert!(html.contains("<td class=\"num\">1.5</td>"));
        assert!(html.contains("&#9745; done: <code>ok</code>"));
        assert!(html.contains("&#9744; missing"));
        // An image without inline SVG stays a link, never an external <img>.
        let html = render("![x](y.png)\n", "T", &HashMap::new());
        assert!(html.contains("<a href=\"y.png\">x</a>") && !html.contains("<img"));
        assert_eq!(inline_svg("<?xml?>\n<svg a=\"1\"/>"), "<svg a=\"1\"/>");
    }
}
