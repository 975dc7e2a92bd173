import Testing
@testable import LevChatCore
import LevChatTestSupport

@Suite struct FailureLimiterTests {
    var limiter = FailureLimiter()
    var now = Duration.zero

    @Test mutating func fiveFailuresInAMinuteBlockThatAddressOnly() {
        for _ in 0..<4 {
            #expect(limiter.recordFailure(from: "10.0.0.66", now: now) == nil)
            now += .seconds(10)
        }
        #expect(limiter.refusal(for: "10.0.0.66", now: now) == nil)
        #expect(limiter.recordFailure(from: "10.0.0.66", now: now) == .seconds(60))
        #expect(limiter.refusal(for: "10.0.0.66", now: now) == .seconds(60))
        #expect(limiter.refusal(for: "10.0.0.7", now: now) == nil)
        now += .seconds(59)
        #expect(limiter.refusal(for: "10.0.0.66", now: now) == .seconds(1))
        now += .seconds(1)
        #expect(limiter.refusal(for: "10.0.0.66", now: now) == nil)
    }

    /// Four a minute never make five in a minute, but they make ten in an hour: pacing does not
    /// get around the limit (issue 16's third attack).
    @Test mutating func failuresPacedUnderTheMinuteLimitStillBlockWithinTheHour() {
        var blockedAfter: Int?
        for n in 1...50 where blockedAfter == nil {
            if limiter.recordFailure(from: "10.0.0.66", now: now) != nil { blockedAfter = n }
            now += .seconds(15)
        }
        #expect(blockedAfter == 10)
        #expect(limiter.refusal(for: "10.0.0.66", now: now) != nil)
        // One wrong code an hour, a joiner's typo now and then, never blocks.
        for _ in 0..<50 {
            #expect(limiter.recordFailure(from: "10.0.0.67", now: now) == nil)
            now += .seconds(3600)
        }
    }

    @Test mutating func eachNewBlockIsTwiceTheLastUpToTheLongest() {
        var blocks: [Duration] = []
        for _ in 0..<8 {
            var started: Duration?
            while started == nil {
                started = limiter.recordFailure(from: "10.0.0.66", now: now)
                now += .milliseconds(1)
            }
            blocks.append(started!)
            now += started!
        }
        #expect(blocks == [60, 120, 240, 480, 960, 1920, 3600, 3600].map { Duration.seconds($0) })
    }

    @Test mutating func failuresWhileBlockedDoNotExtendTheBlock() {
        for _ in 0..<5 { _ = limiter.recordFailure(from: "a", now: now) }
        for _ in 0..<20 { #expect(limiter.recordFailure(from: "a", now: now + .seconds(1)) == nil) }
        #expect(limiter.refusal(for: "a", now: now + .seconds(61)) == nil)
    }

    @Test func memoryIsBoundedAndBlockedAddressesAreKept() {
        var policy = FailureLimiter.Policy()
        policy.maximumAddresses = 100
        var limiter = FailureLimiter(policy: policy)
        for _ in 0..<5 { _ = limiter.recordFailure(from: "blocked", now: .zero) }
        for i in 0..<1000 { _ = limiter.recordFailure(from: "10.0.\(i / 256).\(i % 256)", now: .milliseconds(i)) }
        #expect(limiter.trackedAddresses <= 100)
        #expect(limiter.refusal(for: "blocked", now: .seconds(1)) != nil)
    }
}

@Suite struct ChatSignatureTests {
    let alice = peer(1), bob = peer(2)
    let room = testGrant.roomID

    @Test func aSignedChatVerifiesWithItsSendersKeyOnly() {
        let chat = Chat(signedBy: alice, room: room, seq: 7, name: "alice", text: "hello \u{1F600}")
        #expect(chat.isSigned(room: room, key: publicKey(of: alice.node)))
        #expect(!chat.isSigned(room: room, key: publicKey(of: bob.node)))
        #expect(!chat.isSigned(room: RoomID.random(), key: publicKey(of: alice.node)))
    }

    @Test func everySignedFieldIsCovered() {
        let chat = Chat(signedBy: alice, room: room, seq: 7, name: "alice", text: "hello")
        let key = publicKey(of: alice.node)
        var text = chat; text.text = "hellO"
        var name = chat; name.name = "bob"
        var seq = chat; seq.id.seq = 8
        var node = chat; node.id.node = bob.node
        var kind = chat; kind.kind = .action
        var sig = chat; sig.sig = Base64.encode(Array(repeating: 0, count: 64))
        var short = chat; short.sig = "AAAA"
        // The name and the text are length-delimited: a character moved across the border fails.
        var border = chat; border.name = "aliceh"; border.text = "ello"
        for tampered in [text, name, border, seq, node, kind, sig, short] {
            #expect(!tampered.isSigned(room: room, key: key))
        }
    }

    @Test func aRecordCarriesTheSignatureThroughTheHostUnchanged() {
        let record = signedRecord(seq: 3, id: MessageID(node: alice.node, seq: 1), from: "alice", text: "hi", time: 5)
        #expect(ChatSignature.verify(record, room: room))
        // The host's additions (seq, time, late) are outside the signature; the name is not.
        var restamped = record
        restamped.seq = 99; restamped.time = 1; restamped.late = true
        #expect(ChatSignature.verify(restamped, room: room))
        var renamed = record
        renamed.from = "bob"
        #expect(!ChatSignature.verify(renamed, room: room))
        // A key that is not the sender's node fails even with a signature of its own.
        let forged = ChatRecord(seq: 3, id: record.id, from: "alice", text: "hi", time: 5, key: publicKey(of: bob.node),
                                sig: bob.signChat(room: room, id: record.id, kind: .text, name: "alice", text: "hi"))
        #expect(!ChatSignature.verify(forged, room: room))
    }

    @Test func theNodeIdIsTheHashOfTheKey() throws {
        #expect(PeerIdentity.node(for: alice.publicKey) == alice.node)
        #expect(PeerIdentity.node(for: Array(alice.publicKey.dropLast())) == nil)
        let again = try PeerIdentity(seed: [1] + Array(repeating: 0x5a, count: 31))
        #expect(again.node == alice.node)
    }

    @Test func theSignedBytesAreLaidOutAsDocumented() {
        let id = MessageID(node: NodeID(hex: "00112233445566778899aabbccddeeff")!, seq: 0x0102)
        let bytes = ChatSignature.signedBytes(room: RoomID(hex: "a0a1a2a3a4a5a6a7")!, id: id, kind: .action, name: "bo", text: "hi")
        #expect(bytes == Array("levchat/3/chat".utf8) + [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7]
                + [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
                + [0, 0, 0, 0, 0, 0, 0x01, 0x02] + [1] + [2] + Array("bo".utf8) + Array("hi".utf8))
    }
}

@Suite struct NameClaimTests {
    let alice = peer(1), bob = peer(2)
    let room = testGrant.roomID

    @Test func aClaimVerifiesForItsOwnNodeNameRoomAndKeyOnly() {
        let claim = alice.claimName("alice", room: room, counter: 3)
        let key = publicKey(of: alice.node)
        #expect(claim.verify(room: room, node: alice.node, name: "alice", key: key))
        #expect(!claim.verify(room: room, node: alice.node, name: "alicE", key: key))
        #expect(!claim.verify(room: RoomID.random(), node: alice.node, name: "alice", key: key))
        #expect(!claim.verify(room: room, node: bob.node, name: "alice", key: key))
        #expect(!claim.verify(room: room, node: alice.node, name: "alice", key: publicKey(of: bob.node)))
        var counter = claim; counter.counter = 4
        var negative = claim; negative.counter = -1
        #expect(!counter.verify(room: room, node: alice.node, name: "alice", key: key))
        #expect(!negative.verify(room: room, node: alice.node, name: "alice", key: key))
        // Bob's key claiming "alice" is bob's claim, for bob's node only.
        let bobs = bob.claimName("alice", room: room, counter: 3)
        #expect(!bobs.verify(room: room, node: alice.node, name: "alice", key: key))
    }

    @Test func theClaimedBytesAreLaidOutAsDocumented() {
        let bytes = NameClaim.signedBytes(room: RoomID(hex: "a0a1a2a3a4a5a6a7")!, node: NodeID(hex: "00112233445566778899aabbccddeeff")!,
                                          counter: 0x0102, name: "bo")
        #expect(bytes == Array("levchat/3/name".utf8) + [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7]
                + [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
                + [0, 0, 0, 0, 0, 0, 0x01, 0x02] + Array("bo".utf8))
    }
}

@Suite struct SignedRoomTests {
    var clock = FakeClock()

    @Test mutating func aMemberDropsARecordWhoseSignatureFailsAndSaysWhoItClaimedToBe() {
        var session = MemberSession(me: node(3), name: "carol", now: clock.now)
        let host = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let you = testMember(node: node(3), name: "carol", ordinal: 2, endpoints: [])
        _ = session.received(.welcome(Welcome(you: you, roster: RosterSnapshot(epoch: 1, host: host.node, members: [host, you]), historyCount: 0)),
                             now: clock.now)
        var forged = signedRecord(seq: 1, id: MessageID(node: node(1), seq: 1), from: "alice", text: "I said this", time: 0)
        forged.text = "I never said this"
        let actions = session.received(.msg(forged), now: clock.now)
        #expect(actions == [.show(.notice("dropped a message shown as from alice: its signature does not verify"))])
        #expect(session.log.lastSeq == 0)
        let honest = signedRecord(seq: 2, id: MessageID(node: node(1), seq: 2), from: "alice", text: "hello", time: 0)
        #expect(session.received(.msg(honest), now: clock.now) == [.show(.message(honest, replayed: false))])
    }

    /// The host checks no line's signature (bob's key signed his link when he joined, so a line
    /// on it is bob's own); a line whose signature fails is sequenced, and every member drops it.
    @Test mutating func aLineWithABadSignatureIsDroppedByEveryMemberNotTheHost() {
        var room = HostRoom(host: node(1), name: "alice", endpoints: [])
        room.connectionOpened(ConnectionID(1), now: clock.now)
        _ = room.received(.join(Join(node: node(2), name: "bob", listenPort: 0, endpoints: [], lastSeq: 0)), from: ConnectionID(1),
                          observedHost: "10.0.0.2", now: clock.now)
        var chat = signedChat(id: MessageID(node: node(2), seq: 1), text: "mine")
        chat.text = "altered"
        let actions = room.received(.chat(chat), from: ConnectionID(1), observedHost: "", now: clock.now)
        #expect(!actions.contains { if case .close = $0 { true } else { false } })
        #expect(room.log.lastSeq == 1)
        guard let record = room.log.history.last else {
            Issue.record("nothing sequenced")
            return
        }
        var carol = MemberSession(me: node(3), name: "carol", now: clock.now)
        _ = carol.connect(listenPort: 0, endpoints: [], now: clock.now)
        _ = carol.received(.welcome(Welcome(you: testMember(node: node(3), name: "carol", ordinal: 3, endpoints: []),
                                            roster: room.roster, historyCount: 0)), now: clock.now)
        #expect(carol.received(.msg(record), now: clock.now) == [.show(.notice("dropped a message shown as from bob: its signature does not verify"))])
    }

    @Test mutating func aJoinWhoseNodeIsNotItsKeysIsRefused() {
        var room = HostRoom(host: node(1), name: "alice", endpoints: [])
        room.connectionOpened(ConnectionID(1), now: clock.now)
        let join = Join(node: node(2), name: "eve", listenPort: 0, endpoints: [], lastSeq: 0, key: publicKey(of: node(4)),
                        claim: nameClaim(node(4), "eve"))
        let actions = room.received(.join(join), from: ConnectionID(1), observedHost: "", now: clock.now)
        #expect(actions.first == .send(ConnectionID(1), .error(ErrorInfo(code: .protocolError, message: "node id is not derived from the public key"))))
        #expect(room.members.count == 1)
    }

    @Test mutating func theWelcomeHandsOverTheRoomSecretAndTheMemberKeepsIt() {
        var room = HostRoom(host: node(1), name: "alice", endpoints: [])
        room.connectionOpened(ConnectionID(1), now: clock.now)
        let actions = room.received(.join(Join(node: node(2), name: "bob", listenPort: 0, endpoints: [], lastSeq: 0)),
                                    from: ConnectionID(1), observedHost: "", now: clock.now)
        guard case .send(_, .welcome(let welcome))? = actions.first(where: { if case .send(_, .welcome) = $0 { true } else { false } })
        else { Issue.record("no welcome"); return }
        // The secret one generation on from the room's (every join moves it).
        #expect(welcome.grant == testGrant.ratcheted(to: 1) && welcome.grant != testGrant)
        var session = MemberSession(me: node(2), name: "bob", now: clock.now)
        _ = session.received(.welcome(welcome), now: clock.now)
        #expect(session.grant == testGrant.ratcheted(to: 1))
    }

    @Test mutating func linesTypedBeforeTheWelcomeAreSignedThenSent() {
        var session = MemberSession(me: node(2), name: "bob", now: clock.now)
        _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
        #expect(session.post("early", now: clock.now) == [.show(.pending(MessageID(node: node(2), seq: 1), text: "early", kind: .text))])
        #expect(session.unconfirmedCount == 1)
        let host = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let you = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
        let actions = session.received(.welcome(Welcome(you: you, roster: RosterSnapshot(epoch: 1, host: host.node, members: [host, you]), historyCount: 0)),
                                       now: clock.now)
        guard let sent = actions.compactMap({ if case .send(.chat(let c)) = $0 { c } else { nil } }).first else {
            Issue.record("the early line was not sent: \(actions)")
            return
        }
        #expect(sent.text == "early" && sent.isSigned(room: testGrant.roomID, key: publicKey(of: node(2))))
    }
}

/// A member's proof that a link is its own (`LinkProof`): it holds for its key, room, link and
/// node only; change any of them, or any byte of it, and it proves nothing.
@Suite struct LinkProofTests {
    @Test func aLinkProofHoldsForItsKeyRoomLinkAndNodeOnly() throws {
        var random = SplitMix(seed: 77)
        let bob = peer(2), eve = peer(5)
        let key = Base64.encode(bob.publicKey)
        for _ in 0..<200 {
            let room = RoomID.random()
            let binding = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
            let proof = bob.proveLink(room: room, binding: binding)
            #expect(LinkProof.verify(proof, key: key, node: bob.node, room: room, binding: binding))
            var otherBinding = binding
            otherBinding[Int.random(in: 0..<32, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            #expect(!LinkProof.verify(proof, key: key, node: bob.node, room: room, binding: otherBinding))
            #expect(!LinkProof.verify(proof, key: key, node: bob.node, room: RoomID.random(), binding: binding))
            #expect(!LinkProof.verify(proof, key: Base64.encode(eve.publicKey), node: eve.node, room: room, binding: binding))
            #expect(!LinkProof.verify(eve.proveLink(room: room, binding: binding), key: key, node: bob.node, room: room, binding: binding))
            #expect(!LinkProof.verify(proof, key: key, node: eve.node, room: room, binding: binding))
            var damaged = try #require(Base64.decode(proof))
            damaged[Int.random(in: 0..<64, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            #expect(!LinkProof.verify(Base64.encode(damaged), key: key, node: bob.node, room: room, binding: binding))
        }
        #expect(!LinkProof.verify(nil, key: key, node: bob.node, room: testGrant.roomID, binding: []))
    }
}
