/// What a key press means to the line editor (Docs/CLI.md lists the keys).
public enum EditorKey: Equatable, Sendable {
    /// Printable text, one or more grapheme clusters.
    case text(String)
    case enter, backspace, delete, left, right, home, end, up, down, tab
    /// Ctrl-K, Ctrl-U, Ctrl-W.
    case killToEnd, killToStart, deleteWordBack
    /// Ctrl-C, Ctrl-D, Ctrl-L.
    case interrupt, endOfInput, redraw
    /// Ctrl-Z, which does not stop the chat: the screen says so (Docs/CLI.md, "The terminal chat").
    case suspend
}

/// Turns the bytes a terminal in raw mode sends into keys: UTF-8 text, control keys, and the
/// escape sequences of arrows, Home, End and Delete (both the `ESC [` and `ESC O` forms). A
/// sequence split across reads is kept until it is whole; unknown sequences and malformed UTF-8
/// lead bytes are dropped (a well-formed but invalid sequence decodes as U+FFFD). Pure, so it is
/// tested byte by byte.
public struct KeyDecoder: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    public mutating func feed(_ bytes: [UInt8]) -> [EditorKey] {
        pending += bytes
        var keys: [EditorKey] = []
        var text: [UInt8] = []
        func flushText() {
            if !text.isEmpty {
                keys.append(.text(String(decoding: text, as: UTF8.self)))
                text = []
            }
        }
        var i = 0
        while i < pending.count {
            let byte = pending[i]
            if byte == 0x1B {
                guard let (key, length) = KeyDecoder.escape(pending[i...]) else { break }  // incomplete: wait
                flushText()
                if let key { keys.append(key) }
                i += length
                continue
            }
            if byte < 0x20 || byte == 0x7F {
                flushText()
                if let key = KeyDecoder.control(byte) { keys.append(key) }
                i += 1
                continue
            }
            let length = KeyDecoder.utf8Length(byte)
            guard length > 0 else { i += 1; continue }  // a stray continuation byte
            guard i + length <= pending.count else { break }  // the rest comes with the next read
            let scalar = Array(pending[i..<i + length])
            if scalar.dropFirst().allSatisfy({ $0 & 0xC0 == 0x80 }) {
                text += scalar
                i += length
            } else {
                i += 1  // a bad lead byte: drop it alone, the next byte may start something valid
            }
        }
        flushText()
        pending.removeFirst(i)
        return keys
    }

    static func control(_ byte: UInt8) -> EditorKey? {
        switch byte {
        case 0x01: .home
        case 0x02: .left
        case 0x03: .interrupt
        case 0x04: .endOfInput
        case 0x05: .end
        case 0x06: .right
        case 0x08, 0x7F: .backspace
        case 0x09: .tab
        case 0x0A, 0x0D: .enter
        case 0x0B: .killToEnd
        case 0x0C: .redraw
        case 0x0E: .down
        case 0x10: .up
        case 0x15: .killToStart
        case 0x17: .deleteWordBack
        case 0x1A: .suspend
        default: nil
        }
    }

    /// The key of the escape sequence at the start of `bytes` and its length; nil when more bytes
    /// are needed. A sequence we do not know is consumed with no key.
    static func escape(_ bytes: ArraySlice<UInt8>) -> (EditorKey?, Int)? {
        let b = Array(bytes.prefix(8))
        guard b.count >= 2 else { return nil }
        switch b[1] {
        case UInt8(ascii: "["):
            // CSI: parameters (digits, ';') then one final byte in 0x40...0x7E.
            var j = 2
            while j < b.count, (0x30...0x3F).contains(b[j]) { j += 1 }
            guard j < b.count else { return b.count >= 8 ? (nil, b.count) : nil }
            let final = b[j]
            let parameter = String(decoding: b[2..<j], as: UTF8.self)
            let key: EditorKey? = switch (final, parameter) {
            case (UInt8(ascii: "A"), _): .up
            case (UInt8(ascii: "B"), _): .down
            case (UInt8(ascii: "C"), _): .right
            case (UInt8(ascii: "D"), _): .left
            case (UInt8(ascii: "H"), _): .home
            case (UInt8(ascii: "F"), _): .end
            case (UInt8(ascii: "~"), "1"), (UInt8(ascii: "~"), "7"): .home
            case (UInt8(ascii: "~"), "4"), (UInt8(ascii: "~"), "8"): .end
            case (UInt8(ascii: "~"), "3"): .delete
            default: nil
            }
            return (key, j + 1)
        case UInt8(ascii: "O"):
            guard b.count >= 3 else { return nil }
            let key: EditorKey? = switch b[2] {
            case UInt8(ascii: "A"): .up
            case UInt8(ascii: "B"): .down
            case UInt8(ascii: "C"): .right
            case UInt8(ascii: "D"): .left
            case UInt8(ascii: "H"): .home
            case UInt8(ascii: "F"): .end
            default: nil
            }
            return (key, 3)
        default:
            // ESC then anything else (Alt-key): dropped with the ESC.
            return (nil, 1)
        }
    }

    static func utf8Length(_ lead: UInt8) -> Int {
        switch lead {
        case 0x20..<0x80: 1
        case 0xC2..<0xE0: 2
        case 0xE0..<0xF0: 3
        case 0xF0..<0xF5: 4
        default: 0
        }
    }
}
