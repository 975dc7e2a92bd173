/// Display names: 1–32 characters, printable, unique within a room.
public enum NameRule {
    public static let maxLength = 32

    public static func validate(_ raw: String) throws(NameError) -> String {
        let name = raw.trimmingWhitespace()
        guard !name.isEmpty else { throw .empty }
        guard name.count <= maxLength else { throw .tooLong(name.count) }
        guard !name.unicodeScalars.contains(where: DisplayText.isUnsafe) else { throw .unprintable }
        return name
    }
}

public enum NameError: Error, Equatable, CustomStringConvertible {
    case empty, tooLong(Int), unprintable
    public var description: String {
        switch self {
        case .empty: "a name needs at least one visible character"
        case .tooLong(let n): "a name has at most \(NameRule.maxLength) characters (this one has \(n))"
        case .unprintable: "a name cannot contain control characters"
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
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
