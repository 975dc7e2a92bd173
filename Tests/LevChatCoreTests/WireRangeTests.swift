import Testing
@testable import LevChatCore

/// Every number and count a peer sends is range-checked at decode (`WireRanges`).
@Suite struct WireRangeTests {
    static let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])

    static func withOrdinal(_ ordinal: Int) -> Member {
        var member = bob
        member.ordinal = ordinal
        return member
    }

    @Test(arguments: [
        WireMessage.ping(Ping(lastSeq: -1)),
        .ping(Ping(lastSeq: Int.min)),
        .presence(Presence(event: .joined, member: bob, reason: nil, time: -5)),
        .presence(Presence(event: .joined, member: bob, reason: nil, time: Int64.max)),
        .presence(Presence(event: .joined, member: withOrdinal(-3), reason: nil, time: 0)),
        .presence(Presence(event: .host, member: bob, reason: nil, time: 0,
                           roster: RosterSnapshot(epoch: Int.min, host: node(2), members: [bob]))),
        .presence(Presence(event: .host, member: bob, reason: nil, time: 0,
                           roster: RosterSnapshot(epoch: 2, host: node(2), members: Array(repeating: bob, count: 1025)))),
        .handover(Handover(epoch: -1, host: bob)),
        .join(Join(node: node(2), name: "bob", listenPort: 70_000, endpoints: [], lastSeq: 0)),
        .join(Join(node: node(2), name: "bob", listenPort: 1, endpoints: Array(repeating: "10.0.0.1:1", count: 17), lastSeq: 0)),
        .join(Join(node: node(2), name: "bob", listenPort: 1, endpoints: [String(repeating: "x", count: 81)], lastSeq: 0)),
        .resume(Resume(node: node(2), name: "bob", ordinal: 2, listenPort: 1, endpoints: [], lastSeq: Int.max, tail: [])),
        .msg(signedRecord(seq: 1, id: MessageID(node: node(2), seq: 1), from: "bob", text: "hi", time: 4_200_000_000_000)),
        .msg(signedRecord(seq: 1, id: MessageID(node: node(2), seq: 1), from: "bob", text: "hi", time: -1)),
        .redirect(Redirect(endpoints: [], epoch: -7)),
        .nick(Rename(name: "bob", claim: NameClaim(counter: -1, sig: ""))),
    ])
    func outOfRangeIsMalformed(message: WireMessage) {
        // Both forms: JSON carries any number; the binary form carries what its fields can.
        #expect(throws: MessageError.self) { try WireMessage.decode(message.jsonEncoded()) }
        if case .msg = message { #expect(throws: MessageError.self) { try WireMessage.decode(message.encoded()) } }
    }

    @Test func theLargestValidValuesPass() throws {
        let ping = WireMessage.ping(Ping(lastSeq: 1 << 62))
        #expect(try WireMessage.decode(ping.encoded()) == ping)
        let record = signedRecord(seq: 1 << 62, id: MessageID(node: node(2), seq: RunSequence.first(wallMillis: 4_102_444_800_000)),
                                  from: "bob", text: "late", time: 4_102_444_800_000)
        #expect(try WireMessage.decode(WireMessage.msg(record).encoded()) == .msg(record))
    }
}
