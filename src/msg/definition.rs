//! A parser of the ROS 2 interface definition format of `.msg` and `.srv` files.
//!
//! It reads the parts of these files that rosidl reads. These are fields (`type name` with
//! an optional default value), constants (`type NAME=value`), arrays (`T[]`, fixed `T[N]`,
//! bounded `T[<=N]`), bounded strings (`string<=N`) and comments after `#`. In a `.srv`
//! file, a `---` line separates the request from the response. Message types without a package
//! (`SegmentRef`) are resolved against the file's own package, and `Header` means
//! `std_msgs/Header`, as in rosidl.

use std::fmt;

use thiserror::Error;

/// A parsed message definition: the fields in wire order and the constants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Definition {
    /// Fields in the order they appear in the file, which is their serialization order.
    pub fields: Vec<Field>,
    /// Constants in file order.
    pub constants: Vec<Constant>,
}

/// A parsed service definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceDefinition {
    /// The part above `---`.
    pub request: Definition,
    /// The part below `---`.
    pub response: Definition,
}

/// One field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name (lower snake case).
    pub name: String,
    /// Field type.
    pub field_type: FieldType,
    /// Default value as written in the file, if any.
    pub default: Option<String>,
}

/// One constant of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constant {
    /// Constant name (upper snake case).
    pub name: String,
    /// Constant type, always a primitive or a string.
    pub field_type: FieldType,
    /// Value as written in the file, with surrounding spaces removed.
    pub value: String,
}

/// The type of a field: a base type and an optional array kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldType {
    /// Element type.
    pub base: BaseType,
    /// Whether and how the field is an array of `base`.
    pub array: ArrayKind,
}

/// Element type of a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseType {
    /// A primitive such as `float32` or `bool`, stored under its rosidl name.
    Primitive(&'static str),
    /// `string`, with an optional maximum length in bytes.
    String {
        /// Maximum length from `string<=N`.
        max_len: Option<usize>,
    },
    /// `wstring`, with an optional maximum length in characters.
    WString {
        /// Maximum length from `wstring<=N`.
        max_len: Option<usize>,
    },
    /// Another message, always package-qualified after parsing.
    Message {
        /// Package name, for example `std_msgs`.
        package: String,
        /// Message name, for example `Header`.
        name: String,
    },
}

/// Array kind of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrayKind {
    /// Not an array.
    None,
    /// `T[]`: any length.
    Unbounded,
    /// `T[<=N]`: at most N elements.
    Bounded(usize),
    /// `T[N]`: exactly N elements.
    Fixed(usize),
}

/// Primitive type names of the ROS 2 interface format.
const PRIMITIVES: [&str; 14] = [
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "octet",
];

/// Error for a line that is not valid interface definition syntax.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    /// 1-based line number in the parsed text.
    pub line: usize,
    /// The offending line.
    pub text: String,
    /// Description of the problem.
    pub reason: String,
}

impl fmt::Display for FieldType {
    /// Writes the type as a `.msg` file spells it, with packages always written out:
    /// `float32[]`, `std_msgs/Header`, `string<=8[<=4]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.base {
            BaseType::Primitive(name) => f.write_str(name)?,
            BaseType::String { max_len } => write_bounded(f, "string", *max_len)?,
            BaseType::WString { max_len } => write_bounded(f, "wstring", *max_len)?,
            BaseType::Message { package, name } => write!(f, "{package}/{name}")?,
        }
        match self.array {
            ArrayKind::None => Ok(()),
            ArrayKind::Unbounded => f.write_str("[]"),
            ArrayKind::Bounded(max_len) => write!(f, "[<={max_len}]"),
            ArrayKind::Fixed(len) => write!(f, "[{len}]"),
        }
    }
}

fn write_bounded(f: &mut fmt::Formatter<'_>, name: &str, max_len: Option<usize>) -> fmt::Result {
    match max_len {
        Some(max_len) => write!(f, "{name}<={max_len}"),
        None => f.write_str(name),
    }
}

/// Parses the text of a `.msg` file of package `package`.
pub fn parse_message(package: &str, text: &str) -> Result<Definition, ParseError> {
    parse_lines(package, text.lines().enumerate())
}

/// Parses the text of a `.srv` file of package `package`.
pub fn parse_service(package: &str, text: &str) -> Result<ServiceDefinition, ParseError> {
    let lines: Vec<(usize, &str)> = text.lines().enumerate().collect();
    let separators: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, (_, line))| strip_comment(line).trim() == "---")
        .map(|(position, _)| position)
        .collect();

    let [separator] = separators[..] else {
        let (line, found) = match separators.get(1) {
            Some(&position) => (lines[position].0 + 1, "a second"),
            None => (lines.len(), "no"),
        };
        return Err(ParseError {
            line,
            text: String::new(),
            reason: format!("{found} `---` separator: a service needs exactly one"),
        });
    };

    Ok(ServiceDefinition {
        request: parse_lines(package, lines[..separator].iter().copied())?,
        response: parse_lines(package, lines[separator + 1..].iter().copied())?,
    })
}

fn parse_lines<'a>(
    package: &str,
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Definition, ParseError> {
    let mut definition = Definition::default();
    for (index, raw) in lines {
        let error = |reason: String| ParseError {
            line: index + 1,
            text: raw.to_owned(),
            reason,
        };
        parse_line(package, raw, &mut definition).map_err(error)?;
    }
    Ok(definition)
}

/// Adds the field or constant on one line to `definition`; blank and comment lines add
/// nothing.
fn parse_line(package: &str, raw: &str, definition: &mut Definition) -> Result<(), String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(());
    }

    let (type_text, rest) = trimmed
        .split_once(char::is_whitespace)
        .ok_or("expected `type name`")?;
    let field_type = parse_type(package, type_text)?;
    let rest = rest.trim_start();

    // A constant is `TYPE NAME=VALUE`. For string constants the whole rest of the line is
    // the value, so a `#` there is part of it rather than a comment.
    let name_end = rest
        .find(|c: char| c == '=' || c.is_whitespace() || c == '#')
        .unwrap_or(rest.len());
    let (name, after_name) = rest.split_at(name_end);
    if let Some(value) = after_name.trim_start().strip_prefix('=') {
        let value = match field_type.base {
            BaseType::String { .. } | BaseType::WString { .. } => value.trim(),
            _ => strip_comment(value).trim(),
        };
        return add_constant(definition, name, field_type, value);
    }

    check_field_name(name)?;
    if definition.fields.iter().any(|field| field.name == name) {
        return Err(format!("duplicate field name {name}"));
    }
    let default = strip_comment(after_name).trim();
    definition.fields.push(Field {
        name: name.to_owned(),
        field_type,
        default: (!default.is_empty()).then(|| default.to_owned()),
    });
    Ok(())
}

fn add_constant(
    definition: &mut Definition,
    name: &str,
    field_type: FieldType,
    value: &str,
) -> Result<(), String> {
    let valid_name = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return Err(format!(
            "invalid constant name {name}: expected upper snake case"
        ));
    }
    if matches!(field_type.base, BaseType::Message { .. }) || field_type.array != ArrayKind::None {
        return Err(format!(
            "constant {name} must have a primitive or string type"
        ));
    }
    if value.is_empty() {
        return Err(format!("constant {name} has no value"));
    }
    if definition
        .constants
        .iter()
        .any(|constant| constant.name == name)
    {
        return Err(format!("duplicate constant name {name}"));
    }
    definition.constants.push(Constant {
        name: name.to_owned(),
        field_type,
        value: value.to_owned(),
    });
    Ok(())
}

fn check_field_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid field name {name:?}: expected lower snake case without a trailing or doubled underscore"
        ))
    }
}

fn strip_comment(text: &str) -> &str {
    text.split_once('#').map_or(text, |(before, _)| before)
}

/// Parses a type such as `float32`, `string<=8`, `geometry_msgs/Vector3[<=3]` or `Header`.
fn parse_type(package: &str, text: &str) -> Result<FieldType, String> {
    let (base_text, array) = match text.split_once('[') {
        None => (text, ArrayKind::None),
        Some((base, bracket)) => {
            let inner = bracket
                .strip_suffix(']')
                .ok_or_else(|| format!("unclosed array bracket in type {text}"))?;
            (base, parse_array(inner, text)?)
        }
    };

    let base = if let Some((name, bound)) = base_text.split_once("<=") {
        let max_len = Some(parse_size(bound, text)?);
        match name {
            "string" => BaseType::String { max_len },
            "wstring" => BaseType::WString { max_len },
            _ => {
                return Err(format!(
                    "only string and wstring take a length bound, got {text}"
                ));
            }
        }
    } else if base_text == "string" {
        BaseType::String { max_len: None }
    } else if base_text == "wstring" {
        BaseType::WString { max_len: None }
    } else if let Some(primitive) = PRIMITIVES.iter().find(|p| **p == base_text) {
        BaseType::Primitive(primitive)
    } else {
        parse_message_type(package, base_text)?
    };
    Ok(FieldType { base, array })
}

fn parse_array(inner: &str, text: &str) -> Result<ArrayKind, String> {
    if inner.is_empty() {
        Ok(ArrayKind::Unbounded)
    } else if let Some(bound) = inner.strip_prefix("<=") {
        Ok(ArrayKind::Bounded(parse_size(bound, text)?))
    } else {
        Ok(ArrayKind::Fixed(parse_size(inner, text)?))
    }
}

fn parse_size(digits: &str, text: &str) -> Result<usize, String> {
    match digits.parse::<usize>() {
        Ok(size) if size > 0 => Ok(size),
        _ => Err(format!(
            "invalid size {digits:?} in type {text}: expected a positive integer"
        )),
    }
}

fn parse_message_type(package: &str, text: &str) -> Result<BaseType, String> {
    let (package, name) = match text.split_once('/') {
        Some((package, name)) => (package, name),
        None if text == "Header" => ("std_msgs", "Header"),
        None => (package, text),
    };
    let valid_package = package.starts_with(|c: char| c.is_ascii_lowercase())
        && package
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let valid_name = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid_package || !valid_name {
        return Err(format!(
            "unknown type {text}: not a primitive, string or Package/Message name"
        ));
    }
    Ok(BaseType::Message {
        package: package.to_owned(),
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of(definition: &Definition, index: usize) -> String {
        definition.fields[index].field_type.to_string()
    }

    #[test]
    fn arrays_bounds_and_defaults_parse() -> Result<(), ParseError> {
        let text = "\
# leading comment
float32[] values   # trailing comment
string<=8[<=4] names
float64[36] covariance
int32 count 7
Header header
SegmentRef left
geometry_msgs/Vector3 linear
";
        let definition = parse_message("clarify_msgs", text)?;

        assert_eq!(definition.fields.len(), 7);
        assert_eq!(type_of(&definition, 0), "float32[]");
        assert_eq!(type_of(&definition, 1), "string<=8[<=4]");
        assert_eq!(type_of(&definition, 2), "float64[36]");
        assert_eq!(definition.fields[3].default.as_deref(), Some("7"));
        assert_eq!(definition.fields[0].default, None);
        assert_eq!(type_of(&definition, 4), "std_msgs/Header");
        assert_eq!(type_of(&definition, 5), "clarify_msgs/SegmentRef");
        assert_eq!(type_of(&definition, 6), "geometry_msgs/Vector3");
        Ok(())
    }

    #[test]
    fn constants_parse_with_string_values_kept_whole() -> Result<(), ParseError> {
        let text = "uint8 LEFT=1 # left\nuint8 RIGHT = 2\nstring GREETING=hello # world\n";
        let definition = parse_message("p", text)?;

        let values: Vec<&str> = definition
            .constants
            .iter()
            .map(|c| c.value.as_str())
            .collect();
        assert_eq!(values, ["1", "2", "hello # world"]);
        assert!(definition.fields.is_empty());
        Ok(())
    }

    #[test]
    fn service_splits_at_separator() -> Result<(), ParseError> {
        let service = parse_service("p", "bool enabled\n---\nbool success\nstring message\n")?;

        assert_eq!(service.request.fields.len(), 1);
        assert_eq!(service.response.fields.len(), 2);
        assert_eq!(service.response.fields[1].name, "message");
        Ok(())
    }

    #[test]
    fn service_without_or_with_two_separators_rejected() {
        assert!(parse_service("p", "bool a\n").is_err());
        let error = parse_service("p", "bool a\n---\nbool b\n---\nbool c\n").unwrap_err();
        assert_eq!(error.line, 4);
    }

    #[test]
    fn invalid_lines_rejected_with_line_number() {
        let cases = [
            "float32",
            "float33 x",
            "float32 Bad",
            "float32 bad_",
            "float32[ x",
            "float32[0] x",
            "int32[<=x] x",
            "uint8 lower=1",
            "uint8 X=",
            "std_msgs/Header H=1",
            "float32 x\nfloat32 x",
        ];
        for text in cases {
            let error = parse_message("p", text).unwrap_err();
            assert!(error.line >= 1, "{text}: {error}");
        }
        let error = parse_message("p", "bool ok\n\nint9 broken\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.to_string().contains("int9"), "{error}");
    }
}
