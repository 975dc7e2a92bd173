/// Text that may be written to a terminal: the one gate between strings and the screen
/// (Docs/THREAT-MODEL.md, "Terminals"). It is made only of
///
/// - string literals of this program (`StaticString`: a string that came from the network cannot
///   be one),
/// - any `String` interpolated into it, which is escaped on the way in (`DisplayText.sanitize`:
///   control, C1 and bidi characters become `\x1B`, `\u{202E}`, …),
/// - styles this program chose (`styled`, SGR parameters as literals), and
/// - JSON lines (`JSONText`), whose encoder escapes every control character.
///
/// The console, the interactive screen and `doctor` print only `ScreenText`, so a peer's name,
/// line or error text written to the terminal raw does not compile.
public struct ScreenText: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    /// What goes to the terminal.
    public private(set) var rendered: String

    public typealias StringLiteralType = StaticString

    public init(stringLiteral literal: StaticString) {
        rendered = literal.description
    }

    public init(stringInterpolation: Interpolation) {
        rendered = stringInterpolation.rendered
    }

    /// Any string, escaped.
    public init(escaping text: String) {
        rendered = DisplayText.sanitize(text)
    }

    public init(json: JSONText) {
        rendered = json.text
    }

    public static let empty: ScreenText = ""

    public var isEmpty: Bool { rendered.isEmpty }
    public var description: String { rendered }

    /// `text` in an SGR style (`"1;31"`), when `enabled`.
    public static func styled(_ text: ScreenText, _ sgr: StaticString, enabled: Bool = true) -> ScreenText {
        guard enabled else { return text }
        var out = text
        out.rendered = "\u{1B}[\(sgr.description)m" + text.rendered + "\u{1B}[0m"
        return out
    }

    /// `text` in colour `palette` of the 256-colour palette (bold too, when asked), when `enabled`.
    public static func colored(_ text: ScreenText, palette: Int, bold: Bool = false, enabled: Bool = true) -> ScreenText {
        guard enabled else { return text }
        var out = text
        out.rendered = "\u{1B}[" + (bold ? "1;" : "") + "38;5;\(min(max(palette, 0), 255))m" + text.rendered + "\u{1B}[0m"
        return out
    }

    public static func + (lhs: ScreenText, rhs: ScreenText) -> ScreenText {
        var out = lhs
        out.rendered += rhs.rendered
        return out
    }

    public static func += (lhs: inout ScreenText, rhs: ScreenText) {
        lhs.rendered += rhs.rendered
    }

    /// These pieces with `separator` between them.
    public static func joined(_ pieces: [ScreenText], separator: ScreenText) -> ScreenText {
        var out = ScreenText.empty
        for (index, piece) in pieces.enumerated() {
            if index > 0 { out += separator }
            out += piece
        }
        return out
    }

    public struct Interpolation: StringInterpolationProtocol, Sendable {
        public typealias StringLiteralType = StaticString
        var rendered = ""

        public init(literalCapacity: Int, interpolationCount: Int) {
            rendered.reserveCapacity(literalCapacity)
        }

        public mutating func appendLiteral(_ literal: StaticString) {
            rendered += literal.description
        }

        /// A string from anywhere: escaped.
        public mutating func appendInterpolation(_ text: String) {
            rendered += DisplayText.sanitize(text)
        }

        public mutating func appendInterpolation(_ text: Substring) {
            rendered += DisplayText.sanitize(String(text))
        }

        public mutating func appendInterpolation(_ text: ScreenText) {
            rendered += text.rendered
        }

        public mutating func appendInterpolation(_ number: Int) {
            rendered += String(number)
        }

        public mutating func appendInterpolation<T: CustomStringConvertible>(describing value: T) {
            rendered += DisplayText.sanitize(value.description)
        }
    }
}

/// One JSON object per line (`--json`): strings go through `quote`, which escapes every control
/// character, so a JSON line is safe on a terminal whatever its values hold.
public struct JSONText: Sendable, Hashable {
    /// The fields so far, `"key":value` separated by commas, without the braces: one string grown
    /// in place (each builder consumes the value it extends), since a host renders one object per
    /// line it relays (Docs/BENCHMARKS.md, "Opening a record").
    private var body = ""

    public init() {}

    public consuming func string(_ key: String, _ value: String) -> JSONText {
        adding(key) { $0.appendQuoted(value) }
    }
    public consuming func int(_ key: String, _ value: Int) -> JSONText { adding(key) { $0.body += String(value) } }
    /// The string, or `null`.
    public consuming func string(_ key: String, _ value: String?) -> JSONText {
        adding(key) { if let value { $0.appendQuoted(value) } else { $0.body += "null" } }
    }
    public consuming func bool(_ key: String, _ value: Bool) -> JSONText { adding(key) { $0.body += value ? "true" : "false" } }
    public consuming func object(_ key: String, _ value: JSONText) -> JSONText { adding(key) { $0.body += value.text } }
    public consuming func array(_ key: String, _ values: [JSONText]) -> JSONText {
        adding(key) { out in
            out.body += "["
            for (i, value) in values.enumerated() {
                if i > 0 { out.body += "," }
                out.body += value.text
            }
            out.body += "]"
        }
    }

    public var text: String { "{" + body + "}" }

    private consuming func adding(_ key: String, _ value: (inout JSONText) -> Void) -> JSONText {
        var out = self
        if !out.body.isEmpty { out.body += "," }
        out.appendQuoted(key)
        out.body += ":"
        value(&out)
        return out
    }

    private mutating func appendQuoted(_ value: String) { JSONText.appendQuoted(value, to: &body) }

    /// A JSON string: quotes and backslashes escaped, every C0 and C1 control character and the
    /// two JavaScript line separators as `\uXXXX`, bidi controls too (a terminal shows them).
    public static func quote(_ s: String) -> String {
        var out = ""
        appendQuoted(s, to: &out)
        return out
    }

    /// `quote(s)` appended to `out`: the one path every JSON string of ours takes.
    static func appendQuoted(_ s: String, to out: inout String) {
        // Most values (ids, names, plain lines) are printable ASCII with nothing to escape: one
        // scan of their bytes, one copy. A host writes one such line per message it relays.
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            out += "\""
            out += s
            out += "\""
        } else {
            out += quoteEachScalar(s)
        }
    }

    /// `quote` one scalar at a time: for text holding anything to escape or anything not ASCII.
    static func quoteEachScalar(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
                || DisplayText.isUnsafe(scalar):
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
