import Crypto
@testable import LevChatCore
import Testing

/// Broadcast records (sealed once for the room) and the binary messages of the relay path
/// (Docs/PROTOCOL.md, "Records" and "Binary messages").
@Suite struct BroadcastRecordTests {
    let host = node(1)

    @Test func aBroadcastOpensForEveryMemberOfThatEpochOnly() throws {
        var sealer = BroadcastSealer(grant: testGrant, epoch: 3, host: host)
        let record = try sealer.seal(Array("to everyone".utf8))
        #expect(record[0] == RecordKind.broadcast.rawValue && record[1..<9].allSatisfy { $0 == 0 })
        #expect(record.count == "to everyone".utf8.count + BroadcastSealer.overhead)
        for _ in 0..<3 {
            var member = BroadcastOpener(grant: testGrant, epoch: 3, host: host)
            #expect(try member.open(record) == Array("to everyone".utf8))
        }
        // Another epoch, another host or another room: another key.
        var otherEpoch = BroadcastOpener(grant: testGrant, epoch: 4, host: host)
        #expect(throws: RecordError.authenticationFailed) { try otherEpoch.open(record) }
        var otherHost = BroadcastOpener(grant: testGrant, epoch: 3, host: node(2))
        #expect(throws: RecordError.authenticationFailed) { try otherHost.open(record) }
        let otherRoom = RoomGrant(roomID: testGrant.roomID, secret: Array(repeating: 8, count: 32))!
        var outsider = BroadcastOpener(grant: otherRoom, epoch: 3, host: host)
        #expect(throws: RecordError.authenticationFailed) { try outsider.open(record) }
    }

    @Test func countersOnlyRise() throws {
        var sealer = BroadcastSealer(grant: testGrant, epoch: 1, host: host)
        let first = try sealer.seal([1])
        let second = try sealer.seal([2])
        let third = try sealer.seal([3])
        var member = BroadcastOpener(grant: testGrant, epoch: 1, host: host)
        #expect(try member.open(second) == [2])  // a member may join between two broadcasts
        #expect(throws: RecordError.staleCounter(0, last: 1)) { try member.open(first) }
        #expect(throws: RecordError.staleCounter(1, last: 1)) { try member.open(second) }  // replayed
        #expect(try member.open(third) == [3])
    }

    @Test func theEpochAndCounterAreAuthenticated() throws {
        var sealer = BroadcastSealer(grant: testGrant, epoch: 1, host: host)
        _ = try sealer.seal([0])
        var record = try sealer.seal(Array("x".utf8))
        // A counter moved forward no longer matches the associated data (or the nonce).
        record[8] = 9
        var member = BroadcastOpener(grant: testGrant, epoch: 1, host: host)
        #expect(throws: RecordError.authenticationFailed) { try member.open(record) }
        // Sealed under this key but with another epoch in the associated data.
        let key = BroadcastKey.derive(grant: testGrant, epoch: 1, host: host)
        let nonce = try ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12))
        let forged = try ChaChaPoly.seal([1, 2, 3], using: key, nonce: nonce, authenticating: [RecordKind.broadcast.rawValue] + BigEndian.bytes(2) + BigEndian.bytes(0))
        var fresh = BroadcastOpener(grant: testGrant, epoch: 1, host: host)
        #expect(throws: RecordError.authenticationFailed) {
            try fresh.open([1] + [UInt8](repeating: 0, count: 8) + Array(forged.ciphertext) + Array(forged.tag))
        }
        #expect(throws: RecordError.unknownKind(0)) { try fresh.open([0] + [UInt8](repeating: 0, count: 30)) }
        #expect(throws: RecordError.tooShort) { try fresh.open([1, 0, 0]) }
    }

    @Test func theKeyIsHKDFOverTheDocumentedInfo() {
        let grant = testGrant.ratcheted(to: 3)!
        var info = Array("levchat/3/broadcast".utf8) + testGrant.roomID.bytes
        info += [0, 0, 0, 0, 0, 0, 0, 3] + [0, 0, 0, 0, 0, 0, 0, 5] + host.bytes
        let expected = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: grant.secret), info: info, outputByteCount: 32)
        #expect(BroadcastKey.derive(grant: grant, epoch: 5, host: host) == expected)
    }
}

@Suite struct BinaryMessageTests {
    let chat = signedChat(id: MessageID(node: node(2), seq: 7), name: "bob", text: "héllo 😀")
    var record: ChatRecord {
        ChatRecord(seq: 42, id: chat.id, from: "bob", text: chat.text, time: 1_700_000_000_123, late: true,
                   key: publicKey(of: node(2)), sig: chat.sig)
    }

    @Test func chatMsgAndPingRoundTrip() throws {
        for message in [WireMessage.chat(chat), .msg(record), .ping(Ping(lastSeq: 99)),
                        .chat(signedChat(id: MessageID(node: node(3), seq: 1), name: "carol", text: "waves", kind: .action))] {
            let bytes = message.encoded()
            #expect(bytes.first != UInt8(ascii: "{"), "\(message.typeName) is binary")
            #expect(try WireMessage.decode(bytes) == message)
            // The JSON form still reads back to the same message.
            #expect(try WireMessage.decode(message.jsonEncoded()) == message)
        }
    }

    @Test func theLayoutIsAsDocumented() throws {
        let bytes = WireMessage.chat(chat).encoded()
        let text = Array("héllo 😀".utf8)
        #expect(bytes.count == 1 + 16 + 8 + 1 + 1 + 3 + 2 + text.count + 64)
        #expect(bytes[0] == 1 && Array(bytes[1..<17]) == node(2).bytes)
        #expect(Array(bytes[17..<25]) == [0, 0, 0, 0, 0, 0, 0, 7] && bytes[25] == 0)
        #expect(bytes[26] == 3 && Array(bytes[27..<30]) == Array("bob".utf8))
        #expect(Array(bytes[30..<32]) == [0, UInt8(text.count)] && Array(bytes[32..<32 + text.count]) == text)
        #expect(Array(bytes[(32 + text.count)...]) == Base64.decode(chat.sig)!)

        // msg: the host's fields, then the sender's chat fields byte for byte.
        let msg = WireMessage.msg(record).encoded()
        #expect(msg[0] == 2 && Array(msg[1..<9]) == [0, 0, 0, 0, 0, 0, 0, 42])
        #expect(msg[17] == 1)
        #expect(Array(msg[18..<50]) == identity(of: node(2)).publicKey)
        #expect(Array(msg[50...]) == Array(bytes[1...]))
        #expect(WireMessage.ping(Ping(lastSeq: 258)).encoded() == [3, 0, 0, 0, 0, 0, 0, 1, 2])
    }

    @Test func everyCutPointIsMalformed() {
        for message in [WireMessage.chat(chat), .msg(record), .ping(Ping(lastSeq: 1))] {
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: MessageError.self, "\(message.typeName) cut at \(cut)") { try WireMessage.decode(Array(bytes[..<cut])) }
            }
            #expect(throws: MessageError.self) { try WireMessage.decode(bytes + [0]) }  // trailing bytes
        }
    }

    @Test func lyingLengthsKindsAndTextAreMalformed() {
        let bytes = WireMessage.chat(chat).encoded()
        var longer = bytes
        longer[31] += 1  // text length one more than there is
        var shorter = bytes
        shorter[31] -= 1
        var kind = bytes
        kind[25] = 9
        var notUTF8 = bytes
        notUTF8[32] = 0xFF
        var msg = WireMessage.msg(record).encoded()
        msg[50 + 25] = 200  // a name longer than the message
        var flags = WireMessage.msg(record).encoded()
        flags[17] = 4
        var seq = WireMessage.ping(Ping(lastSeq: 1)).encoded()
        seq[1] = 0x80  // above Int.max
        for (what, bad) in [("longer", longer), ("shorter", shorter), ("kind", kind), ("utf8", notUTF8), ("name", msg),
                            ("flags", flags), ("seq", seq), ("type", [9, 0, 0])] {
            #expect(throws: MessageError.self, "\(what)") { try WireMessage.decode(bad) }
        }
    }

    @Test func base64IsStrictAndRoundTrips() {
        for n in 0..<70 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64.encode(bytes)
            #expect(Base64.decode(text) == bytes)
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy" && Base64.encode(Array("fo".utf8)) == "Zm8=")
        for bad in ["Zm9", "Zm9v!mFy", "Zm=v", "Zm9=", "====", "Zh=="] { #expect(Base64.decode(bad) == nil, "\(bad)") }
    }
}

/// Presence carries deltas; a member applying them keeps the host's roster exactly.
@Suite struct RosterDeltaTests {
    @Test func aMemberFollowsTheHostsRosterThroughJoinsLeavesAndRenames() throws {
        let clock = FakeClock()
        var room = HostRoom(host: node(1), name: "alice", endpoints: ["10.0.0.1:7000"])
        var bob = MemberSession(me: node(2), name: "bob", now: clock.now)
        _ = bob.connect(listenPort: 1, endpoints: [], now: clock.now)
        /// Everything the host sends on bob's link (#2), to bob.
        func deliver(_ actions: [HostRoom.Action]) {
            for action in actions {
                switch action {
                case .send(ConnectionID(2), let message): _ = bob.received(message, now: clock.now)
                case .broadcast(let message, let to) where to.contains(ConnectionID(2)): _ = bob.received(message, now: clock.now)
                default: break
                }
            }
        }
        func join(_ n: Int, _ name: String) {
            room.connectionOpened(ConnectionID(UInt64(n)), now: clock.now)
            deliver(room.received(.join(Join(node: node(n), name: name, listenPort: 4000, endpoints: [], lastSeq: 0)), from: ConnectionID(UInt64(n)),
                                  observedHost: "10.0.0.\(n)", now: clock.now))
        }
        join(2, "bob")
        for (n, name) in [(3, "carol"), (4, "dave"), (5, "erin")] { join(n, name) }
        #expect(bob.roster == room.roster)
        deliver(room.received(.bye(Bye(reason: "quit")), from: ConnectionID(4), observedHost: "10.0.0.4", now: clock.now))
        deliver(room.received(.nick(Rename(node: node(3), name: "caroline")), from: ConnectionID(3), observedHost: "10.0.0.3", now: clock.now))
        deliver(room.connectionClosed(ConnectionID(5), now: clock.now))
        join(6, "frank")
        #expect(bob.roster == room.roster)
        #expect(bob.roster?.members.map(\.name) == ["alice", "bob", "caroline", "frank"])
    }

    @Test func aJoinInARoomOf500IsSmall() {
        var room = HostRoom(host: node(0), name: "host", endpoints: ["10.0.0.1:7000"], limits: RoomLimits(maxMembers: 512))
        let clock = FakeClock()
        var last: [HostRoom.Action] = []
        for n in 1...499 {
            let id = ConnectionID(UInt64(n))
            room.connectionOpened(id, now: clock.now)
            let joiner = PeerIdentity()
            let key = Base64.encode(joiner.publicKey)
            let node = joiner.node
            let claim = joiner.claimName("m\(n)", room: testGrant.roomID, counter: 1)
            last = room.received(.join(Join(node: node, name: "m\(n)", listenPort: 4000, endpoints: ["10.0.1.\(n % 250):4000"], lastSeq: 0,
                                            key: key, claim: claim, proof: joiner.proveLink(room: testGrant.roomID, binding: []))),
                                 from: id, observedHost: "10.0.1.\(n % 250)", now: clock.now)
        }
        #expect(room.roster.members.count == 500)
        // The rekey and the presence, each encoded once for all 499.
        #expect(last.filter { if case .broadcast = $0 { true } else { false } }.count == 2)
        #expect(last.filter { if case .send(_, .welcome) = $0 { true } else { false } }.count == 1)
        for action in last {
            switch action {
            case .broadcast(let message, let to):
                #expect(to.count == 498 && message.encoded().count < 1024, "a presence, not a roster")
            case .send(_, let message):
                // The welcome holds the whole roster, within one record.
                #expect(message.encoded().count < FrameCodec.maximumRecordLength && message.encoded().count > 64 * 1024)
            default: break
            }
        }
    }
}
