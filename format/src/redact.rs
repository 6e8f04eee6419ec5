//! Literal redaction of SQL text, and the small SQL lexer behind it.
//!
//! Query text in a trace can hold secrets: names, card numbers, passwords
//! in `ALTER ROLE`. [`redact_literals`] replaces every literal (strings in
//! all their PostgreSQL forms, numbers) with a `$N` placeholder the way
//! `pg_stat_statements` does, numbering after the highest `$n` parameter
//! already in the text, and drops comments, which can hold secrets too.
//! Identifiers, keywords, parameters and casts stay. When the text cannot
//! be lexed sensibly (an unterminated string), the rest is redacted rather
//! than leaked.
//!
//! The lexer ([`tokens`]) is lossless — its tokens concatenate back to the
//! input — and never panics on any input, so `fingerprint(query)` can
//! reuse it. [`Dialect::MySql`] lexes MySQL's rules (backslash escapes,
//! double-quoted strings, `#` comments); the default is PostgreSQL.

/// Which server's lexical rules to follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL with `standard_conforming_strings` on (the default since
    /// 9.1): `"..."` is an identifier, backslashes escape only in `E'...'`.
    #[default]
    Postgres,
    /// MySQL and MariaDB: `'...'` and `"..."` are strings with backslash
    /// escapes, `` `...` `` is an identifier, `#` starts a comment.
    MySql,
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A constant: a string in any quoting, or a number. An unterminated
    /// string runs to the end of the text.
    Literal,
    /// A positional parameter, `$1`.
    Param,
    /// A keyword or unquoted identifier (`SELECT`, `t1`, `col_2`).
    Word,
    /// One ASCII character that is none of the above (`(`, `,`, `:`, `-`).
    Punct,
    /// A run of ASCII whitespace.
    Whitespace,
    /// A `-- ...` comment (without its newline) or a `/* ... */` comment.
    Comment,
    /// A quoted identifier: `"..."` (PostgreSQL), `U&"..."`, `` `...` ``.
    QuotedIdent,
}

/// A token: its kind and its exact text in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What the token is.
    pub kind: TokenKind,
    /// The token's text, a slice of the input.
    pub text: &'a str,
}

/// Iterator over the tokens of SQL text; see [`tokens`].
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    sql: &'a str,
    pos: usize,
    dialect: Dialect,
}

/// The tokens of PostgreSQL text. Concatenated, they give back `sql`.
pub fn tokens(sql: &str) -> Tokens<'_> {
    tokens_in(sql, Dialect::Postgres)
}

/// The tokens of `sql` under the rules of `dialect`.
pub fn tokens_in(sql: &str, dialect: Dialect) -> Tokens<'_> {
    Tokens {
        sql,
        pos: 0,
        dialect,
    }
}

/// Replaces every literal in PostgreSQL text with `$N` and every comment
/// with one space. `N` counts up from one past the highest `$n` already in
/// the text: `WHERE a = $1 AND b = 5` gives `WHERE a = $1 AND b = $2`.
pub fn redact_literals(sql: &str) -> String {
    redact_literals_in(sql, Dialect::Postgres)
}

/// [`redact_literals`] under the rules of `dialect`.
pub fn redact_literals_in(sql: &str, dialect: Dialect) -> String {
    let highest = tokens_in(sql, dialect)
        .filter(|t| t.kind == TokenKind::Param)
        .map(|t| param_number(t.text))
        .max()
        .unwrap_or(0);
    let mut next = highest.saturating_add(1);
    let mut out = String::with_capacity(sql.len());
    for token in tokens_in(sql, dialect) {
        match token.kind {
            TokenKind::Literal => {
                // Glued to a word, `$N` would read back as part of it, or
                // after `$tag` as the start of a dollar quote.
                if out.bytes().next_back().is_some_and(is_word_char) {
                    out.push(' ');
                }
                out.push('$');
                out.push_str(&next.to_string());
                next = next.saturating_add(1);
            }
            TokenKind::Comment => out.push(' '),
            // MySQL reads `1--1` as 1 - -1, but `-- ` as a comment: keep the
            // minuses apart so a space after them cannot start one.
            TokenKind::Punct
                if dialect == Dialect::MySql && token.text == "-" && out.ends_with('-') =>
            {
                out.push_str(" -");
            }
            _ => out.push_str(token.text),
        }
    }
    out
}

/// The number of a `$n` parameter token; saturates on absurd lengths.
fn param_number(text: &str) -> u64 {
    text.bytes().skip(1).fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let start = self.pos;
        if start >= self.sql.len() {
            return None;
        }
        let (kind, end) = self.lex(start);
        // Every branch of `lex` advances and ends on an ASCII byte or the
        // end of the text, so `end` is a char boundary; `get` keeps even a
        // mistake there from panicking.
        let end = end.clamp(start + 1, self.sql.len());
        let end = (end..=self.sql.len())
            .find(|&e| self.sql.is_char_boundary(e))
            .unwrap_or(self.sql.len());
        self.pos = end;
        let text = self.sql.get(start..end)?;
        Some(Token { kind, text })
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Dollar-quote tags may not contain `$`.
fn is_tag_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

impl Tokens<'_> {
    fn at(&self, i: usize) -> Option<u8> {
        self.sql.as_bytes().get(i).copied()
    }

    fn skip_while(&self, mut i: usize, f: impl Fn(u8) -> bool) -> usize {
        while self.at(i).is_some_and(&f) {
            i += 1;
        }
        i
    }

    /// Kind and end of the token starting at `i`.
    fn lex(&self, i: usize) -> (TokenKind, usize) {
        use TokenKind::*;
        let pg = self.dialect == Dialect::Postgres;
        let len = self.sql.len();
        let Some(c) = self.at(i) else {
            return (Punct, len);
        };
        let next = self.at(i + 1);
        match c {
            _ if is_space(c) => (Whitespace, self.skip_while(i, is_space)),
            b'-' if next == Some(b'-')
                && (pg
                    || self
                        .at(i + 2)
                        .is_none_or(|b| is_space(b) || b.is_ascii_control())) =>
            {
                (Comment, self.skip_while(i, |b| b != b'\n'))
            }
            b'#' if !pg => (Comment, self.skip_while(i, |b| b != b'\n')),
            b'/' if next == Some(b'*') => (Comment, self.block_comment(i)),
            b'\'' => self.quoted(i, b'\'', !pg, Literal),
            b'"' if pg => self.quoted(i, b'"', false, QuotedIdent),
            b'"' => self.quoted(i, b'"', true, Literal),
            b'`' => self.quoted(i, b'`', false, QuotedIdent),
            b'$' if next.is_some_and(|b| b.is_ascii_digit()) => {
                (Param, self.skip_while(i + 1, |b| b.is_ascii_digit()))
            }
            b'$' if pg => match self.dollar_quoted(i) {
                Some(end) => (Literal, end),
                None => (Punct, i + 1),
            },
            b'0'..=b'9' => (Literal, self.number(i)),
            // `1..10` is 1, `..`, 10, not 1, `.`, .10.
            b'.' if next.is_some_and(|b| b.is_ascii_digit())
                && (i == 0 || self.at(i - 1) != Some(b'.')) =>
            {
                (Literal, self.number(i))
            }
            b'e' | b'E' if pg && next == Some(b'\'') => self.quoted(i + 1, b'\'', true, Literal),
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => {
                self.quoted(i + 1, b'\'', !pg, Literal)
            }
            b'u' | b'U' if pg && next == Some(b'&') => match self.at(i + 2) {
                Some(b'\'') => self.quoted(i + 2, b'\'', false, Literal),
                Some(b'"') => self.quoted(i + 2, b'"', false, QuotedIdent),
                _ => (Word, self.skip_while(i, is_word_char)),
            },
            _ if is_word_start(c) || (!pg && c == b'$') => (Word, self.skip_while(i, is_word_char)),
            _ => (Punct, i + 1),
        }
    }

    /// A quoted token whose opening `quote` is at `i`: a doubled quote
    /// stands for itself, and with `backslash` a backslash escapes the next
    /// byte. Unterminated, it runs to the end and is redacted as a literal.
    fn quoted(&self, i: usize, quote: u8, backslash: bool, kind: TokenKind) -> (TokenKind, usize) {
        let mut j = i + 1;
        loop {
            match self.at(j) {
                None => return (TokenKind::Literal, self.sql.len()),
                Some(b'\\') if backslash => j += 2,
                Some(b) if b == quote => {
                    if self.at(j + 1) == Some(quote) {
                        j += 2;
                    } else {
                        return (kind, j + 1);
                    }
                }
                Some(_) => j += 1,
            }
        }
    }

    /// `/* ... */`, nested in PostgreSQL; unterminated, to the end.
    fn block_comment(&self, i: usize) -> usize {
        let nests = self.dialect == Dialect::Postgres;
        let mut depth = 0usize;
        let mut j = i;
        while let Some(b) = self.at(j) {
            let next = self.at(j + 1);
            if b == b'/' && next == Some(b'*') && (nests || depth == 0) {
                depth += 1;
                j += 2;
            } else if b == b'*' && next == Some(b'/') {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j;
                }
            } else {
                j += 1;
            }
        }
        self.sql.len()
    }

    /// `$tag$ ... $tag$` starting at `i`, or `None` when `$` does not open
    /// one. Unterminated, it runs to the end.
    fn dollar_quoted(&self, i: usize) -> Option<usize> {
        let tag_end = self.skip_while(i + 1, is_tag_char);
        if self.at(tag_end) != Some(b'$') || self.at(i + 1).is_some_and(|b| b.is_ascii_digit()) {
            return None;
        }
        let delimiter = self.sql.get(i..=tag_end)?;
        let body = tag_end + 1;
        let rest = self.sql.get(body..)?;
        Some(match rest.find(delimiter) {
            Some(at) => body + at + delimiter.len(),
            None => self.sql.len(),
        })
    }

    /// A number: `42`, `1_000`, `3.14`, `.5`, `1.`, `1.5e-3`, `0x1F`,
    /// `0o17`, `0b101`. Letters right after it are left to the next token.
    fn number(&self, i: usize) -> usize {
        let digits = |j: usize, f: fn(u8) -> bool| {
            let mut j = j;
            while let Some(b) = self.at(j) {
                if f(b) || (b == b'_' && self.at(j + 1).is_some_and(f) && j > i) {
                    j += 1;
                } else {
                    break;
                }
            }
            j
        };
        if self.at(i) == Some(b'0') {
            let radix: Option<fn(u8) -> bool> = match self.at(i + 1) {
                Some(b'x' | b'X') => Some(|b: u8| b.is_ascii_hexdigit()),
                Some(b'o' | b'O') => Some(|b: u8| matches!(b, b'0'..=b'7')),
                Some(b'b' | b'B') => Some(|b: u8| matches!(b, b'0' | b'1')),
                _ => None,
            };
            if let Some(f) = radix
                && self.at(i + 2).is_some_and(f)
            {
                return digits(i + 2, f);
            }
        }
        let is_digit = |b: u8| b.is_ascii_digit();
        let mut j = digits(i, is_digit);
        if self.at(j) == Some(b'.') && self.at(j + 1) != Some(b'.') {
            j = digits(j + 1, is_digit);
        }
        if matches!(self.at(j), Some(b'e' | b'E')) {
            let mut k = j + 1;
            if matches!(self.at(k), Some(b'+' | b'-')) {
                k += 1;
            }
            if self.at(k).is_some_and(is_digit) {
                j = digits(k, is_digit);
            }
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_redaction() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            (
                "SELECT * FROM t WHERE id = 42 AND name = 'bob'",
                "SELECT * FROM t WHERE id = $1 AND name = $2",
            ),
            (
                "SELECT * FROM t WHERE a = $1 AND b = 5",
                "SELECT * FROM t WHERE a = $1 AND b = $2",
            ),
            ("SELECT $2, 'x', $1, 7", "SELECT $2, $3, $1, $4"),
            ("SELECT 'it''s'", "SELECT $1"),
            (r"SELECT E'it\'s \\ ok', e'\'', 1", "SELECT $1, $2, $3"),
            (r"SELECT 'C:\', 'secret'", "SELECT $1, $2"),
            (
                r"SELECT B'1010', b'1', X'1F', x'ff', N'abc', U&'d\0061t'",
                "SELECT $1, $2, $3, $4, $5, $6",
            ),
            ("SELECT U&'d!0061t' UESCAPE '!'", "SELECT $1 UESCAPE $2"),
            (
                "SELECT $$secret$$, $tag$a $$ 'b' $tag$, $a$$b$$a$",
                "SELECT $1, $2, $3",
            ),
            (
                "SELECT \"col1\", \"we\"\"ird\", U&\"d\\0061t\"",
                "SELECT \"col1\", \"we\"\"ird\", U&\"d\\0061t\"",
            ),
            ("SELECT \"bob\" FROM t", "SELECT \"bob\" FROM t"),
            ("SELECT `bob` FROM t", "SELECT `bob` FROM t"),
            (
                "SELECT t1.col_2, x2, a$1, _3 FROM t1",
                "SELECT t1.col_2, x2, a$1, _3 FROM t1",
            ),
            (
                "SELECT 1.5e-3, 3.14, .5, 1., 1e10, 2E+5, 0x1F, 1_000_000, 0o17, 0b101",
                "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10",
            ),
            (
                "SELECT '5'::int, 5::numeric(10,2)",
                "SELECT $1::int, $2::numeric($3,$4)",
            ),
            ("SELECT -5, 3-2, a - -1", "SELECT -$1, $2-$3, a - -$4"),
            ("SELECT 1 -- secret 'x'\nFROM t", "SELECT $1  \nFROM t"),
            ("SELECT 1--comment", "SELECT $1 "),
            ("SELECT /* a /* nested 'x' */ still */ 1", "SELECT   $1"),
            ("SELECT 1 /* unterminated secret", "SELECT $1  "),
            ("SELECT 'unterminated secret", "SELECT $1"),
            ("SELECT E'unterminated \\' secret", "SELECT $1"),
            ("SELECT $tag$ unterminated secret", "SELECT $1"),
            ("SELECT \"unterminated ident", "SELECT $1"),
            (
                "SELECT 'żółw', '🐘', \"żółw\", żółw",
                "SELECT $1, $2, \"żółw\", żółw",
            ),
            (
                "SELECT interval '1 day', date '2020-01-01'",
                "SELECT interval $1, date $2",
            ),
            (
                "ALTER ROLE bob PASSWORD 'hunter2'",
                "ALTER ROLE bob PASSWORD $1",
            ),
            ("SELECT 'a'\n'b'", "SELECT $1\n$2"),
            ("SELECT ARRAY[1,2][1:2]", "SELECT ARRAY[$1,$2][$3:$4]"),
            ("SELECT 1..10", "SELECT $1..$2"),
            ("SELECT 123abc", "SELECT $1abc"),
            ("SELECT $'x'", "SELECT $ $1"),
            ("SELECT date'x', 5'y', 'a'5", "SELECT date $1, $2 $3, $4 $5"),
            ("SELECT $, $ 1", "SELECT $, $ $1"),
            (
                "SELECT x FROM t WHERE y IN (1, 2, 3)",
                "SELECT x FROM t WHERE y IN ($1, $2, $3)",
            ),
            ("SELECT $9 + 1, $10", "SELECT $9 + $11, $10"),
            ("SELECT 1\t\r\n", "SELECT $1\t\r\n"),
        ];
        for (sql, want) in cases {
            assert_eq!(redact_literals(sql), *want, "{sql:?}");
        }
    }

    #[test]
    fn mysql_redaction() {
        let cases: &[(&str, &str)] = &[
            (
                "SELECT * FROM t WHERE name = \"bob\" AND id = 5",
                "SELECT * FROM t WHERE name = $1 AND id = $2",
            ),
            (r"SELECT 'it\'s secret', 'a''b', 'x\\'", "SELECT $1, $2, $3"),
            (r#"SELECT "say \"hi\"", 1"#, "SELECT $1, $2"),
            ("SELECT 1 # comment 'x'\nFROM t", "SELECT $1  \nFROM t"),
            ("SELECT 1 -- comment\nFROM t", "SELECT $1  \nFROM t"),
            ("SELECT 1--1", "SELECT $1- -$2"),
            ("SELECT 1--#x\n", "SELECT $1- - \n"),
            (
                "SELECT `col1`, `a``b` FROM `t`",
                "SELECT `col1`, `a``b` FROM `t`",
            ),
            (
                "SELECT X'1F', 0x1F, b'101', 0b101, N'x', _utf8mb4'abc'",
                "SELECT $1, $2, $3, $4, $5, _utf8mb4 $6",
            ),
            ("SELECT /* a /* b */ 1", "SELECT   $1"),
            (
                "SELECT $a, a$b FROM t WHERE x = ?",
                "SELECT $a, a$b FROM t WHERE x = ?",
            ),
            ("SELECT E'x'", "SELECT E $1"),
            ("SELECT 'unterminated \\' secret", "SELECT $1"),
        ];
        for (sql, want) in cases {
            assert_eq!(redact_literals_in(sql, Dialect::MySql), *want, "{sql:?}");
        }
    }

    #[test]
    fn token_kinds() {
        use TokenKind::*;
        let cases: &[(&str, &[(TokenKind, &str)])] = &[
            (
                "SELECT \"a\", $1::int -- c\n/* d */ E'x'",
                &[
                    (Word, "SELECT"),
                    (Whitespace, " "),
                    (QuotedIdent, "\"a\""),
                    (Punct, ","),
                    (Whitespace, " "),
                    (Param, "$1"),
                    (Punct, ":"),
                    (Punct, ":"),
                    (Word, "int"),
                    (Whitespace, " "),
                    (Comment, "-- c"),
                    (Whitespace, "\n"),
                    (Comment, "/* d */"),
                    (Whitespace, " "),
                    (Literal, "E'x'"),
                ],
            ),
            ("-5", &[(Punct, "-"), (Literal, "5")]),
            ("t1.c", &[(Word, "t1"), (Punct, "."), (Word, "c")]),
            ("1.5e-3e", &[(Literal, "1.5e-3"), (Word, "e")]),
            (
                "1e+x",
                &[(Literal, "1"), (Word, "e"), (Punct, "+"), (Word, "x")],
            ),
            ("0x", &[(Literal, "0"), (Word, "x")]),
            ("0xFFg", &[(Literal, "0xFF"), (Word, "g")]),
            ("1_", &[(Literal, "1"), (Word, "_")]),
            ("U&x", &[(Word, "U"), (Punct, "&"), (Word, "x")]),
            ("$1$", &[(Param, "$1"), (Punct, "$")]),
            ("$a", &[(Punct, "$"), (Word, "a")]),
            ("$$", &[(Literal, "$$")]),
            ("$a$$a$x", &[(Literal, "$a$$a$"), (Word, "x")]),
            ("żółw🐘", &[(Word, "żółw🐘")]),
            ("\u{a0}", &[(Word, "\u{a0}")]),
        ];
        for (sql, want) in cases {
            let got: Vec<_> = tokens(sql).map(|t| (t.kind, t.text)).collect();
            assert_eq!(got, *want, "{sql:?}");
        }
    }

    /// A small deterministic generator: xorshift64*.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn odd_input_never_panics_and_never_leaves_literals() {
        // Weighted toward the bytes the lexer cares about, plus stray UTF-8
        // lead and continuation bytes (made into U+FFFD by the lossy
        // conversion) and whole multibyte characters.
        const ALPHABET: &[&[u8]] = &[
            b"'",
            b"\"",
            b"`",
            b"$",
            b"$$",
            b"$a$",
            b"-",
            b"--",
            b"/",
            b"*",
            b"/*",
            b"*/",
            b"\\",
            b"#",
            b"0",
            b"1",
            b"9",
            b".",
            b"e",
            b"E",
            b"x",
            b"X",
            b"b",
            b"n",
            b"U",
            b"&",
            b"_",
            b":",
            b"(",
            b" ",
            b"\n",
            b"\t",
            b"a",
            b"Z",
            b"0x",
            b"\xc3",
            b"\xbc",
            b"\xf0\x9f",
            b"\x80",
            b"\xff",
            "ż".as_bytes(),
            "🐘".as_bytes(),
            b"\0",
            b"?",
            b"+",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            let mut bytes = Vec::new();
            for _ in 0..len {
                bytes.extend_from_slice(ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]);
            }
            let sql = String::from_utf8_lossy(&bytes);
            for dialect in [Dialect::Postgres, Dialect::MySql] {
                let parts: Vec<_> = tokens_in(&sql, dialect).collect();
                assert!(parts.iter().all(|t| !t.text.is_empty()), "{sql:?}");
                let joined: String = parts.iter().map(|t| t.text).collect();
                assert_eq!(joined, sql, "{dialect:?}");

                let redacted = redact_literals_in(&sql, dialect);
                let left: Vec<_> = tokens_in(&redacted, dialect)
                    .filter(|t| matches!(t.kind, TokenKind::Literal | TokenKind::Comment))
                    .collect();
                assert!(
                    left.is_empty(),
                    "{dialect:?} {sql:?} -> {redacted:?}: {left:?}"
                );
                assert_eq!(redact_literals_in(&redacted, dialect), redacted, "{sql:?}");
            }
        }
    }

    #[test]
    fn huge_parameter_numbers_saturate() {
        let sql = "SELECT $99999999999999999999999, 1";
        assert_eq!(
            redact_literals(sql),
            "SELECT $99999999999999999999999, $18446744073709551615"
        );
    }
}
