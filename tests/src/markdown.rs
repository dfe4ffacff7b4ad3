//! Reading the docs' Markdown, for tests that run what a page shows (its YAML, its shell
//! commands, its SQL), so that the page cannot drift from what is tested.

/// A fenced code block: its language (`sh`, `yaml`, `sql`, or empty) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub lang: String,
    pub text: String,
}

/// The fenced blocks of `text`, in order. A fence may be indented (inside a list item);
/// the block's lines are kept as written.
pub fn fenced_blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(lang)) => {
                current = Some(Block {
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The section of `page` under the heading line `heading` (e.g. `## Install the chart`),
/// up to the next heading of the same or a higher level; `None` when there is no such
/// heading. Lines inside fenced blocks are never taken for headings.
pub fn section<'a>(page: &'a str, heading: &str) -> Option<&'a str> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut start = None;
    let mut in_fence = false;
    let mut offset = 0;
    for line in page.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            let hashes = trimmed.chars().take_while(|c| *c == '#').count();
            match start {
                None if trimmed == heading => start = Some(offset + line.len()),
                Some(s) if hashes > 0 && hashes <= level && trimmed[hashes..].starts_with(' ') => {
                    return Some(&page[s..offset]);
                }
                _ => {}
            }
        }
        offset += line.len();
    }
    start.map(|s| &page[s..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# T\n\n## One\n\ntext\n\n```sh\necho 1 \\\n  two\n```\n\n### Sub\n\n  ```yaml\n  a: 1\n  ```\n\n```\n## not a heading\n```\n\n## Two\n\n```sql\nSELECT 1;\n```\n";

    #[test]
    fn blocks_and_sections_as_written() {
        let one = section(PAGE, "## One").expect("section One");
        let blocks = fenced_blocks(one);
        let langs: Vec<&str> = blocks.iter().map(|b| b.lang.as_str()).collect();
        assert_eq!(langs, ["sh", "yaml", ""], "the ### Sub belongs to ## One");
        assert_eq!(blocks[0].text, "echo 1 \\\n  two\n");
        assert_eq!(blocks[1].text, "  a: 1\n");
        assert_eq!(blocks[2].text, "## not a heading\n");
        assert!(!one.contains("SELECT"));
        let sub = section(PAGE, "### Sub").unwrap();
        assert_eq!(fenced_blocks(sub).len(), 2, "up to ## Two only");
        assert_eq!(
            fenced_blocks(section(PAGE, "## Two").unwrap())[0].lang,
            "sql"
        );
        assert_eq!(section(PAGE, "## Three"), None);
    }
}
