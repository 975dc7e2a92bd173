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
