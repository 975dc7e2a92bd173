/// A room code: 6 Crockford base32 characters (30 bits), shown as `XXX-XXX`; or, for a room that
/// wants more against online guessing (`create --code-length`), 9 or 12 (45 or 60 bits), shown
/// in groups of three.
///
/// Parsing is forgiving the way people type: any case, spaces and dashes ignored,
/// `O` read as `0`, `I` and `L` read as `1`.
public struct RoomCode: Hashable, Sendable, CustomStringConvertible {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    public static let length = 6
    /// The lengths a code may have.
    public static let lengths = [6, 9, 12]

    /// The canonical characters, no separator. This is what the key schedule hashes.
    public let canonical: String

    public var description: String {
        var groups: [String] = []
        var rest = Substring(canonical)
        while !rest.isEmpty {
            groups.append(String(rest.prefix(3)))
            rest = rest.dropFirst(3)
        }
        return groups.joined(separator: "-")
    }

    /// Makes a new random code from the system CSPRNG.
    public static func random(length: Int = RoomCode.length) -> RoomCode {
        var generator = SystemRandomNumberGenerator()
        return random(length: length, using: &generator)
    }

    public static func random<G: RandomNumberGenerator>(length: Int = RoomCode.length, using generator: inout G) -> RoomCode {
        precondition(lengths.contains(length))
        let chars = (0..<length).map { _ in alphabet[Int(generator.next(upperBound: UInt8(32)))] }
        return RoomCode(uncheckedCanonical: String(chars))
    }

    private init(uncheckedCanonical: String) {
        self.canonical = uncheckedCanonical
    }

    /// The code in `text` as people type and paste it (Docs/CLI.md, "join"): any case, `O` for 0,
    /// `I` and `L` for 1, full-width forms (an East Asian input method) as their letters; dashes
    /// of every kind (a chat program or a word processor turns `-` into `–`) and spaces of every
    /// kind (a web page's no-break space) and invisible format characters ignored. Failing that, the
    /// same after taking off what a pasted code comes with: the command it was shown in
    /// (`levchat-peer join 7KQ-M4X`, `$ …`) and quotes, brackets or a full stop around it. What
    /// parsed before still parses the same; the error is the text's own.
    public init(parsing text: String) throws(RoomCodeError) {
        do {
            self = try RoomCode(characters: text)
        } catch {
            guard let pasted = RoomCode.unwrapped(text), let code = try? RoomCode(characters: pasted) else { throw error }
            self = code
        }
    }

    private init(characters text: some StringProtocol) throws(RoomCodeError) {
        var out: [Character] = []
        for ch in text {
            if RoomCode.isSeparator(ch) { continue }
            guard let mapped = RoomCode.normalize(ch) else { throw .invalidCharacter(ch) }
            out.append(mapped)
        }
        guard RoomCode.lengths.contains(out.count) else { throw .wrongLength(out.count) }
        self.canonical = String(out)
    }

    static func normalize(_ ch: Character) -> Character? {
        var ch = ch
        // Full-width ASCII (U+FF01–U+FF5E) is ASCII moved up by 0xFEE0.
        if ch.unicodeScalars.count == 1, let scalar = ch.unicodeScalars.first, (0xFF01...0xFF5E).contains(scalar.value),
           let ascii = Unicode.Scalar(scalar.value - 0xFEE0) {
            ch = Character(ascii)
        }
        guard let upper = ch.uppercased().first, ch.isASCII else { return nil }
        switch upper {
        case "O": return "0"
        case "I", "L": return "1"
        default: return alphabet.contains(upper) ? upper : nil
        }
    }

    /// A dash (Unicode's dash punctuation, and the minus sign), a space of any kind, or an
    /// invisible format character (a soft hyphen, a zero-width space).
    static func isSeparator(_ ch: Character) -> Bool {
        ch.unicodeScalars.allSatisfy { scalar in
            let properties = scalar.properties
            return properties.generalCategory == .dashPunctuation || properties.generalCategory == .format
                || properties.isWhitespace || scalar == "\u{2212}"
        }
    }

    /// `text` without the command a code is shown in and what encloses it; nil when nothing was
    /// taken off.
    static func unwrapped(_ text: String) -> Substring? {
        var words = text.split(whereSeparator: { $0.isWhitespace })
        while let first = words.first, words.count > 1, ["$", "levchat-peer", "join"].contains(first.lowercased()) {
            words.removeFirst()
        }
        guard let start = words.first?.startIndex, let end = words.last?.endIndex else { return nil }
        var rest = text[start..<end]
        let enclosing = Set("\"'`“”‘’„‚«»‹›()[]{}<>.,;:!?")
        while let first = rest.first, enclosing.contains(first) || isSeparator(first) { rest = rest.dropFirst() }
        while let last = rest.last, enclosing.contains(last) || isSeparator(last) { rest = rest.dropLast() }
        return rest == Substring(text) ? nil : rest
    }
}

public enum RoomCodeError: Error, Equatable, CustomStringConvertible {
    case invalidCharacter(Character)
    case wrongLength(Int)

    public var description: String {
        let shape = "a room code is 6 letters and digits like 7KQ-M4X, or 9 or 12 for a longer one (case and dashes do not matter)"
        switch self {
        case .invalidCharacter(let ch):
            // Escaped: the text may be pasted, or come from LEVCHAT_CODE, with a terminal's escapes.
            return "'\(ScreenText(escaping: String(ch)).rendered)' cannot be part of a room code: \(shape)"
        case .wrongLength(let n):
            return "that room code has \(n) characters: \(shape)"
        }
    }
}
