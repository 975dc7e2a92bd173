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

    public init(parsing text: String) throws(RoomCodeError) {
        var out: [Character] = []
        for ch in text {
            if ch == "-" || ch == " " || ch == "\t" { continue }
            guard let mapped = RoomCode.normalize(ch) else { throw .invalidCharacter(ch) }
            out.append(mapped)
        }
        guard RoomCode.lengths.contains(out.count) else { throw .wrongLength(out.count) }
        self.canonical = String(out)
    }

    static func normalize(_ ch: Character) -> Character? {
        guard let upper = ch.uppercased().first, ch.isASCII else { return nil }
        switch upper {
        case "O": return "0"
        case "I", "L": return "1"
        default: return alphabet.contains(upper) ? upper : nil
        }
    }
}

public enum RoomCodeError: Error, Equatable, CustomStringConvertible {
    case invalidCharacter(Character)
    case wrongLength(Int)

    public var description: String {
        let shape = "a room code is 6 letters and digits like 7KQ-M4X, or 9 or 12 for a longer one (case and dashes do not matter)"
        switch self {
        case .invalidCharacter(let ch):
            return "'\(ch)' cannot be part of a room code: \(shape)"
        case .wrongLength(let n):
            return "that room code has \(n) characters: \(shape)"
        }
    }
}
