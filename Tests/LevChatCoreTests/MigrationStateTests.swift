import Testing
@testable import LevChatCore

/// The migration parts of the pure core on a fake clock: log reconciliation, a promoted host's
/// collection window, resume and push, handover. The end-to-end proof is MigrationLANTests.
@Suite struct MigrationStateTests {
    static func log(_ texts: [String]) -> RoomLog {
        var log = RoomLog()
        for (i, text) in texts.enumerated() {
            _ = log.sequence(id: MessageID(node: node(7), seq: i + 1), from: "a", text: text, time: 0)
        }
        return log
    }

    @Test func seenIdsSurviveGapsAndLateArrivals() {
        var seen = SeenMessages()
        for seq in [1, 2, 4, 5] { seen.insert(MessageID(node: node(1), seq: seq)) }
        #expect(!seen.contains(MessageID(node: node(1), seq: 3)))
        #expect(seen.contains(MessageID(node: node(1), seq: 5)))
        seen.insert(MessageID(node: node(1), seq: 3))
        #expect((1...5).allSatisfy { seen.contains(MessageID(node: node(1), seq: $0)) })
        #expect(!seen.contains(MessageID(node: node(1), seq: 6)))
    }

    @Test func divergenceIsWhereTheLogsPart() {
        let host = Self.log(["a", "b", "c"])
        // Same log: nothing to send back.
        #expect(host.divergence(lastSeq: 3, tail: host.tail()) == 4)
        // The member is behind: from its next record.
        #expect(host.divergence(lastSeq: 1, tail: Array(host.tail().prefix(1))) == 2)
        // The member is ahead (it saw more of the old host): from the host's next record.
        var ahead = host
        _ = ahead.apply(signedRecord(seq: 4, id: MessageID(node: node(8), seq: 1), from: "b", text: "d", time: 0))
        #expect(host.divergence(lastSeq: 4, tail: ahead.tail()) == 4)
        // Same positions, other messages (a split): from the first that differs.
        var other = Self.log(["a"])
        _ = other.sequence(id: MessageID(node: node(9), seq: 1), from: "c", text: "x", time: 0)
        #expect(host.divergence(lastSeq: 2, tail: other.tail()) == 2)
    }

    @Test func truncateKeepsIdsSeenSoTheyAreNeverShownTwice() {
        var log = Self.log(["a", "b", "c"])
        let dropped = log.truncate(from: 2)
        #expect(dropped.map(\.text) == ["b", "c"] && log.lastSeq == 1)
        #expect(log.isDuplicate(dropped[0].id))
    }

    /// bob (ordinal 2) saw seq 1-2 from alice; carol (ordinal 3) saw 1-3. alice crashes, bob
    /// promotes: carol resumes and pushes seq 3, which keeps its number; then held messages go out.
    @Test func aPromotedHostCollectsReconcilesAndThenAnnounces() {
        let clock = FakeClock()
        let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: ["10.0.0.1:1"])
        let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: ["10.0.0.2:2"])
        let carol = testMember(node: node(3), name: "carol", ordinal: 3, endpoints: ["10.0.0.3:3"])
        let previous = RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob, carol])
        var bobLog = RoomLog()
        var carolLog = RoomLog()
        let records = (1...3).map { signedRecord(seq: $0, id: MessageID(node: alice.node, seq: $0), from: "alice", text: "m\($0)", time: 0) }
        for r in records.prefix(2) { _ = bobLog.apply(r) }
        for r in records { _ = carolLog.apply(r) }

        var room = HostRoom(promoting: bob, log: bobLog, previous: previous, epoch: 2, nextSenderSeq: 5,
                            outbox: [signedChat(id: MessageID(node: bob.node, seq: 4), text: "typed during the election")],
                            window: .seconds(2), now: clock.now)
        #expect(room.isCollecting)
        let link = ConnectionID(1)
        room.connectionOpened(link, now: clock.now)
        let resume = Resume(node: carol.node, name: "carol", ordinal: 3, listenPort: 3, endpoints: [],
                            lastSeq: 3, tail: carolLog.tail())
        let admitted = room.received(.resume(resume), from: link, observedHost: "10.0.0.3", now: clock.now)
        guard case .send(_, .welcome(let welcome))? = admitted.first(where: { if case .send(_, .welcome) = $0 { true } else { false } }) else {
            Issue.record("no welcome in \(admitted)")
            return
        }
        #expect(welcome.resumeFrom == 3 && welcome.you.ordinal == 3 && welcome.roster.epoch == 2)
        // The window stays open until carol has pushed what bob lacks.
        #expect(room.isCollecting)
        let pushed = room.received(.push(Push(records: [records[2]])), from: link, observedHost: "", now: clock.now)
        #expect(!room.isCollecting)
        // seq 3 keeps its number (it continues bob's log); then the announcement; then bob's own
        // message held through the election, as seq 4.
        #expect(room.log.history.map(\.text) == ["m1", "m2", "m3", "typed during the election"])
        #expect(room.log.history.dropFirst(2).first?.late == nil)
        #expect(pushed.contains { if case .show(.hostChanged(let previous, let host, 2, _)) = $0 { previous == alice && host.node == bob.node } else { false } })
        // A second copy changes nothing.
        #expect(!room.received(.push(Push(records: [records[2]])), from: link, observedHost: "", now: clock.now)
            .contains { if case .broadcast(.msg, _) = $0 { true } else { false } })
    }

    @Test func aPushThatContinuesTheLogKeepsItsNumbersDuringTheWindow() {
        let clock = FakeClock()
        let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
        let carol = testMember(node: node(3), name: "carol", ordinal: 3, endpoints: [])
        let dave = testMember(node: node(4), name: "dave", ordinal: 4, endpoints: [])
        let previous = RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob, carol, dave])
        let record = signedRecord(seq: 1, id: MessageID(node: alice.node, seq: 1), from: "alice", text: "only carol saw this", time: 0)
        var room = HostRoom(promoting: bob, log: RoomLog(), previous: previous, epoch: 2, nextSenderSeq: 1, outbox: [],
                            window: .seconds(2), now: clock.now)
        room.connectionOpened(ConnectionID(1), now: clock.now)
        var carolLog = RoomLog()
        _ = carolLog.apply(record)
        _ = room.received(.resume(Resume(node: carol.node, name: "carol", ordinal: 3, listenPort: 0, endpoints: [],
                                         lastSeq: 1, tail: carolLog.tail())), from: ConnectionID(1), observedHost: "", now: clock.now)
        #expect(room.isCollecting) // dave is still expected
        _ = room.received(.push(Push(records: [record])), from: ConnectionID(1), observedHost: "", now: clock.now)
        #expect(room.log.lastSeq == 1 && room.log.history.first?.late == nil)
        // Chats wait for the window: none of them can take a number a member might still bring.
        _ = room.received(.chat(signedChat(id: MessageID(node: carol.node, seq: 1), text: "hi")), from: ConnectionID(1), observedHost: "", now: clock.now)
        #expect(room.log.lastSeq == 1)
        var later = clock
        later.advance(.seconds(3))
        let closing = room.tick(now: later.now)
        #expect(!room.isCollecting && room.log.lastSeq == 2)
        #expect(closing.contains { if case .show(.left(let who, "lost", _)) = $0 { who.node == dave.node } else { false } })
    }

    /// A split promotes a host on each side; each side's members never come back to the other's
    /// host. The healer of a promoted host that does not advertise asks its lost members where
    /// they are (`lostMembers`), so those who did not come back in the window are lost members,
    /// the most senior first and at most `lostMembersKept` of them; the previous host is not.
    @Test func membersThatDidNotComeBackAreLostMembersTheMostSeniorFirst() {
        let clock = FakeClock()
        let crowd = (1...40).map { testMember(node: node($0), name: "m\($0)", ordinal: $0, endpoints: ["10.0.0.\($0):5000"]) }
        let previous = RosterSnapshot(epoch: 1, host: crowd[0].node, members: crowd)
        var room = HostRoom(promoting: crowd[9], log: RoomLog(), previous: previous, epoch: 2, nextSenderSeq: 1, outbox: [],
                            window: .seconds(2), now: clock.now)
        room.connectionOpened(ConnectionID(1), now: clock.now)
        // m12 comes back; the others (but m1, the host that was lost) do not.
        _ = room.received(.resume(Resume(node: crowd[11].node, name: "m12", ordinal: 12, listenPort: 0, endpoints: [],
                                         lastSeq: 0, tail: [])), from: ConnectionID(1), observedHost: "", now: clock.now)
        #expect(room.lostMembers(within: .seconds(300), now: clock.now).isEmpty, "nobody is lost while the window is open")
        var later = clock
        later.advance(.seconds(3))
        _ = room.tick(now: later.now)
        #expect(!room.isCollecting)
        let lost = room.lostMembers(within: .seconds(300), now: later.now)
        let expected = [2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 15, 16, 17, 18, 19].map { "m\($0)" }
        #expect(lost.map(\.name) == expected)
        #expect(lost.count == HostRoom.lostMembersKept)
        var muchLater = later
        muchLater.advance(.seconds(301))
        #expect(room.lostMembers(within: .seconds(300), now: muchLater.now).isEmpty)
    }

    /// Pushed records' signatures are checked off the event loop (`pushVerdicts`); the room takes
    /// the verdicts and reaches exactly what it reaches when it checks them itself, for every
    /// mix of good and forged records below.
    @Test(arguments: 0..<16)
    func pushVerdictsCheckedElsewhereGiveTheSameRoom(mix: Int) {
        let clock = FakeClock()
        let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
        let carol = testMember(node: node(3), name: "carol", ordinal: 3, endpoints: [])
        let previous = RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob, carol])
        var records: [ChatRecord] = []
        for n in 0..<4 {
            var record = signedRecord(seq: n + 1, id: MessageID(node: alice.node, seq: n + 1), from: "alice", text: "line \(n)", time: 0)
            if mix & (1 << n) != 0 { record.text += " (altered)" }  // its signature no longer verifies
            records.append(record)
        }
        var rooms: [HostRoom] = []
        var outcomes: [[HostRoom.Action]] = []
        for offLoop in [false, true] {
            var room = HostRoom(promoting: bob, log: RoomLog(), previous: previous, epoch: 2, nextSenderSeq: 1, outbox: [],
                                window: .seconds(2), now: clock.now)
            room.connectionOpened(ConnectionID(1), now: clock.now)
            _ = room.received(.resume(Resume(node: carol.node, name: "carol", ordinal: 3, listenPort: 0, endpoints: [],
                                             lastSeq: 0, tail: [])), from: ConnectionID(1), observedHost: "", now: clock.now)
            let verdicts = offLoop ? records.map { ChatSignature.verify($0, room: testGrant.roomID) } : nil
            outcomes.append(room.received(.push(Push(records: records)), from: ConnectionID(1), observedHost: "", now: clock.now,
                                          pushVerdicts: verdicts))
            rooms.append(room)
        }
        // The window closes with this push, and each room then draws its own fresh secret.
        let withoutSecrets = outcomes.map { $0.filter { if case .send(_, .rekey) = $0 { false } else { true } } }
        #expect(withoutSecrets[0] == withoutSecrets[1])
        #expect(rooms[0].log.history == rooms[1].log.history)
        #expect(rooms[1].log.history.count == (0..<4).filter { mix & (1 << $0) == 0 }.count)
    }

    @Test func aMemberRebasesOnTheNewHostsLogAndPushesWhatItLacks() {
        let clock = FakeClock()
        let me = node(3)
        var session = MemberSession(me: me, name: "carol", now: clock.now)
        let host = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let you = testMember(node: me, name: "carol", ordinal: 3, endpoints: [])
        _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
        _ = session.received(.welcome(Welcome(you: you, roster: RosterSnapshot(epoch: 1, host: host.node, members: [host, you]), historyCount: 0)), now: clock.now)
        let shared = signedRecord(seq: 1, id: MessageID(node: host.node, seq: 1), from: "alice", text: "shared", time: 0)
        let mine = signedRecord(seq: 2, id: MessageID(node: host.node, seq: 2), from: "alice", text: "only here", time: 0)
        _ = session.received(.msg(shared), now: clock.now)
        _ = session.received(.msg(mine), now: clock.now)
        #expect(session.post("unechoed", now: clock.now).count == 2)  // shown as pending, and sent
        #expect(session.received(.handover(Handover(epoch: 2, host: testMember(node: node(2), name: "bob", ordinal: 2, endpoints: []))), now: clock.now)
            .contains { if case .ended(.handover) = $0 { true } else { false } })

        guard case .resume(let resume) = session.connect(listenPort: 1, endpoints: [], now: clock.now) else {
            Issue.record("a member with a room resumes")
            return
        }
        #expect(resume.ordinal == 3 && resume.lastSeq == 2 && resume.tail.map(\.seq) == [1, 2])
        // The new host had another message at 2.
        let theirs = signedRecord(seq: 2, id: MessageID(node: node(2), seq: 1), from: "bob", text: "bob's", time: 0)
        _ = session.received(.history(HistoryChunk(records: [theirs])), now: clock.now)
        let actions = session.received(.welcome(Welcome(you: you, roster: RosterSnapshot(epoch: 2, host: node(2), members: [you]),
                                                       historyCount: 1, resumeFrom: 2)), now: clock.now)
        #expect(actions.contains(.show(.message(theirs, replayed: false))))
        #expect(actions.contains(.send(.push(Push(records: [mine])))))
        #expect(actions.contains { if case .send(.chat(let chat)) = $0 { chat.text == "unechoed" } else { false } })
        #expect(!actions.contains { if case .show(.entered) = $0 { true } else { false } })
        // mine comes back late under a new number: stored, not shown again.
        let late = signedRecord(seq: 3, id: mine.id, from: "alice", text: "only here", time: 0, late: true)
        #expect(session.received(.msg(late), now: clock.now).isEmpty)
        #expect(session.log.lastSeq == 3)
    }

    /// A member that reaches the new host after its collection window gets no `host` presence,
    /// only the welcome: it is told of the new host then, and once (found by the in-process
    /// frozen-host scenario: carol, slower to find bob, was never told bob hosted).
    @Test(arguments: [false, true])
    func aResumingMemberIsToldOfTheNewHostOnce(presenceFollows: Bool) {
        let clock = FakeClock()
        let me = node(3)
        var session = MemberSession(me: me, name: "carol", now: clock.now)
        let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
        let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
        let you = testMember(node: me, name: "carol", ordinal: 3, endpoints: [])
        _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
        _ = session.received(.welcome(Welcome(you: you, roster: RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob, you]),
                                              historyCount: 0)), now: clock.now)
        _ = session.received(.handover(Handover(epoch: 2, host: bob)), now: clock.now)
        _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
        let roster = RosterSnapshot(epoch: 2, host: bob.node, members: [bob, you])
        let welcomed = session.received(.welcome(Welcome(you: you, roster: roster, historyCount: 0, resumeFrom: 1)), now: clock.now)
        let told = welcomed.filter { if case .show(.hostChanged(let previous, let host, 2, _)) = $0 { previous == alice && host == bob } else { false } }
        #expect(told.count == 1)
        if presenceFollows {
            let presence = Presence(event: .host, member: bob, reason: nil, time: 0, roster: roster, previous: alice)
            #expect(!session.received(.presence(presence), now: clock.now).contains { if case .show(.hostChanged) = $0 { true } else { false } })
        }
    }

    /// A promoted member keeps its place, its name and its name claim (a claim started again at 1
    /// would make its next rename look like a roll-back to the members), adds the endpoints it
    /// listens on now, and carries its log on; one never welcomed starts from itself alone.
    @Test func aPromotedMemberKeepsItsPlaceNameAndClaim() {
        let clock = FakeClock()
        let me = node(3)
        var session = MemberSession(me: me, name: "carol", now: clock.now)
        let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: ["10.0.0.1:4000"])
        let you = testMember(node: me, name: "carol", ordinal: 3, endpoints: ["10.0.0.3:5000"], counter: 4)
        _ = session.connect(listenPort: 5000, endpoints: [], now: clock.now)
        _ = session.received(.welcome(Welcome(you: you, roster: RosterSnapshot(epoch: 1, host: alice.node, members: [alice, you]),
                                              historyCount: 0)), now: clock.now)
        _ = session.received(.msg(signedRecord(seq: 1, id: MessageID(node: alice.node, seq: 1), from: "alice", text: "hi", time: 0)),
                             now: clock.now)
        let room = HostRoom(promoting: session, node: me, name: "carol", local: ["[fe80::3%lan0]:5000", "10.0.0.3:5000"],
                            identity: identity(of: me), grant: testGrant, epoch: 2, window: .seconds(1), now: clock.now)
        #expect(session.you == you)
        #expect(room.me.ordinal == 3 && room.me.name == "carol")
        #expect(room.me.claim?.counter == 4 && room.me.hasValidClaim(room: testGrant.roomID))
        #expect(room.me.endpoints == ["10.0.0.3:5000", "[fe80::3%lan0]:5000"])
        #expect(room.epoch == 2 && room.log.lastSeq == 1)

        let stranger = MemberSession(me: node(4), name: "dave", now: clock.now)
        let alone = HostRoom(promoting: stranger, node: node(4), name: "dave", local: ["10.0.0.4:5000"],
                             identity: identity(of: node(4)), grant: testGrant, epoch: 1, window: .seconds(1), now: clock.now)
        #expect(alone.me.ordinal == 1 && alone.me.name == "dave" && alone.me.endpoints == ["10.0.0.4:5000"])
        #expect(alone.me.hasValidClaim(room: testGrant.roomID) && alone.members.map(\.node) == [node(4)])
    }

    @Test func aLeavingHostHandsOverToTheMostSeniorMember() {
        let clock = FakeClock()
        var room = HostRoom(host: node(1), name: "alice", endpoints: [])
        for (i, name) in ["bob", "carol"].enumerated() {
            room.connectionOpened(ConnectionID(UInt64(i + 1)), now: clock.now)
            _ = room.received(.join(Join(node: node(i + 2), name: name, listenPort: 5000 + i, endpoints: [], lastSeq: 0)),
                              from: ConnectionID(UInt64(i + 1)), observedHost: "10.0.0.\(i + 2)", now: clock.now)
        }
        let actions = room.leave(now: clock.now)
        guard case .broadcast(.handover(let handover), let to)? = actions.first else {
            Issue.record("expected a handover, got \(actions)")
            return
        }
        #expect(handover.epoch == 2 && handover.host.name == "bob" && handover.host.endpoints == ["10.0.0.2:5000"])
        #expect(Set(to) == [ConnectionID(1), ConnectionID(2)])
        // Members close their links when they read it; the host does not reset them first.
        #expect(!actions.contains { if case .close = $0 { true } else { false } })
    }

    @Test func aHostAnswersAProbeWithItsClaim() {
        let clock = FakeClock()
        var room = HostRoom(host: node(1), name: "alice", endpoints: ["10.0.0.1:9"], epoch: 3)
        room.connectionOpened(ConnectionID(1), now: clock.now)
        let actions = room.received(.probe(Probe(node: node(5))), from: ConnectionID(1), observedHost: "", now: clock.now)
        #expect(actions.first == .send(ConnectionID(1), .redirect(Redirect(endpoints: ["10.0.0.1:9"], role: .host, epoch: 3, node: node(1), ordinal: 1))))
        #expect(room.members.count == 1)
    }

    @Test func claimsAreOrderedByEpochThenSeniorityThenNode() {
        let base = HostClaim(epoch: 2, ordinal: 3, node: orderedNode(5))
        #expect(HostClaim(epoch: 3, ordinal: 9, node: orderedNode(9)).beats(base))
        #expect(HostClaim(epoch: 2, ordinal: 2, node: orderedNode(9)).beats(base))
        #expect(HostClaim(epoch: 2, ordinal: 3, node: orderedNode(4)).beats(base))
        #expect(!base.beats(base))
        #expect(!HostClaim(epoch: 1, ordinal: 1, node: orderedNode(1)).beats(base))
    }
}
