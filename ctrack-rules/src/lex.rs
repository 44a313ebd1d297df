//! Splitting a RouterOS script into statements and words.
//!
//! The lexer knows only the script's surface: `#` comment lines, `\` line
//! continuations (also inside quoted strings, as `/export` wraps long values),
//! double-quoted values with RouterOS escapes, `[ ... ]` command substitutions
//! and `key=value` words. It knows no menu or property; [`crate::parse`] does.
//! Every statement keeps the number of the line it starts on, so that errors
//! can name it.

use crate::error::ParseError;

/// One word of a statement.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Word {
    /// A bare word: a menu name, a command (`add`), or a positional value.
    Bare(String),
    /// `key=value`; the value is unescaped and unquoted.
    Prop(String, String),
    /// `[ find key=value ... ]`: the words inside the brackets.
    Bracket(Vec<Word>),
}

/// A logical line: the words of one command, after joining continuations.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Stmt {
    /// 1-based number of the physical line the statement starts on.
    pub line: usize,
    pub words: Vec<Word>,
}

/// Splits `text` into statements. Empty lines and `#` comment lines yield none.
pub fn lex(text: &str) -> Result<Vec<Stmt>, ParseError> {
    let mut out = Vec::new();
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
    };
    loop {
        lx.skip_blank();
        if lx.pos >= lx.chars.len() {
            break;
        }
        let start = lx.line;
        if lx.peek() == Some('#') {
            lx.skip_to_eol();
            continue;
        }
        let words = lx.words(start, false)?;
        if !words.is_empty() {
            out.push(Stmt { line: start, words });
        }
    }
    Ok(out)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips whitespace including newlines (between statements).
    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if self.at_continuation() {
                self.eat_continuation();
            } else {
                break;
            }
        }
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    /// `\` followed by optional `\r` and a newline.
    fn at_continuation(&self) -> bool {
        if self.peek() != Some('\\') {
            return false;
        }
        match self.chars.get(self.pos + 1) {
            Some('\n') => true,
            Some('\r') => self.chars.get(self.pos + 2) == Some(&'\n'),
            _ => false,
        }
    }

    /// Consumes `\`, the line break and the next line's leading blanks.
    fn eat_continuation(&mut self) {
        self.bump();
        if self.peek() == Some('\r') {
            self.bump();
        }
        self.bump();
        while matches!(self.peek(), Some(' ') | Some('\t')) {
            self.bump();
        }
    }

    /// Words up to the end of the logical line (or up to `]` when `nested`).
    fn words(&mut self, start: usize, nested: bool) -> Result<Vec<Word>, ParseError> {
        let mut words = Vec::new();
        loop {
            // Blanks within the line.
            loop {
                match self.peek() {
                    Some(' ') | Some('\t') | Some('\r') => {
                        self.bump();
                    }
                    _ if self.at_continuation() => self.eat_continuation(),
                    _ => break,
                }
            }
            match self.peek() {
                None | Some('\n') if nested => {
                    return Err(ParseError::new(start, "[", "unclosed `[`"));
                }
                None => return Ok(words),
                Some('\n') => {
                    self.bump();
                    return Ok(words);
                }
                Some(']') if nested => {
                    self.bump();
                    return Ok(words);
                }
                Some('[') => {
                    self.bump();
                    let inner = self.words(start, true)?;
                    words.push(Word::Bracket(inner));
                }
                Some(';') => {
                    return Err(ParseError::new(
                        self.line,
                        ";",
                        "several commands on one line are not supported",
                    ));
                }
                Some(_) => words.push(self.word()?),
            }
        }
    }

    /// One `key=value` or bare word.
    fn word(&mut self) -> Result<Word, ParseError> {
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == '=' || c == ']' || c == '[' || c == ';' {
                break;
            }
            if self.at_continuation() {
                // `/export` wraps long lines anywhere, also inside a word.
                self.eat_continuation();
                continue;
            }
            if c == '"' {
                // A quoted bare word (a positional value).
                let v = self.quoted()?;
                key.push_str(&v);
                continue;
            }
            key.push(c);
            self.bump();
        }
        if self.peek() != Some('=') {
            if key.is_empty() {
                let c = self.peek().unwrap_or(' ');
                return Err(ParseError::new(
                    self.line,
                    c.to_string(),
                    "unexpected character",
                ));
            }
            return Ok(Word::Bare(key));
        }
        self.bump(); // '='
        let mut value = String::new();
        while let Some(c) = self.peek() {
            if c == '"' {
                value.push_str(&self.quoted()?);
                continue;
            }
            if self.at_continuation() {
                self.eat_continuation();
                continue;
            }
            if c.is_whitespace() || c == ']' || c == ';' {
                break;
            }
            value.push(c);
            self.bump();
        }
        Ok(Word::Prop(key, value))
    }

    /// A `"..."` string with RouterOS escapes; the cursor is on the quote.
    fn quoted(&mut self) -> Result<String, ParseError> {
        let start = self.line;
        self.bump();
        let mut s = String::new();
        loop {
            if self.at_continuation() {
                self.eat_continuation();
                continue;
            }
            let Some(c) = self.bump() else {
                return Err(ParseError::new(start, "\"", "unterminated quoted string"));
            };
            match c {
                '"' => return Ok(s),
                '\\' => {
                    let Some(e) = self.bump() else {
                        return Err(ParseError::new(start, "\"", "unterminated quoted string"));
                    };
                    match e {
                        '"' | '\\' | '$' | '?' => s.push(e),
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        'a' => s.push('\u{7}'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'v' => s.push('\u{b}'),
                        '_' => s.push(' '),
                        h if is_hex(h) => {
                            let l = self.bump().filter(|&c| is_hex(c));
                            let Some(l) = l else {
                                return Err(ParseError::new(
                                    self.line,
                                    format!("\\{h}"),
                                    "a hex escape needs two hex digits",
                                ));
                            };
                            let byte =
                                (h.to_digit(16).unwrap_or(0) << 4) | l.to_digit(16).unwrap_or(0);
                            s.push(char::from(byte as u8));
                        }
                        other => {
                            return Err(ParseError::new(
                                self.line,
                                format!("\\{other}"),
                                "unknown escape in quoted string",
                            ));
                        }
                    }
                }
                c => s.push(c),
            }
        }
    }
}

/// RouterOS hex escapes use digits and capital letters only (`\1F`).
fn is_hex(c: char) -> bool {
    c.is_ascii_digit() || ('A'..='F').contains(&c)
}

/// Writes `value` as a script value: bare when it is safe, else quoted with
/// escapes (the inverse of the lexer's unquoting).
pub fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '_' | '.' | ',' | ':' | '/' | '!' | '@' | '+' | '*' | '%' | '&'
                )
        });
    if bare {
        return value.to_string();
    }
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '$' => s.push_str("\\$"),
            '?' => s.push_str("\\?"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                s.push_str(&format!("\\{:02X}", c as u32))
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> Word {
        Word::Prop(k.into(), v.into())
    }

    #[test]
    fn comments_continuations_and_quotes() {
        let text = "# header\n/ip firewall filter\nadd chain=input \\\n    comment=\"a \\\"b\\\" \\\\ c\" \\\n    action=drop\n\n";
        let s = lex(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].line, 3);
        assert_eq!(
            s[1].words,
            vec![
                Word::Bare("add".into()),
                p("chain", "input"),
                p("comment", "a \"b\" \\ c"),
                p("action", "drop")
            ]
        );
    }

    #[test]
    fn continuation_inside_a_quoted_value() {
        let s = lex("add comment=\"long\\\n    er\"\n").unwrap();
        assert_eq!(s[0].words[1], p("comment", "longer"));
    }

    #[test]
    fn continuation_inside_a_word_or_before_a_quoted_value() {
        let s = lex(
            "add comment=\\\n    \"x y\" state=\\\n    new,inv\\\n    alid net\\\n    work=1\n",
        )
        .unwrap();
        assert_eq!(
            s[0].words[1..],
            [
                p("comment", "x y"),
                p("state", "new,invalid"),
                p("network", "1")
            ]
        );
    }

    #[test]
    fn bracket_selector() {
        let s = lex("set [ find default-name=ether1 ] name=wan\n").unwrap();
        assert_eq!(
            s[0].words,
            vec![
                Word::Bare("set".into()),
                Word::Bracket(vec![Word::Bare("find".into()), p("default-name", "ether1")]),
                p("name", "wan"),
            ]
        );
    }

    #[test]
    fn errors_name_their_line() {
        let e = lex("add a=b\nadd comment=\"open\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = lex("\n\nset [ find x=y\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = lex("add comment=\"bad \\q\"\n").unwrap_err();
        assert_eq!(e.word, "\\q");
    }

    #[test]
    fn quote_round_trips() {
        for v in [
            "defconf",
            "",
            "a b",
            "x\"y",
            "back\\slash",
            "$var",
            "tab\there",
            "é",
            "\u{1}",
        ] {
            let line = format!("add k={}\n", quote(v));
            let s = lex(&line).unwrap();
            assert_eq!(s[0].words[1], p("k", v), "{line}");
        }
    }
}
