/// Display names: 1–32 characters and at most 64 bytes of UTF-8, printable (no control or format
/// characters, zero-width ones included), and unique within a room under `sameName`, which folds
/// case and look-alike letters, so two names that look the same cannot both be in a room.
public enum NameRule {
    public static let maxLength = 32
    public static let maxBytes = 64

    public static func validate(_ raw: String) throws(NameError) -> String {
        let name = raw.trimmingWhitespace()
        guard !name.isEmpty else { throw .empty }
        guard name.count <= maxLength else { throw .tooLong(name.count) }
        guard name.utf8.count <= maxBytes else { throw .tooManyBytes(name.utf8.count) }
        // A tab is fine in a line, not in a name (it would be a gap that looks like spaces).
        guard !name.unicodeScalars.contains(where: { DisplayText.isUnsafe($0) || isInvisible($0) || $0 == "\t" }) else { throw .unprintable }
        return name
    }

    /// The name a login name gives when the user chose none: itself when it is a valid name, else
    /// the part before an `@` (a directory user's `jdoe@corp.example.com`, as SSSD names them, is
    /// past 32 characters, and the run refused to start), else its first 32 characters. When none
    /// of them is a name (a control character in it), what is wrong with the login name itself.
    public static func fromLogin(_ login: String) throws(NameError) -> String {
        do {
            return try validate(login)
        } catch {
            let local = login.split(separator: "@", omittingEmptySubsequences: false).first.map(String.init) ?? login
            for candidate in [local, fitted(local.trimmingWhitespace())] {
                if let name = try? validate(candidate) { return name }
            }
            throw error
        }
    }

    /// The start of `text` that fits a name's 32 characters and 64 bytes with `suffix` after it,
    /// and the suffix (`pi-2`; a login name cut to a name).
    public static func fitted(_ text: some StringProtocol, then suffix: String = "") -> String {
        var kept = String(text.prefix(maxLength - suffix.count))
        while kept.utf8.count + suffix.utf8.count > maxBytes { kept.removeLast() }
        return kept + suffix
    }

    /// Whether `name` is a valid name as it stands (not only after trimming).
    public static func isValid(_ name: String) -> Bool {
        (try? validate(name)) == name
    }

    /// Whether two names would read the same: equal after case folding and the look-alike map
    /// (Swift compares strings by canonical equivalence, so composed and decomposed forms match).
    public static func sameName(_ a: String, _ b: String) -> Bool {
        skeleton(a) == skeleton(b)
    }

    /// The name a record is shown under (Docs/PROTOCOL.md, "Names"). A line of someone in the room
    /// (`members`) shows under the name the roster holds for its node, unless it was signed under
    /// a name another member of the room holds now and not one this node had before
    /// (`formerNames`); a line of someone gone, under the name it was signed with, marked with its
    /// node when somebody in the room is called that now. Nil: a line signed under another
    /// member's name; not shown.
    ///
    /// A line signed under a name its node held before a rename this peer did not see (it joined
    /// after, or the host changed since) is that member's own: a newcomer dropped every line
    /// `robert` wrote as `bob`, with a notice each, and a host after a change refused them in a
    /// push. The words show under the name the signing key holds now, never under another's.
    public static func shownName(of record: ChatRecord, members: [Member], formerNames: [String]) -> String? {
        if let author = members.first(where: { $0.node == record.id.node }) {
            if record.from == author.name || formerNames.contains(record.from) { return author.name }
            let anothersName = members.contains { $0.node != author.node && sameName($0.name, record.from) }
            return anothersName ? nil : author.name
        }
        guard isValid(record.from) else { return nil }
        guard members.contains(where: { sameName($0.name, record.from) }) else { return record.from }
        return "\(record.from) (another key, \(record.id.node))"
    }

    /// The name lower-cased, with Cyrillic and Greek letters that look like Latin ones, and digits
    /// that look like letters, replaced by those letters; every other form of a Latin letter or a
    /// digit (fullwidth `ｂ`, mathematical `𝐛`, circled `ⓑ`, small capital `ʙ`, `ó` and the
    /// other letters with marks) read as that letter or digit, and combining marks dropped.
    public static func skeleton(_ name: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in name.unicodeScalars {
            let category = scalar.properties.generalCategory
            if category == .nonspacingMark || category == .enclosingMark { continue }
            for lower in (latinForm(of: scalar) ?? scalar).properties.lowercaseMapping.unicodeScalars {
                out.append(lookAlikes[lower] ?? lower)
            }
        }
        return String(out)
    }

    /// The Latin letter or digit that `scalar` is a form of, read from its Unicode name (`FULLWIDTH
    /// LATIN SMALL LETTER B`, `MATHEMATICAL BOLD SMALL B`, `LATIN LETTER SMALL CAPITAL B`,
    /// `CIRCLED DIGIT ONE`, `LATIN SMALL LETTER O WITH ACUTE`): a rule over every character, not a
    /// list of the ones tried so far. It also reads a few letters of other scripts as Latin ones
    /// (`CYRILLIC SMALL LETTER I`); that only makes more names count as taken, never fewer.
    static func latinForm(of scalar: Unicode.Scalar) -> Unicode.Scalar? {
        guard latinFormBlocks.contains(where: { $0.contains(scalar.value) }), let name = scalar.properties.name else { return nil }
        let words = name.split(separator: " ")
        if let digit = words.lastIndex(of: "DIGIT"), digit + 1 < words.count, let value = digitNames[String(words[digit + 1])] {
            return value
        }
        let end = words.firstIndex(of: "WITH") ?? words.endIndex
        guard end >= 2, ["LETTER", "SMALL", "CAPITAL"].contains(words[end - 2]), words[end - 1].unicodeScalars.count == 1,
              let letter = words[end - 1].unicodeScalars.first, ("A"..."Z").contains(letter) else { return nil }
        return letter
    }

    /// Where forms of Latin letters and digits are (a name is looked up only there: CJK, for one,
    /// holds none, and looking up its names costs about 2 µs a character): the Latin blocks, IPA
    /// and phonetic letters (small capitals, modifier letters), Greek and Cyrillic, super- and
    /// subscripts, letterlike symbols, enclosed alphanumerics, fullwidth forms, mathematical
    /// alphanumerics and the enclosed supplement.
    private static let latinFormBlocks: [ClosedRange<UInt32>] = [
        0x80...0x52F, 0x1D00...0x1EFF, 0x2070...0x209F, 0x2100...0x214F, 0x2460...0x24FF, 0xA720...0xA7FF, 0xAB30...0xAB6F,
        0xFF00...0xFFEF, 0x1D400...0x1D7FF, 0x1F100...0x1F1FF,
    ]

    private static let digitNames: [String: Unicode.Scalar] = [
        "ZERO": "0", "ONE": "1", "TWO": "2", "THREE": "3", "FOUR": "4", "FIVE": "5", "SIX": "6", "SEVEN": "7", "EIGHT": "8", "NINE": "9",
    ]

    private static let lookAlikes: [Unicode.Scalar: Unicode.Scalar] = {
        var map: [Unicode.Scalar: Unicode.Scalar] = [:]
        let pairs: [(String, String)] = [
            // Cyrillic
            ("а", "a"), ("в", "b"), ("ь", "b"), ("с", "c"), ("ԁ", "d"), ("е", "e"), ("ё", "e"), ("һ", "h"), ("і", "l"),
            ("ї", "l"), ("ј", "j"), ("к", "k"), ("ӏ", "l"), ("м", "m"), ("н", "h"), ("о", "o"), ("п", "n"), ("р", "p"),
            ("ԛ", "q"), ("ѕ", "s"), ("т", "t"), ("у", "y"), ("ԝ", "w"), ("х", "x"), ("з", "3"),
            // Greek
            ("α", "a"), ("β", "b"), ("ε", "e"), ("η", "n"), ("ι", "l"), ("κ", "k"), ("ν", "v"), ("ο", "o"), ("ρ", "p"),
            ("τ", "t"), ("υ", "u"), ("χ", "x"), ("ζ", "z"), ("μ", "u"),
            // Latin and digits that pass for one another
            ("0", "o"), ("1", "l"), ("|", "l"), ("ı", "l"), ("i", "l"), ("ɡ", "g"),
        ]
        for (from, to) in pairs { map[from.unicodeScalars.first!] = to.unicodeScalars.first! }
        return map
    }()

    /// Format characters (zero-width space and joiners, soft hyphen, word joiner, BOM) and other
    /// characters that take no room on screen.
    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .format, .unassigned, .privateUse, .surrogate, .lineSeparator, .paragraphSeparator: return true
        default: break
        }
        switch scalar.value {
        case 0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F, 0x180E: return true  // fillers that render blank
        default: return scalar.properties.isDefaultIgnorableCodePoint
        }
    }
}

public enum NameError: Error, Equatable, CustomStringConvertible {
    case empty, tooLong(Int), tooManyBytes(Int), unprintable
    public var description: String {
        switch self {
        case .empty: "a name needs at least one visible character"
        case .tooLong(let n): "a name has at most \(NameRule.maxLength) characters (this one has \(n))"
        case .tooManyBytes(let n): "a name has at most \(NameRule.maxBytes) bytes of UTF-8 (this one has \(n))"
        case .unprintable: "a name cannot contain control, format or invisible characters"
        }
    }
}

extension String {
    /// Without the whitespace (Unicode's, newlines included) at either end.
    public func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}

/// Text a peer sent that is not a chat line or a name: a refusal's or an error's message. It keeps
/// the peer's string out of reach: the only way to print it is `description`, which is
/// `DisplayText.sanitize` of it, so an escape sequence in a host's refusal arrives escaped
/// (Docs/THREAT-MODEL.md, "Untrusted text").
public struct UntrustedText: Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    private let raw: String

    public init(_ raw: String) { self.raw = raw }
    public init(stringLiteral value: String) { raw = value }

    public init(from decoder: any Decoder) throws {
        raw = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(raw)
    }

    /// The text as it may be shown: control characters and bidirectional overrides escaped.
    public var description: String { DisplayText.sanitize(raw) }

    public func contains(_ part: String) -> Bool { raw.contains(part) }
}

/// Makes untrusted text safe to print on a terminal: control characters (other than tab) and the
/// bidirectional overrides are shown escaped, so no one can drive another member's terminal or
/// disguise a line.
public enum DisplayText {
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09: false
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: true
        default: false
        }
    }

    public static func sanitize(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out.append(contentsOf: (scalar.value <= 0xFF ? "\\x" + (hex.count == 1 ? "0" + hex : hex) : "\\u{\(hex)}").unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }
}
