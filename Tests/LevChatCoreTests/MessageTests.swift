import Foundation
import LevChatTestSupport
import Testing
@testable import LevChatCore

@Suite struct FrameCodecTests {
    @Test func headerIsBigEndianLength() throws {
        #expect(FrameCodec.header(forPayloadLength: 0x0102) == [0, 0, 1, 2])
        #expect(FrameCodec.header(forPayloadLength: 65536) == [0, 1, 0, 0])
        #expect(try FrameCodec.encode([9, 9]) == [0, 0, 0, 2, 9, 9])
    }

    @Test func lengthsOverTheLimitOrZeroAreRefusedFromTheHeaderAlone() throws {
        #expect(try FrameCodec.payloadLength(fromHeader: 65536) == 65536)
        #expect(throws: FrameError.tooLarge(65537, limit: 65536)) { try FrameCodec.payloadLength(fromHeader: 65537) }
        #expect(throws: FrameError.tooLarge(Int(UInt32.max), limit: 65536)) { try FrameCodec.payloadLength(fromHeader: .max) }
        #expect(try FrameCodec.payloadLength(fromHeader: 1 << 20, maximum: FrameCodec.maximumRecordLength) == 1 << 20)
        #expect(throws: FrameError.tooLarge((1 << 20) + 1, limit: 1 << 20)) {
            try FrameCodec.payloadLength(fromHeader: (1 << 20) + 1, maximum: FrameCodec.maximumRecordLength)
        }
        #expect(throws: FrameError.empty) { try FrameCodec.payloadLength(fromHeader: 0) }
    }
}

@Suite struct MessageTests {
    static let node = LevChatCoreTests.node(9)
    static let member = testMember(node: node, name: "bob", ordinal: 2, endpoints: ["10.0.0.2:4000", "[fe80::1%lan0]:4000"])
    static let roster = RosterSnapshot(epoch: 3, host: node, members: [member])
    static let record = signedRecord(seq: 7, id: MessageID(node: node, seq: 2), from: "bob", text: "hi \u{1F600}\t\"q\"", time: 1_700_000_000_123)

    @Test(arguments: [
        WireMessage.hello(Hello(versions: ProtocolVersion.range, role: "member", auth: .code, nonce: nil)),
        .hello(Hello(versions: ProtocolVersion.range, role: "probe", auth: .secret, nonce: "bm9uY2U=")),
        .challenge(Challenge(version: 2, rid: "0011223344556677", auth: .code, sid: "s", ya: "y", nonce: nil)),
        .auth(Proof(proof: "p", yb: "y")), .authOK(Proof(proof: "q", yb: nil)),
        .error(ErrorInfo(code: .nameTaken, message: "taken")),
        .join(Join(node: node, name: "bob", listenPort: 4000, endpoints: [], lastSeq: 0)),
        .welcome(Welcome(you: member, roster: roster, historyCount: 1)),
        .history(HistoryChunk(records: [record])),
        .presence(Presence(event: .left, member: member, reason: "lost", time: 5, roster: roster)),
        .chat(signedChat(id: MessageID(node: node, seq: 1), name: "bob", text: "hello")),
        .chat(signedChat(id: MessageID(node: node, seq: 2), name: "bob", text: "waves", kind: .action)),
        .msg(record), .ping(Ping(lastSeq: 9)), .bye(Bye(reason: "quit")),
        .redirect(Redirect(endpoints: ["10.0.0.1:7000"])),
    ])
    func everyMessageRoundTrips(message: WireMessage) throws {
        #expect(try WireMessage.decode(message.encoded()) == message)
    }

    /// The binary forms, for random fields of every length they allow: each decodes to itself from
    /// an array and from an opened record's `Data` alike, no strict prefix of one decodes, nor one
    /// with a byte after it, and any byte changed gives the same answer from both entry points.
    @Test func binaryMessagesDecodeExactlyTheirOwnBytes() throws {
        var random = SplitMix(seed: 4)
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }
        func text(_ maximum: Int) -> String {
            let scalars = ["a", "Z", "é", "\u{1F600}", "中", " ", "\t", "\""]
            var out = ""
            while out.utf8.count < Int.random(in: 0...maximum, using: &random) {
                let next = scalars.randomElement(using: &random)!
                if out.utf8.count + next.utf8.count > maximum { break }
                out += next
            }
            return out
        }
        func decodeBoth(_ encoded: [UInt8]) -> (Result<WireMessage, MessageError>, Result<WireMessage, MessageError>) {
            (Result { () throws(MessageError) in try WireMessage.decode(encoded) },
             Result { () throws(MessageError) in try WireMessage.decode(Data(encoded)) })
        }
        for round in 0..<300 {
            let node = NodeID(hex: bytes(16).hexString)!
            let seq = Int.random(in: 0...(1 << 62), using: &random)
            let chat = Chat(id: MessageID(node: node, seq: seq), name: text(round % 7 == 0 ? 255 : 40),
                            text: text(round % 11 == 0 ? 3000 : 200), kind: [nil, .action, .offer].randomElement(using: &random)!,
                            sig: Base64.encode(bytes(64)))
            let record = ChatRecord(seq: Int.random(in: 0...(1 << 62), using: &random), id: chat.id, from: chat.name, text: chat.text,
                                    time: Int64.random(in: 0...WireRanges.latestTime, using: &random), late: Bool.random(using: &random) ? true : nil,
                                    kind: chat.kind, key: Base64.encode(bytes(32)), sig: chat.sig)
            let ping = WireMessage.ping(Ping(lastSeq: Int.random(in: 0...(1 << 62), using: &random)))
            for message in [WireMessage.chat(chat), .msg(record), ping] {
                let encoded = message.encoded()
                #expect(encoded[0] != UInt8(ascii: "{"))
                let (fromArray, fromData) = decodeBoth(encoded)
                #expect(try fromArray.get() == message)
                #expect(try fromData.get() == message)
                let cut = Int.random(in: 0..<encoded.count, using: &random)
                #expect(throws: MessageError.self) { try WireMessage.decode(Array(encoded.prefix(cut))) }
                #expect(throws: MessageError.self) { try WireMessage.decode(Data(encoded + [0])) }
                var changed = encoded
                changed[Int.random(in: 0..<changed.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                let (a, b) = decodeBoth(changed)
                #expect(a == b)
            }
        }
    }

    /// FuzzMessages' crash `04 00 00 00`: a `data` message decodes, and its JSON form (logs, tests)
    /// is an object with its bytes in base64, not a trap in JSONEncoder; it reads back as an
    /// unknown type, since `data` travels only in binary.
    @Test func dataHasAJSONFormThatDoesNotTrap() throws {
        let message = try WireMessage.decode([4, 0, 0, 0])
        #expect(message == .data([0, 0, 0]))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(message.jsonEncoded())) as? [String: String])
        #expect(object == ["type": "data", "bytes": "AAAA"])
        #expect(try WireMessage.decode(message.jsonEncoded()) == .unknown("data"))
        #expect(message.encoded() == [4, 0, 0, 0])
    }

    @Test func unknownTypesAndFieldsAreIgnored() throws {
        #expect(try WireMessage.decode(Array(#"{"type":"sticker","id":3}"#.utf8)) == .unknown("sticker"))
        let withExtra = #"{"type":"ping","lastSeq":4,"future":{"x":[1,2]}}"#
        #expect(try WireMessage.decode(Array(withExtra.utf8)) == .ping(Ping(lastSeq: 4)))
    }

    @Test func malformedPayloadsAreErrorsNotCrashes() {
        for bad in ["", "[]", "{\"type\":5}", "{\"type\":\"chat\"}", "{\"type\":\"chat\",\"id\":{\"node\":\"zz\",\"seq\":1},\"text\":\"x\"}", "\u{0}\u{1}garbage"] {
            #expect(throws: MessageError.self) { try WireMessage.decode(Array(bad.utf8)) }
        }
        let invalidUTF8: [UInt8] = Array(#"{"type":"chat","id":{"node":"00112233445566778899aabbccddeeff","seq":1},"text":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8)
        #expect(throws: MessageError.self) { try WireMessage.decode(invalidUTF8) }
    }

    @Test func endpointsParseAndFormat() {
        #expect(Endpoint.parse("10.0.0.1:7000")! == ("10.0.0.1", 7000))
        #expect(Endpoint.parse("[fe80::1%lan0]:7000")! == ("fe80::1%lan0", 7000))
        #expect(Endpoint.parse("localhost:1")! == ("localhost", 1))
        #expect(Endpoint.parse("10.0.0.1") == nil)
        #expect(Endpoint.parse("fe80::1:7000") == nil)
        #expect(Endpoint.parse("h:0") == nil)
        #expect(Endpoint.parse("h:70000") == nil)
        #expect(Endpoint.format(host: "::1", port: 5) == "[::1]:5")
    }
}

@Suite struct TextRulesTests {
    @Test func controlCharactersAreEscapedTabsKept() {
        #expect(DisplayText.sanitize("a\tb") == "a\tb")
        #expect(DisplayText.sanitize("\u{1B}[2Jx") == "\\x1B[2Jx")
        #expect(DisplayText.sanitize("bell\u{07}") == "bell\\x07")
        #expect(DisplayText.sanitize("\u{202E}evil") == "\\u{202E}evil")
        #expect(DisplayText.sanitize("caf\u{E9} \u{1F600}") == "caf\u{E9} \u{1F600}")
    }

    @Test func namesAreOneToThirtyTwoPrintableCharacters() throws {
        #expect(try NameRule.validate("  alice ") == "alice")
        #expect(try NameRule.validate(String(repeating: "\u{E9}", count: 32)).count == 32)
        #expect(throws: NameError.empty) { try NameRule.validate("   ") }
        #expect(throws: NameError.tooLong(33)) { try NameRule.validate(String(repeating: "a", count: 33)) }
        #expect(throws: NameError.unprintable) { try NameRule.validate("a\u{1B}b") }
    }

    @Test(arguments: [
        ("hello", InputLine.say("hello")), ("/who", .who), ("/WHO", .who), ("/help", .help),
        ("/quit", .quit), ("/exit now", .quit), ("//slash", .say("/slash")), ("   ", .empty),
        ("/dance", .unknownCommand("dance")),
    ])
    func inputLinesParse(line: String, expected: InputLine) {
        #expect(InputLine(parsing: line) == expected)
    }
}

/// Keys, signatures and ids as text: RFC 4648's vectors byte for byte, and for every length up to
/// 200 and random bytes, the same text as Foundation's encoder and a round trip.
@Suite struct TextEncodingTests {
    @Test func base64MatchesRFC4648() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64.encode(Array(plain.utf8)) == encoded)
            #expect(Base64.decode(encoded) == Array(plain.utf8))
        }
    }

    @Test func base64AgreesWithFoundationForEveryLength() {
        var random = SplitMix(seed: 18)
        for length in 0...200 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let encoded = Base64.encode(bytes)
            #expect(encoded == Data(bytes).base64EncodedString(), "length \(length)")
            #expect(Base64.decode(encoded) == bytes, "length \(length)")
        }
    }

    /// Any text at all, from the alphabet, padding and a stranger: the decoder accepts exactly the
    /// canonical encodings (its answer encodes back to the same text) and agrees with Foundation's
    /// decoder wherever that one accepts canonical text. Bytes where they lie encode the same.
    @Test func base64DecodesExactlyTheCanonicalTexts() {
        var random = SplitMix(seed: 19)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=!")
        var accepted = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...12, using: &random)
            // Mostly alphabet, so that many are accepted; the tail often padding.
            let text = String((0..<length).map { i in
                i >= length - 2 && Bool.random(using: &random) ? "=" : alphabet[Int.random(in: 0..<(Bool.random(using: &random) ? 64 : alphabet.count), using: &random)]
            })
            guard let bytes = Base64.decode(text) else {
                if let data = Data(base64Encoded: text) { #expect(data.base64EncodedString() != text, "\(text)") }
                continue
            }
            accepted += 1
            #expect(Base64.encode(bytes) == text, "\(text)")
            #expect(Data(base64Encoded: text).map(Array.init) == bytes, "\(text)")
            #expect(bytes.withUnsafeBytes { Base64.encode($0) } == text)
        }
        #expect(accepted > 1000)
    }

    @Test func hexIsTwoLowerCaseDigitsPerByte() {
        let all = (0...255).map { UInt8($0) }
        let reference = all.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
        }.joined()
        #expect(all.hexString == reference)
        #expect(all[...].hexString == reference)
        #expect([UInt8]().hexString == "")
        #expect(AnySequence(all).hexString == reference)
    }

    /// Hex back to bytes: every byte in both cases, and nothing else (odd lengths, any other
    /// character in either place of a pair).
    @Test func hexDecodesEveryByteAndNothingElse() {
        let all = (0...255).map { UInt8($0) }
        #expect(HexBytes.decode(all.hexString) == all)
        #expect(HexBytes.decode(all.hexString.uppercased()) == all)
        #expect(HexBytes.decode("") == [])
        for character in (0...127).map({ Character(Unicode.Scalar(UInt8($0))) }) + ["é"] where !"0123456789abcdefABCDEF".contains(character) {
            #expect(HexBytes.decode("0\(character)") == nil)
            #expect(HexBytes.decode("\(character)0") == nil)
            #expect(HexBytes.decode("00\(character)") == nil)
        }
    }
}
