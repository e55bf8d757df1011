//! A bounded BER reader: just enough of X.690 for CMS as AWS KMS sends it.
//!
//! AWS KMS emits `CiphertextForRecipient` in BER with indefinite lengths and a constructed
//! (chunked) encrypted content, which DER-only parsers refuse. This reader accepts definite and
//! indefinite lengths, high tag numbers and constructed strings, and refuses everything it
//! cannot bound: more than [`MAX_DEPTH`] nested elements, more than [`MAX_ELEMENTS`] elements,
//! lengths over four bytes, an indefinite length on a primitive element, and trailing bytes.

/// Deepest nesting accepted (CMS EnvelopedData needs 7).
pub const MAX_DEPTH: usize = 16;
/// Most elements in one document.
pub const MAX_ELEMENTS: usize = 4096;

/// Why the bytes are not the BER this reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The input ended inside an element.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// A length of more than four bytes, or the reserved length octet.
    #[error("unsupported length at byte {0}")]
    Length(usize),
    /// An indefinite length on a primitive element.
    #[error("indefinite length on a primitive element at byte {0}")]
    IndefinitePrimitive(usize),
    /// Nesting or element count over the bounds.
    #[error("more than {MAX_DEPTH} levels or {MAX_ELEMENTS} elements")]
    TooComplex,
    /// A tag number over 2^28.
    #[error("tag number too large at byte {0}")]
    Tag(usize),
    /// Bytes after the single top-level element.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Tag classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Universal (SEQUENCE, OCTET STRING, …).
    Universal,
    /// Application.
    Application,
    /// Context-specific (`[n]`).
    Context,
    /// Private.
    Private,
}

/// An element's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Its class.
    pub class: Class,
    /// Whether it is constructed.
    pub constructed: bool,
    /// Its number.
    pub number: u32,
}

impl Tag {
    /// Universal SEQUENCE.
    pub const SEQUENCE: Tag = Tag::universal(true, 16);
    /// Universal SET.
    pub const SET: Tag = Tag::universal(true, 17);
    /// Universal INTEGER.
    pub const INTEGER: Tag = Tag::universal(false, 2);
    /// Universal OBJECT IDENTIFIER.
    pub const OID: Tag = Tag::universal(false, 6);
    /// Universal NULL.
    pub const NULL: Tag = Tag::universal(false, 5);
    /// Universal OCTET STRING number (primitive or constructed).
    pub const OCTET_STRING_NUMBER: u32 = 4;

    const fn universal(constructed: bool, number: u32) -> Tag {
        Tag {
            class: Class::Universal,
            constructed,
            number,
        }
    }

    /// Context-specific `[number]`.
    pub const fn context(constructed: bool, number: u32) -> Tag {
        Tag {
            class: Class::Context,
            constructed,
            number,
        }
    }
}

/// A parsed element: primitive bytes or constructed children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// The contents of a primitive element.
    Primitive(&'a [u8]),
    /// The children of a constructed element.
    Constructed(Vec<Element<'a>>),
}

/// One element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element<'a> {
    /// Its identifier.
    pub tag: Tag,
    /// Its value.
    pub value: Value<'a>,
}

impl<'a> Element<'a> {
    /// The children, if the element is constructed.
    pub fn children(&self) -> Option<&[Element<'a>]> {
        match &self.value {
            Value::Constructed(c) => Some(c),
            Value::Primitive(_) => None,
        }
    }

    /// The contents, if the element is primitive.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Primitive(b) => Some(b),
            Value::Constructed(_) => None,
        }
    }

    /// The contents of a string element, primitive or constructed from primitive chunks of the
    /// same universal type (BER's chunked strings), concatenated.
    pub fn string_bytes(&self) -> Option<Vec<u8>> {
        match &self.value {
            Value::Primitive(b) => Some(b.to_vec()),
            Value::Constructed(chunks) => {
                let mut out = Vec::new();
                for c in chunks {
                    if c.tag != Tag::universal(false, Tag::OCTET_STRING_NUMBER) {
                        return None;
                    }
                    out.extend_from_slice(c.bytes()?);
                }
                Some(out)
            }
        }
    }
}

/// Parses exactly one element spanning all of `input`.
pub fn parse(input: &[u8]) -> Result<Element<'_>, BerError> {
    let mut reader = Reader {
        input,
        pos: 0,
        elements: 0,
    };
    let element = reader.element(0)?;
    match input.len() - reader.pos {
        0 => Ok(element),
        n => Err(BerError::Trailing(n)),
    }
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    elements: usize,
}

enum Length {
    Definite(usize),
    Indefinite,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, BerError> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or(BerError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BerError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or(BerError::Truncated(self.pos))?;
        let out = self
            .input
            .get(self.pos..end)
            .ok_or(BerError::Truncated(self.pos))?;
        self.pos = end;
        Ok(out)
    }

    fn tag(&mut self) -> Result<Tag, BerError> {
        let at = self.pos;
        let first = self.byte()?;
        let class = match first >> 6 {
            0 => Class::Universal,
            1 => Class::Application,
            2 => Class::Context,
            _ => Class::Private,
        };
        let constructed = first & 0x20 != 0;
        let mut number = u32::from(first & 0x1f);
        if number == 0x1f {
            number = 0;
            loop {
                let b = self.byte()?;
                if number >= 1 << 21 {
                    return Err(BerError::Tag(at));
                }
                number = (number << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        Ok(Tag {
            class,
            constructed,
            number,
        })
    }

    fn length(&mut self) -> Result<Length, BerError> {
        let at = self.pos;
        let first = self.byte()?;
        match first {
            0x00..=0x7f => Ok(Length::Definite(usize::from(first))),
            0x80 => Ok(Length::Indefinite),
            0x81..=0x84 => {
                let mut len = 0usize;
                for _ in 0..(first & 0x7f) {
                    len = (len << 8) | usize::from(self.byte()?);
                }
                Ok(Length::Definite(len))
            }
            _ => Err(BerError::Length(at)),
        }
    }

    fn at_end_of_contents(&self) -> bool {
        self.input.get(self.pos..self.pos.saturating_add(2)) == Some(&[0, 0][..])
    }

    fn element(&mut self, depth: usize) -> Result<Element<'a>, BerError> {
        self.elements += 1;
        if depth > MAX_DEPTH || self.elements > MAX_ELEMENTS {
            return Err(BerError::TooComplex);
        }
        let at = self.pos;
        let tag = self.tag()?;
        let length = self.length()?;
        let value = match (tag.constructed, length) {
            (false, Length::Definite(n)) => Value::Primitive(self.take(n)?),
            (false, Length::Indefinite) => return Err(BerError::IndefinitePrimitive(at)),
            (true, Length::Definite(n)) => {
                let body = self.take(n)?;
                let mut inner = Reader {
                    input: body,
                    pos: 0,
                    elements: self.elements,
                };
                let mut children = Vec::new();
                while inner.pos < body.len() {
                    children.push(inner.element(depth + 1)?);
                }
                self.elements = inner.elements;
                Value::Constructed(children)
            }
            (true, Length::Indefinite) => {
                let mut children = Vec::new();
                loop {
                    if self.at_end_of_contents() {
                        self.pos += 2;
                        break;
                    }
                    if self.pos >= self.input.len() {
                        return Err(BerError::Truncated(self.pos));
                    }
                    children.push(self.element(depth + 1)?);
                }
                Value::Constructed(children)
            }
        };
        Ok(Element { tag, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_and_indefinite_agree() {
        // SEQUENCE { INTEGER 2, OCTET STRING "ab" } in DER, and in BER with an indefinite
        // sequence and a chunked string.
        let der = [0x30, 0x07, 0x02, 0x01, 0x02, 0x04, 0x02, b'a', b'b'];
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x02, 0x24, 0x80, 0x04, 0x01, b'a', 0x04, 0x01, b'b', 0x00,
            0x00, 0x00, 0x00,
        ];
        let (d, b) = (parse(&der).unwrap(), parse(&ber).unwrap());
        let (dc, bc) = (d.children().unwrap(), b.children().unwrap());
        assert_eq!(dc[0], bc[0]);
        assert_eq!(dc[1].string_bytes().unwrap(), b"ab");
        assert_eq!(bc[1].string_bytes().unwrap(), b"ab");
    }

    #[test]
    fn refuses_what_it_cannot_bound() {
        assert_eq!(parse(&[0x30, 0x03, 0x02]), Err(BerError::Truncated(2)));
        assert_eq!(
            parse(&[0x04, 0x80, 0x00, 0x00]),
            Err(BerError::IndefinitePrimitive(0))
        );
        assert_eq!(
            parse(&[0x04, 0x85, 0, 0, 0, 0, 1]),
            Err(BerError::Length(1))
        );
        assert_eq!(parse(&[0x05, 0x00, 0x00]), Err(BerError::Trailing(1)));
        // An indefinite sequence that never ends.
        assert_eq!(
            parse(&[0x30, 0x80, 0x05, 0x00]),
            Err(BerError::Truncated(4))
        );
        // Nesting beyond the bound.
        let mut deep = Vec::new();
        for _ in 0..=MAX_DEPTH + 1 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert_eq!(parse(&deep), Err(BerError::TooComplex));
        // A definite length pointing past the end.
        assert_eq!(
            parse(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(BerError::Truncated(6))
        );
    }

    #[test]
    fn high_tag_numbers() {
        let e = parse(&[0x9f, 0x81, 0x00, 0x00]).unwrap();
        assert_eq!(e.tag, Tag::context(false, 128));
    }
}
