import LevChatTestSupport
import Testing
@testable import LevChatCore

@Suite struct RoomCodeTests {
    @Test func randomCodesAreSixCrockfordCharactersShownWithADash() {
        for _ in 0..<200 {
            let code = RoomCode.random()
            #expect(code.canonical.count == 6)
            #expect(code.canonical.allSatisfy { RoomCode.alphabet.contains($0) })
            let shown = code.description
            #expect(shown.count == 7 && Array(shown)[3] == "-")
        }
    }

    @Test func randomCodesDiffer() {
        let codes = Set((0..<1000).map { _ in RoomCode.random() })
        #expect(codes.count > 990)
    }

    @Test(arguments: [
        ("7KQ-M4X", "7KQM4X"), ("7kq m4x", "7KQM4X"), (" 7kqm4x ", "7KQM4X"),
        ("OIL-ABC", "011ABC"), ("oil abc", "011ABC"), ("7K Q-M 4X", "7KQM4X"),
    ])
    func parsingForgivesCaseSeparatorsAndLookalikes(input: String, canonical: String) throws {
        #expect(try RoomCode(parsing: input).canonical == canonical)
    }

    /// A code as it reaches someone through a chat program, a document or a web page, and is
    /// typed or pasted back: for random codes of every length, any case, look-alike letters,
    /// full-width forms, dashes and spaces of every kind (or none) between and inside the groups,
    /// invisible format characters, quotes, brackets or a full stop around it, and the command it
    /// was shown in before it. Each reads as the code.
    @Test func aCodeReadsTheSameHoweverItWasPasted() throws {
        var random = SplitMix(seed: 0x636F_6465)
        let separators = ["", "-", " ", "  ", "\u{2010}", "\u{2011}", "\u{2013}", "\u{2014}", "\u{2212}", "\u{00A0}", "\u{202F}",
                          "\u{3000}", "\u{00AD}", "\u{200B}", "\t"]
        let wrappers: [(String, String)] = [("", ""), ("\"", "\""), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("(", ")"),
                                            ("[", "]"), ("<", ">"), ("`", "`"), ("", "."), ("", ","), ("", "!"), ("“", ".”")]
        let commands = ["", "levchat-peer join ", "$ levchat-peer join ", "LEVCHAT-PEER JOIN ", "join "]
        for _ in 0..<3_000 {
            let code = RoomCode.random(length: RoomCode.lengths.randomElement(using: &random)!, using: &random)
            var typed = ""
            for (i, ch) in code.canonical.enumerated() {
                if i > 0 && (i % 3 == 0 || Int.random(in: 0..<8, using: &random) == 0) {
                    typed += separators.randomElement(using: &random)!
                }
                var shown = String(ch)
                switch Int.random(in: 0..<6, using: &random) {
                case 0: shown = shown.lowercased()
                case 1: shown = ch == "0" ? "O" : ch == "1" ? ["I", "l", "L", "i"].randomElement(using: &random)! : shown
                case 2: shown = String(Character(Unicode.Scalar(ch.unicodeScalars.first!.value + 0xFEE0)!))  // full width
                default: break
                }
                typed += shown
            }
            let (open, close) = wrappers.randomElement(using: &random)!
            let text = commands.randomElement(using: &random)! + open + typed + close
            #expect((try? RoomCode(parsing: text)) == code, "\(text.debugDescription) for \(code)")
        }
    }

    /// What is not a code stays an error: a character inside it, too few or too many, and an
    /// escape in the error shown escaped.
    @Test func whatIsNotACodeIsStillAnError() {
        #expect(throws: RoomCodeError.self) { try RoomCode(parsing: "7KQ.M4X") }
        #expect(throws: RoomCodeError.self) { try RoomCode(parsing: "levchat-peer join 7KQ-M4") }
        #expect(throws: RoomCodeError.self) { try RoomCode(parsing: "\"7KQ-M4X-\"A") }
        #expect(throws: RoomCodeError.self) { try RoomCode(parsing: "join") }
        #expect(throws: RoomCodeError.self) { try RoomCode(parsing: "") }
        do {
            _ = try RoomCode(parsing: "AB\u{1B}[31mC")
            Issue.record("an escape read as part of a code")
        } catch {
            #expect(!error.description.contains("\u{1B}"), "\(error.description.debugDescription)")
        }
    }

    /// `create --code-length`: 9 or 12 characters, shown in groups of three, read back the same.
    @Test(arguments: [9, 12])
    func longerCodesAreGroupsOfThree(length: Int) throws {
        for _ in 0..<50 {
            let code = RoomCode.random(length: length)
            #expect(code.canonical.count == length)
            #expect(code.description.split(separator: "-").map(\.count) == Array(repeating: 3, count: length / 3))
            #expect(try RoomCode(parsing: code.description.lowercased()) == code)
        }
        #expect(throws: RoomCodeError.wrongLength(7)) { try RoomCode(parsing: "7KQ-M4X-A") }
        #expect(throws: RoomCodeError.wrongLength(13)) { try RoomCode(parsing: "7KQ-M4X-ABC-DEF-G") }
    }

    @Test func parsingRejectsOtherCharactersWithASentence() {
        #expect(throws: RoomCodeError.invalidCharacter("U")) { try RoomCode(parsing: "7KQ-M4U") }
        #expect(throws: RoomCodeError.invalidCharacter("é")) { try RoomCode(parsing: "7KQ-M4é") }
        #expect(throws: RoomCodeError.wrongLength(5)) { try RoomCode(parsing: "7KQ-M4") }
        #expect(throws: RoomCodeError.wrongLength(0)) { try RoomCode(parsing: "") }
        #expect(RoomCodeError.wrongLength(7).description.contains("like 7KQ-M4X"))
    }
}
