import Crypto
import Testing
@testable import LevChatCore

/// The room secret's ratchet (Docs/PROTOCOL.md, "The ratchet").
@Suite struct RatchetTests {
    let host = node(1)

    @Test func eachStepIsHKDFOfTheLastAsDocumented() {
        let info = Array("levchat/3/ratchet".utf8) + testGrant.roomID.bytes + [0, 0, 0, 0, 0, 0, 0, 1]
        let expected = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: testGrant.secret), info: info, outputByteCount: 32)
        #expect(testGrant.ratcheted(to: 1)?.secret == expected.withUnsafeBytes { Array($0) })
        // Steps compose: 0 → 5 at once is 0 → 2 → 5.
        #expect(testGrant.ratcheted(to: 5) == testGrant.ratcheted(to: 2)?.ratcheted(to: 5))
        #expect(testGrant.ratcheted(to: 0) == testGrant)
    }

    @Test func itOnlyGoesForward() {
        let later = testGrant.ratcheted(to: 4)!
        for earlier in 0..<4 { #expect(later.ratcheted(to: earlier) == nil) }
        #expect(testGrant.leads(to: later) && !later.leads(to: testGrant))
        #expect(testGrant.ratcheted(to: RoomGrant.maximumStep + 1) == nil)
        // Another room's secret at the same generation is not led to.
        #expect(!testGrant.leads(to: RoomGrant(roomID: testGrant.roomID, secret: RandomBytes.make(32), generation: 4)!))
    }

    /// The issue's proof: a broadcast recorded at one generation does not open with any key a peer
    /// holding only a later generation's secret can make (any later generation, any epoch, any
    /// host), while it does with its own.
    @Test(arguments: [0, 1, 7])
    func aLaterSecretCannotOpenAnEarlierBroadcast(recordedAt generation: Int) throws {
        let recordedGrant = testGrant.ratcheted(to: generation)!
        var sealer = BroadcastSealer(grant: recordedGrant, epoch: 2, host: host)
        let recorded = try sealer.seal(Array("said before carol came".utf8))
        var own = BroadcastOpener(grant: recordedGrant, epoch: 2, host: host)
        #expect(try own.open(recorded) == Array("said before carol came".utf8))

        let carols = recordedGrant.ratcheted(to: generation + 1)!  // what carol's welcome gave her
        for later in (generation + 1)...(generation + 20) {
            for epoch in 0...4 {
                for anyHost in [host, node(2), node(3)] {
                    var opener = BroadcastOpener(grant: carols.ratcheted(to: later)!, epoch: epoch, host: anyHost)
                    #expect(throws: RecordError.self) { try opener.open(recorded) }
                }
            }
        }
    }

    @Test func aJoinMovesTheSecretAndTheMembersFollow() {
        let clock = FakeClock()
        var room = HostRoom(host: host, name: "alice", endpoints: [])
        var bob = MemberSession(me: node(2), name: "bob", now: clock.now)
        _ = bob.connect(listenPort: 1, endpoints: [], now: clock.now)
        room.connectionOpened(ConnectionID(2), now: clock.now)
        for action in room.received(.join(Join(node: node(2), name: "bob", listenPort: 0, endpoints: [], lastSeq: 0)), from: ConnectionID(2),
                                    observedHost: "", now: clock.now) {
            if case .send(ConnectionID(2), let message) = action { _ = bob.received(message, now: clock.now) }
        }
        #expect(bob.grant == room.grant && room.grant.generation == 1)
        room.connectionOpened(ConnectionID(3), now: clock.now)
        let actions = room.received(.join(Join(node: node(3), name: "carol", listenPort: 0, endpoints: [], lastSeq: 0)), from: ConnectionID(3),
                                    observedHost: "", now: clock.now)
        guard case .broadcast(let rekey, [ConnectionID(2)]) = actions.first else { Issue.record("\(actions)"); return }
        #expect(bob.received(rekey, now: clock.now) == [.newBroadcastKey])
        #expect(bob.grant == room.grant && room.grant.generation == 2)
        // A rekey that does not move forward changes nothing.
        #expect(bob.received(.rekey(Rekey(gen: 1)), now: clock.now).isEmpty && bob.grant?.generation == 2)
    }

    @Test func aWelcomeThatGoesBackOrElsewhereIsRefused() {
        let clock = FakeClock()
        let bobEntry = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
        let roster = RosterSnapshot(epoch: 1, host: host, members: [testMember(node: host, name: "alice", ordinal: 1, endpoints: []), bobEntry])
        var bob = MemberSession(me: node(2), name: "bob", now: clock.now)
        _ = bob.connect(listenPort: 1, endpoints: [], now: clock.now)
        _ = bob.received(.welcome(Welcome(you: bobEntry, roster: roster, historyCount: 0, grant: testGrant.ratcheted(to: 3)!)), now: clock.now)
        _ = bob.linkClosed()
        _ = bob.connect(listenPort: 1, endpoints: [], now: clock.now)
        let older = bob.received(.welcome(Welcome(you: bobEntry, roster: roster, historyCount: 0, grant: testGrant.ratcheted(to: 2)!)), now: clock.now)
        #expect(older == [.ended(.protocolViolation("the host's welcome names another room or a bad room secret"))])
    }

    @Test func aPromotedHostIsAGenerationAheadAndAMemberAheadMovesTheHost() {
        let clock = FakeClock()
        let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
        let carol = testMember(node: node(3), name: "carol", ordinal: 3, endpoints: [])
        let previous = RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob, carol])
        var room = HostRoom(promoting: bob, log: RoomLog(), previous: previous, epoch: 2, nextSenderSeq: 1, outbox: [],
                            window: .seconds(2), now: clock.now)
        #expect(room.grant == testGrant.ratcheted(to: 1))
        room.connectionOpened(ConnectionID(3), now: clock.now)
        var resume = Resume(node: carol.node, name: "carol", ordinal: 3, listenPort: 0, endpoints: [], lastSeq: 0, tail: [])
        resume.gen = 4
        let actions = room.received(.resume(resume), from: ConnectionID(3), observedHost: "", now: clock.now)
        #expect(room.grant == testGrant.ratcheted(to: 4) && actions.contains(.newBroadcastKey))
    }

    /// A member behind the host (or ahead of it) proves the later generation's secret: the
    /// handshake works across generations, and only forward.
    @Test(arguments: [(0, 3), (3, 0), (2, 2)])
    func theSecretHandshakeMeetsAtTheLaterGeneration(member: Int, host: Int) throws {
        let code = try RoomCode(parsing: "7KQ-M4X")
        var joiner = ClientHandshake(credentials: RoomCredentials(code: code, grant: testGrant.ratcheted(to: member)))
        var answer = HostHandshake(code: code, grant: testGrant.ratcheted(to: host)!)
        let challenge = try answer.receiveHello(joiner.helloBytes)
        let auth = try joiner.receiveChallenge(challenge)
        let (ok, _) = try answer.receiveAuth(auth)
        _ = try joiner.receiveAuthOK(ok)
        // A stranger to the room at any generation fails.
        let stranger = RoomGrant(roomID: testGrant.roomID, secret: RandomBytes.make(32), generation: max(member, host))!
        var impostor = ClientHandshake(credentials: RoomCredentials(code: code, grant: stranger))
        var other = HostHandshake(code: code, grant: testGrant.ratcheted(to: host)!)
        let otherChallenge = try other.receiveHello(impostor.helloBytes)
        #expect(throws: HandshakeError.staleSecret) { try impostor.receiveChallenge(otherChallenge) }
    }

    /// A room of alice (host), bob, carol and dave, each member session fed what the host sent it.
    struct FourRoom {
        var clock = FakeClock()
        var room = HostRoom(host: node(1), name: "alice", endpoints: [])
        var sessions: [Int: MemberSession] = [:]

        init() {
            for n in 2...4 {
                var session = MemberSession(me: node(n), name: usualName(of: node(n)), now: clock.now)
                _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
                sessions[n] = session
                room.connectionOpened(ConnectionID(UInt64(n)), now: clock.now)
                deliver(room.received(.join(Join(node: node(n), name: usualName(of: node(n)), listenPort: 0, endpoints: [], lastSeq: 0)),
                                      from: ConnectionID(UInt64(n)), observedHost: "", now: clock.now))
            }
        }

        mutating func deliver(_ actions: [HostRoom.Action]) {
            for action in actions {
                switch action {
                case .send(let id, let message): _ = sessions[Int(id.raw)]?.received(message, now: clock.now)
                case .broadcast(let message, let ids): for id in ids { _ = sessions[Int(id.raw)]?.received(message, now: clock.now) }
                case .close, .show, .newBroadcastKey: continue
                }
            }
        }
    }

    /// The issue's proof for departures: when dave leaves, the next secret is fresh and goes to bob
    /// and carol each on their own link; nothing dave holds (his last secret, ratcheted as far as
    /// he likes, under any epoch or host) opens what the room broadcasts after.
    @Test(arguments: ["quit", "lost"])
    func aDepartureMovesTheRoomToAFreshSecretTheOneWhoLeftCannotFollow(_ how: String) throws {
        var four = FourRoom()
        let davesGrant = try #require(four.sessions[4]?.grant)
        #expect(davesGrant == four.room.grant)
        let actions = how == "quit"
            ? four.room.received(.bye(Bye(reason: "quit")), from: ConnectionID(4), observedHost: "", now: four.clock.now)
            : four.room.connectionClosed(ConnectionID(4), now: four.clock.now)
        let fresh = four.room.grant
        #expect(fresh.generation == davesGrant.generation + 1 && !davesGrant.leads(to: fresh))
        let rekeys = actions.compactMap { action -> ConnectionID? in
            guard case .send(let id, .rekey(let rekey)) = action else { return nil }
            #expect(rekey == Rekey(gen: fresh.generation, secret: fresh.secret))
            return id
        }
        #expect(rekeys == [ConnectionID(2), ConnectionID(3)])
        #expect(!actions.contains { if case .broadcast(.rekey, _) = $0 { true } else { false } })
        #expect(actions.last == .newBroadcastKey)
        four.deliver(actions)
        #expect(four.sessions[2]?.grant == fresh && four.sessions[3]?.grant == fresh)

        var sealer = BroadcastSealer(grant: fresh, epoch: 1, host: node(1))
        let after = try sealer.seal(Array("said after dave left".utf8))
        var bobs = BroadcastOpener(grant: fresh, epoch: 1, host: node(1))
        #expect(try bobs.open(after) == Array("said after dave left".utf8))
        for later in davesGrant.generation...(davesGrant.generation + 20) {
            for epoch in 0...3 {
                var daves = BroadcastOpener(grant: davesGrant.ratcheted(to: later)!, epoch: epoch, host: node(1))
                #expect(throws: RecordError.self) { try daves.open(after) }
            }
        }
    }

    @Test func departuresSeenInOneTickMakeOneFreshSecret() {
        var four = FourRoom()
        let before = four.room.grant.generation
        four.clock.advance(.seconds(3))
        _ = four.room.received(.ping(Ping(lastSeq: 0)), from: ConnectionID(2), observedHost: "", now: four.clock.now)
        four.clock.advance(.seconds(2))  // carol and dave silent for 5 s, bob for 2
        let actions = four.room.tick(now: four.clock.now)
        #expect(four.room.grant.generation == before + 1)
        #expect(actions.filter { if case .send(_, .rekey) = $0 { true } else { false } }.count == 1)
        #expect(actions.filter { $0 == .newBroadcastKey }.count == 1)
    }

    @Test func aFreshSecretThatIsNot32BytesEndsTheSession() throws {
        var four = FourRoom()
        var bad = Rekey(gen: four.room.grant.generation + 1)
        bad.secret = Base64.encode(RandomBytes.make(31))
        let actions = four.sessions[2]!.received(.rekey(bad), now: four.clock.now)
        #expect(actions == [.ended(.protocolViolation("the host sent a fresh room secret that is not 32 bytes"))])
    }

    /// The previous host could compute the generation a promoted host starts at: when the
    /// collection window closes, the room moves to a fresh secret.
    @Test func aPromotedHostMovesToAFreshSecretWhenItsWindowCloses() {
        var clock = FakeClock()
        let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
        let previous = RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob])
        var room = HostRoom(promoting: bob, log: RoomLog(), previous: previous, epoch: 2, nextSenderSeq: 1, outbox: [],
                            window: .seconds(2), now: clock.now)
        let ratcheted = room.grant
        clock.advance(.seconds(3))
        let actions = room.tick(now: clock.now)
        #expect(actions.contains(.newBroadcastKey) && room.grant.generation == ratcheted.generation + 1)
        #expect(!testGrant.leads(to: room.grant))
    }
}
