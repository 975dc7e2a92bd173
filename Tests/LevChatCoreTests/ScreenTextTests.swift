import Foundation
import LevChatTestSupport
import Testing
@testable import LevChatCore

/// The one gate to the terminal (`ScreenText`, `JSONText`): whatever a string holds, what it
/// becomes on the way to the screen holds no control, C1 or bidi character, and JSON gives the
/// string back intact.
@Suite struct ScreenTextTests {
    /// Strings drawn from every plane's awkward corners: C0, DEL and C1 controls, bidi and
    /// zero-width characters, surrogate-adjacent and astral scalars, and plain text.
    static func hostileString(_ random: inout SplitMix) -> String {
        let ranges: [ClosedRange<UInt32>] = [0x00...0x1F, 0x7F...0x9F, 0x200B...0x200F, 0x202A...0x202E, 0x2066...0x2069,
                                             0x2028...0x2029, 0x20...0x7E, 0xA0...0x2FF, 0xD7F0...0xD7FF, 0xE000...0xE0FF,
                                             0xFFF0...0xFFFF, 0x1F300...0x1F6FF, 0x10FFF0...0x10FFFF]
        var out = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...40, using: &random) {
            let range = ranges[Int.random(in: 0..<ranges.count, using: &random)]
            if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &random)) { out.append(scalar) }
        }
        return String(out)
    }

    @Test func nothingInterpolatedReachesTheScreenRaw() {
        var random = SplitMix(seed: 2026)
        for _ in 0..<5_000 {
            let evil = Self.hostileString(&random)
            let line: ScreenText = "* \(evil) has entered the room"
            #expect(!line.rendered.unicodeScalars.contains { DisplayText.isUnsafe($0) && $0 != "\t" }, "\(Array(evil.unicodeScalars))")
            #expect(!ScreenText(escaping: evil).rendered.unicodeScalars.contains(where: DisplayText.isUnsafe))
        }
    }

    @Test func jsonLinesAreSafeOnATerminalAndGiveTheStringBack() throws {
        var random = SplitMix(seed: 7)
        for _ in 0..<2_000 {
            let evil = Self.hostileString(&random)
            let text = ScreenText(json: JSONText().string("type", "message").string("text", evil)).rendered
            #expect(!text.unicodeScalars.contains { DisplayText.isUnsafe($0) || $0 == "\t" })
            let decoded = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
            #expect(decoded?["text"] == evil)
        }
    }

    /// An object built field by field in one string is the object its fields make, whatever they
    /// hold: for random chains of every kind of field, nested objects and arrays included, the text
    /// is `{` + each `"key":value` (keys and strings through `quote`) joined by commas + `}`, and
    /// JSON reads every value back.
    @Test func objectsAreTheirFieldsInOrder() throws {
        var random = SplitMix(seed: 12)
        for _ in 0..<1_000 {
            var built = JSONText(), fields: [String] = [], values: [String: String] = [:]
            for i in 0..<Int.random(in: 0...8, using: &random) {
                let key = "k\(i)" + (Bool.random(using: &random) ? Self.hostileString(&random) : "")
                switch Int.random(in: 0..<6, using: &random) {
                case 0:
                    let value = Self.hostileString(&random)
                    built = built.string(key, value); fields.append(JSONText.quote(key) + ":" + JSONText.quote(value)); values[key] = value
                case 1:
                    let value = Int.random(in: Int.min...Int.max, using: &random)
                    built = built.int(key, value); fields.append(JSONText.quote(key) + ":\(value)")
                case 2:
                    let value: String? = Bool.random(using: &random) ? nil : Self.hostileString(&random)
                    built = built.string(key, value); fields.append(JSONText.quote(key) + ":" + (value.map(JSONText.quote) ?? "null"))
                    if let value { values[key] = value }
                case 3:
                    let value = Bool.random(using: &random)
                    built = built.bool(key, value); fields.append(JSONText.quote(key) + ":\(value)")
                case 4:
                    let inner = JSONText().string("a", "b").int("n", 1)
                    built = built.object(key, inner); fields.append(JSONText.quote(key) + ":{\"a\":\"b\",\"n\":1}")
                default:
                    let items = (0..<Int.random(in: 0...3, using: &random)).map { JSONText().int("i", $0) }
                    built = built.array(key, items)
                    fields.append(JSONText.quote(key) + ":[" + items.indices.map { "{\"i\":\($0)}" }.joined(separator: ",") + "]")
                }
            }
            #expect(built.text == "{" + fields.joined(separator: ",") + "}")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(built.text.utf8)) as? [String: Any])
            for (key, value) in values { #expect(object[key] as? String == value) }
        }
    }

    /// `quote`'s shortcut for printable ASCII gives what the scalar-by-scalar path gives: every
    /// ASCII character alone, and random ASCII strings.
    @Test func quotingPlainASCIIByTheShortcutChangesNothing() {
        for value in UInt8(0)...UInt8(0x7F) {
            let one = String(UnicodeScalar(value))
            #expect(JSONText.quote(one) == JSONText.quoteEachScalar(one), "byte \(value)")
        }
        var random = SplitMix(seed: 11)
        for _ in 0..<5_000 {
            let bytes = (0..<Int.random(in: 0...60, using: &random)).map { _ in
                // Mostly printable, sometimes anything ASCII.
                UInt8.random(in: Bool.random(using: &random) ? 0x20...0x7E : 0x00...0x7F, using: &random)
            }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(JSONText.quote(text) == JSONText.quoteEachScalar(text), "\(bytes)")
        }
    }

    @Test func stylesAreThisProgramsAndOnlyWhenAsked() {
        let name: ScreenText = "\("bob\u{1B}[2J")"
        #expect(name.rendered == "bob\\x1B[2J")
        #expect(ScreenText.styled(name, "1;31").rendered == "\u{1B}[1;31mbob\\x1B[2J\u{1B}[0m")
        #expect(ScreenText.styled(name, "1;31", enabled: false) == name)
        #expect(ScreenText.colored("x", palette: 999, bold: true).rendered == "\u{1B}[1;38;5;255mx\u{1B}[0m")
    }
}
