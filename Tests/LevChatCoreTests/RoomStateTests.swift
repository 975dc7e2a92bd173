import Testing
@testable import LevChatCore

/// A fake clock: time moves only when a test says so.
struct FakeClock {
    var now = Moment(monotonic: .zero, wallMillis: 1_700_000_000_000)
    mutating func advance(_ d: Duration) {
        now.monotonic += d
        now.wallMillis += Int64(d.components.seconds * 1000)
    }
}

/// Node ids in a known order, for the tie-break tests.
func orderedNode(_ n: Int) -> NodeID { NodeID(hex: String(repeating: "0", count: 30) + (n < 16 ? "0" : "") + String(n, radix: 16))! }

@Suite struct RoomLogTests {
    @Test func sequencesInOrderAndDropsDuplicatesById() {
        var log = RoomLog()
        let a = log.sequence(id: MessageID(node: node(1), seq: 1), from: "a", text: "x", time: 0)
        let b = log.sequence(id: MessageID(node: node(2), seq: 1), from: "b", text: "y", time: 0)
        #expect(a?.seq == 1 && b?.seq == 2)
        #expect(log.sequence(id: MessageID(node: node(1), seq: 1), from: "a", text: "x", time: 0) == nil)
        #expect(log.lastSeq == 2)
    }

    @Test func memberApplyIgnoresRecordsItAlreadyHas() {
        var log = RoomLog()
        let record = signedRecord(seq: 1, id: MessageID(node: node(1), seq: 1), from: "a", text: "x", time: 0)
        let first = log.apply(record)
        let second = log.apply(record)
        #expect(first && !second)
        #expect(log.isDuplicate(record.id))
    }

    @Test func historyIsBoundedByCountAndBytes() {
        var log = RoomLog(limits: RoomLimits(historyCount: 10, historyBytes: 1 << 20))
        for i in 1...25 { _ = log.sequence(id: MessageID(node: node(1), seq: i), from: "a", text: "m\(i)", time: 0) }
        #expect(log.history.count == 10)
        #expect(log.history.first?.text == "m16")

        var byBytes = RoomLog(limits: RoomLimits(historyCount: 1000, historyBytes: 20_000))
        for i in 1...50 { _ = byBytes.sequence(id: MessageID(node: node(1), seq: i), from: "a", text: String(repeating: "x", count: 4000), time: 0) }
        #expect(byBytes.history.count < 50 && byBytes.history.count >= 2)
        #expect(byBytes.history.last?.id.seq == 50)
    }

    @Test func historyChunksEachFitInAFrame() throws {
        var log = RoomLog()
        for i in 1...1000 { _ = log.sequence(id: MessageID(node: node(1), seq: i), from: "a", text: String(repeating: "\u{1}", count: 1000), time: 0) }
        let chunks = log.historyChunks()
        #expect(chunks.reduce(0) { $0 + $1.count } == log.history.count)
        for chunk in chunks {
            #expect(WireMessage.history(HistoryChunk(records: chunk)).encoded().count + 16 <= FrameCodec.maximumPayloadLength)
        }
    }
}

@Suite struct HostRoomTests {
    var clock = FakeClock()
    var room = HostRoom(host: node(1), name: "alice", endpoints: ["10.0.0.1:7000"])
    let bob = ConnectionID(1), carol = ConnectionID(2)

    func join(_ n: Int, _ name: String, port: Int = 4000) -> WireMessage {
        .join(Join(node: node(n), name: name, listenPort: port, endpoints: [], lastSeq: 0))
    }

    mutating func admit(_ id: ConnectionID, _ n: Int, _ name: String) -> [HostRoom.Action] {
        room.connectionOpened(id, now: clock.now)
        return room.received(join(n, name), from: id, observedHost: "10.0.0.\(n)", now: clock.now)
    }

    @Test mutating func joiningGivesWelcomeAndTellsTheOthers() {
        _ = admit(bob, 2, "bob")
        let actions = admit(carol, 3, "carol")
        // The members there are told the secret moves forward (under the old key), then carol
        // is welcomed with the new generation.
        guard actions.count > 2, case .broadcast(.rekey(let rekey), [bob]) = actions[0], actions[1] == .newBroadcastKey,
              case .send(carol, .welcome(let welcome)) = actions[2] else {
            Issue.record("expected a rekey, the new key, then a welcome, got \(actions)")
            return
        }
        #expect(rekey.gen == 2 && welcome.gen == 2 && welcome.grant == testGrant.ratcheted(to: 2))
        #expect(welcome.you.ordinal == 3)
        #expect(welcome.you.endpoints == ["10.0.0.3:4000"])
        #expect(welcome.roster.members.map(\.name) == ["alice", "bob", "carol"])
        #expect(actions.contains { if case .broadcast(.presence(let p), [bob]) = $0 { p.event == .joined && p.member.name == "carol" } else { false } })
        #expect(actions.contains(.show(.joined(welcome.you, time: clock.now.wallMillis))))
    }

    @Test mutating func historyComesBeforeTheWelcome() {
        _ = room.post("before", now: clock.now)
        let actions = admit(bob, 2, "bob").filter { $0 != .newBroadcastKey }
        guard case .send(bob, .history(let chunk)) = actions.first, case .send(bob, .welcome(let welcome)) = actions[1] else {
            Issue.record("expected history then welcome, got \(actions)")
            return
        }
        #expect(chunk.records.map(\.text) == ["before"])
        #expect(welcome.historyCount == 1)
    }

    @Test mutating func namesAreUniqueCaseInsensitively() {
        _ = admit(bob, 2, "bob")
        let actions = admit(carol, 3, "BOB")
        #expect(actions.first == .send(carol, .error(ErrorInfo(code: .nameTaken, message: "the name BOB is taken in this room"))))
        #expect(actions.contains { if case .close(carol, _) = $0 { true } else { false } })
        #expect(room.members.count == 2)
    }

    @Test mutating func chatIsStampedWithTheConnectionsMemberAndEchoedToAll() {
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        let actions = room.received(.chat(signedChat(id: MessageID(node: node(2), seq: 1), text: "hi")), from: bob, observedHost: "", now: clock.now)
        guard case .broadcast(.msg(let record), let recipients) = actions.first else {
            Issue.record("expected a broadcast, got \(actions)")
            return
        }
        #expect(record.from == "bob" && record.seq == 1)
        #expect(Set(recipients) == [bob, carol])
        // A resend of the same id is not sequenced again.
        #expect(room.received(.chat(signedChat(id: MessageID(node: node(2), seq: 1), text: "hi")), from: bob, observedHost: "", now: clock.now).isEmpty)
    }

    @Test mutating func chatUnderAnotherMembersIdClosesTheSender() {
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        let actions = room.received(.chat(signedChat(id: MessageID(node: node(3), seq: 1), text: "spoof")), from: bob, observedHost: "", now: clock.now)
        #expect(actions == [.close(bob, reason: "chat with another member's id")])
    }

    @Test mutating func tooLongIsRefusedButTheMemberStays() {
        _ = admit(bob, 2, "bob")
        let long = String(repeating: "x", count: 4097)
        let actions = room.received(.chat(signedChat(id: MessageID(node: node(2), seq: 1), text: long)), from: bob, observedHost: "", now: clock.now)
        guard case .send(bob, .error(let info)) = actions.first else {
            Issue.record("expected an error, got \(actions)")
            return
        }
        #expect(info.code == "too_long")
        #expect(room.members.count == 2)
    }

    @Test mutating func anythingBeforeJoinClosesTheConnection() {
        room.connectionOpened(bob, now: clock.now)
        let actions = room.received(.ping(Ping(lastSeq: 0)), from: bob, observedHost: "", now: clock.now)
        #expect(actions == [.close(bob, reason: "sent ping before join")])
    }

    @Test mutating func idleLinksGetPingsAndSilentOnesAreDeclaredGone() {
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        clock.advance(.milliseconds(1000))
        #expect(room.tick(now: clock.now).filter { if case .send(_, .ping) = $0 { true } else { false } }.count == 2)
        // Carol keeps talking, Bob goes silent.
        for _ in 0..<4 {
            clock.advance(.milliseconds(1000))
            _ = room.received(.ping(Ping(lastSeq: 0)), from: carol, observedHost: "", now: clock.now)
            _ = room.tick(now: clock.now)
        }
        #expect(room.members.map(\.name) == ["alice", "carol"])
    }

    /// A chat line goes to every joined member, so it counts as sent on each of their links (no
    /// ping falls due until a heartbeat after it); a link still in its handshake got nothing and
    /// is pinged on its own time.
    @Test mutating func aBroadcastCountsAsSentOnEveryJoinedLinkAndNoOther() {
        let dave = ConnectionID(3)
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        clock.advance(.milliseconds(600))
        room.connectionOpened(dave, now: clock.now)  // dave's join has not come yet
        clock.advance(.milliseconds(300))
        _ = room.received(.chat(signedChat(id: MessageID(node: node(2), seq: 1), text: "hi")), from: bob, observedHost: "", now: clock.now)
        clock.advance(.milliseconds(400))  // 1.3 s after the joins, 0.7 s after dave's link opened
        #expect(pinged(room.tick(now: clock.now)).isEmpty)
        clock.advance(.milliseconds(300))  // dave's link: a heartbeat since it opened
        #expect(pinged(room.tick(now: clock.now)) == [dave])
        clock.advance(.milliseconds(300))  // a heartbeat since the chat
        #expect(pinged(room.tick(now: clock.now)) == [bob, carol])
    }

    /// Who a line goes to follows every join and departure.
    @Test mutating func broadcastsFollowJoinsAndDepartures() {
        let dave = ConnectionID(3)
        func recipients(_ actions: [HostRoom.Action]) -> [ConnectionID] {
            actions.compactMap { if case .broadcast(.msg, let to) = $0 { to } else { nil } }.first ?? []
        }
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        #expect(recipients(room.post("one", now: clock.now)) == [bob, carol])
        _ = room.received(.bye(Bye(reason: "quit")), from: bob, observedHost: "", now: clock.now)
        #expect(recipients(room.post("two", now: clock.now)) == [carol])
        _ = admit(dave, 4, "dave")
        #expect(recipients(room.post("three", now: clock.now)) == [carol, dave])
        _ = room.connectionClosed(carol, now: clock.now)
        #expect(recipients(room.post("four", now: clock.now)) == [dave])
    }

    private func pinged(_ actions: [HostRoom.Action]) -> [ConnectionID] {
        actions.compactMap { if case .send(let id, .ping) = $0 { id } else { nil } }
    }

    /// The same on the host: a host that was not running does not drop every member it has not
    /// read yet; a member still silent a whole dead-link time after the host woke is dropped.
    @Test mutating func aHostThatWasFrozenDropsNobodyOnWaking() {
        _ = admit(bob, 2, "bob")
        clock.advance(.milliseconds(250))
        _ = room.tick(now: clock.now)
        clock.advance(.seconds(30))
        #expect(!room.tick(now: clock.now).contains { if case .show(.left) = $0 { true } else { false } })
        #expect(room.members.map(\.name) == ["alice", "bob"])
        for _ in 0..<16 {
            clock.advance(.milliseconds(250))
            _ = room.tick(now: clock.now)
        }
        #expect(room.members.map(\.name) == ["alice"])
    }

    /// Silence is counted from the last bytes that reached the host's machine, read or not: a
    /// host too starved of CPU to read its sockets (300 peers on two cores) keeps a member whose
    /// pings wait unread. A member whose bytes stopped arriving is dropped as before, and news
    /// older than what the room already heard changes nothing.
    @Test mutating func bytesThatArrivedUnreadKeepAMemberInTheRoom() {
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        for _ in 0..<15 {
            clock.advance(.milliseconds(250))
            _ = room.tick(now: clock.now)
            #expect(room.silentLinks(now: clock.now).isEmpty)
        }
        clock.advance(.milliseconds(250))
        #expect(room.silentLinks(now: clock.now) == [bob, carol])
        room.dataArrived(on: bob, at: clock.now.monotonic - .milliseconds(300))
        room.dataArrived(on: carol, at: clock.now.monotonic - .seconds(5))
        #expect(room.silentLinks(now: clock.now) == [carol])
        _ = room.tick(now: clock.now)
        #expect(room.members.map(\.name) == ["alice", "bob"])
        // Bob's bytes stop arriving: a dead-link time after the last of them, he is gone.
        for _ in 0..<14 {
            clock.advance(.milliseconds(250))
            _ = room.tick(now: clock.now)
        }
        #expect(room.members.map(\.name) == ["alice", "bob"])
        clock.advance(.milliseconds(250))
        #expect(room.silentLinks(now: clock.now) == [bob])
        _ = room.tick(now: clock.now)
        #expect(room.members.map(\.name) == ["alice"])
    }

    @Test mutating func byeAndLostConnectionsAnnounceLeaving() {
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        let bye = room.received(.bye(Bye(reason: "quit")), from: bob, observedHost: "", now: clock.now)
        #expect(bye.contains { if case .broadcast(.presence(let p), [carol]) = $0 { p.event == .left && p.reason == "quit" } else { false } })
        let lost = room.connectionClosed(carol, now: clock.now)
        #expect(lost.contains { if case .show(.left(let m, "lost", _)) = $0 { m.name == "carol" } else { false } })
        #expect(room.members.map(\.name) == ["alice"])
    }

    @Test mutating func ordinalsAreNeverReused() {
        _ = admit(bob, 2, "bob")
        _ = room.connectionClosed(bob, now: clock.now)
        _ = admit(carol, 3, "bob")
        #expect(room.members.last?.ordinal == 3)
    }

    @Test mutating func closingTheRoomSaysByeToEveryone() {
        _ = admit(bob, 2, "bob")
        _ = admit(carol, 3, "carol")
        let actions = room.closeRoom()
        #expect(actions.first == .broadcast(.bye(Bye(reason: "room_closed")), to: [bob, carol]))
        #expect(actions.filter { if case .close = $0 { true } else { false } }.count == 2)
    }
}

@Suite struct MemberSessionTests {
    var clock = FakeClock()
    let me = node(2)

    func welcome(history: Int = 0) -> [WireMessage] {
        let member = testMember(node: me, name: "bob", ordinal: 2, endpoints: [])
        let roster = RosterSnapshot(epoch: 1, host: node(1), members: [testMember(node: node(1), name: "alice", ordinal: 1, endpoints: []), member])
        let records = (0..<history).map { signedRecord(seq: $0 + 1, id: MessageID(node: node(1), seq: $0 + 1), from: "alice", text: "h\($0)", time: 0) }
        return (history > 0 ? [.history(HistoryChunk(records: records))] : []) + [.welcome(Welcome(you: member, roster: roster, historyCount: history))]
    }

    @Test func historyIsShownBeforeEnteringAndLinesTypedWhileJoiningGoOutAfter() {
        var session = MemberSession(me: me, name: "bob", now: clock.now)
        #expect(session.post("early", now: clock.now) == [.show(.pending(MessageID(node: me, seq: 1), text: "early", kind: .text))])
        var actions: [MemberSession.Action] = []
        for message in welcome(history: 2) { actions += session.received(message, now: clock.now) }
        #expect(actions.count == 4)
        #expect(actions[0] == .show(.message(signedRecord(seq: 1, id: MessageID(node: node(1), seq: 1), from: "alice", text: "h0", time: 0), replayed: true)))
        guard case .show(.entered) = actions[2], case .send(.chat(let chat)) = actions[3] else {
            Issue.record("unexpected \(actions)")
            return
        }
        #expect(chat.text == "early" && chat.id == MessageID(node: me, seq: 1))
    }

    @Test func theEchoEmptiesTheOutboxAndDuplicatesAreNotShownTwice() {
        var session = MemberSession(me: me, name: "bob", now: clock.now)
        for message in welcome() { _ = session.received(message, now: clock.now) }
        _ = session.post("hi", now: clock.now)
        #expect(session.outbox.count == 1)
        let echo = signedRecord(seq: 1, id: MessageID(node: me, seq: 1), from: "bob", text: "hi", time: 0)
        #expect(session.received(.msg(echo), now: clock.now) == [.show(.message(echo, replayed: false))])
        #expect(session.outbox.isEmpty)
        #expect(session.received(.msg(echo), now: clock.now).isEmpty)
    }

    @Test func theSendWindowFillsByCountOrBytesAndEchoesOpenIt() {
        var session = MemberSession(me: me, name: "bob", now: clock.now,
                                    limits: RoomLimits(sendWindowCount: 3, sendWindowBytes: 10))
        for message in welcome() { _ = session.received(message, now: clock.now) }
        _ = session.post("a", now: clock.now)
        _ = session.post("b", now: clock.now)
        #expect(!session.isSendWindowFull)
        _ = session.post("c", now: clock.now)
        #expect(session.isSendWindowFull)
        // The echo of the first line makes room for one more.
        let echo = signedRecord(seq: 1, id: MessageID(node: me, seq: 1), from: "bob", text: "a", time: 0)
        _ = session.received(.msg(echo), now: clock.now)
        #expect(session.unconfirmedCount == 2)
        #expect(!session.isSendWindowFull)
        // Bytes count too: 1 + 1 + 8 reaches the 10-byte window with three lines.
        var wordy = MemberSession(me: me, name: "bob", now: clock.now, limits: RoomLimits(sendWindowCount: 100, sendWindowBytes: 10))
        for message in welcome() { _ = wordy.received(message, now: clock.now) }
        _ = wordy.post("123456789", now: clock.now)
        #expect(!wordy.isSendWindowFull)
        _ = wordy.post("0", now: clock.now)
        #expect(wordy.unconfirmedBytes == 10)
        #expect(wordy.isSendWindowFull)
    }

    @Test func aSilentHostIsDetectedOnTheFakeClock() {
        var clock = self.clock
        var session = MemberSession(me: me, name: "bob", now: clock.now)
        for message in welcome() { _ = session.received(message, now: clock.now) }
        clock.advance(.seconds(1))
        #expect(session.tick(now: clock.now) == [.send(.ping(Ping(lastSeq: 0)))])
        // Ticking as the peer does (every quarter heartbeat) for 3 s more: 4 s of silence.
        var ended: [MemberSession.Action] = []
        for _ in 0..<12 {
            clock.advance(.milliseconds(250))
            ended = session.tick(now: clock.now).filter { if case .ended = $0 { true } else { false } }
            if !ended.isEmpty { break }
        }
        guard case .ended(.hostLost)? = ended.first else {
            Issue.record("host silence not detected")
            return
        }
        #expect(session.tick(now: clock.now).isEmpty)
    }

    /// A member that was not running (stopped, suspended, starved) for longer than the dead-link
    /// time does not take the host for lost on waking: what the host sent may be unread in its
    /// socket. The silence counts again from then, and a host still silent a whole dead-link time
    /// later is lost.
    @Test func aMemberThatWasFrozenGivesItsHostAWholeDeadLinkTimeOnWaking() {
        var clock = self.clock
        var session = MemberSession(me: me, name: "bob", now: clock.now)
        for message in welcome() { _ = session.received(message, now: clock.now) }
        clock.advance(.milliseconds(250))
        _ = session.tick(now: clock.now)
        for freeze in [Duration.seconds(2), .seconds(4), .seconds(60)] {
            var woken = session
            var wakeClock = clock
            wakeClock.advance(freeze)
            #expect(!woken.tick(now: wakeClock.now).contains { if case .ended = $0 { true } else { false } }, "frozen \(freeze)")
            var lostAfter = Duration.zero
            while lostAfter < .seconds(10) {
                wakeClock.advance(.milliseconds(250))
                lostAfter += .milliseconds(250)
                if woken.tick(now: wakeClock.now).contains(where: { if case .ended = $0 { true } else { false } }) { break }
            }
            #expect(lostAfter == .seconds(4), "after a freeze of \(freeze) the host was lost \(lostAfter) later")
        }
    }

    /// The host's bytes that reached this member's machine count, read or not; once they stop
    /// arriving, the host is lost a dead-link time after the last of them.
    @Test func bytesFromTheHostThatArrivedUnreadKeepItsLink() {
        var clock = self.clock
        var session = MemberSession(me: me, name: "bob", now: clock.now)
        for message in welcome() { _ = session.received(message, now: clock.now) }
        func ended(_ actions: [MemberSession.Action]) -> Bool { actions.contains { if case .ended = $0 { true } else { false } } }
        for _ in 0..<15 {
            clock.advance(.milliseconds(250))
            #expect(!session.isHostSilent(now: clock.now))
            #expect(!ended(session.tick(now: clock.now)))
        }
        clock.advance(.milliseconds(250))
        #expect(session.isHostSilent(now: clock.now))
        session.dataArrived(at: clock.now.monotonic - .milliseconds(100))
        session.dataArrived(at: .zero)
        #expect(!session.isHostSilent(now: clock.now))
        var lostAfter = Duration.zero
        while lostAfter < .seconds(10) {
            if ended(session.tick(now: clock.now)) { break }
            clock.advance(.milliseconds(250))
            lostAfter += .milliseconds(250)
        }
        #expect(lostAfter == .milliseconds(4000))
        #expect(!session.isHostSilent(now: clock.now))
    }

    @Test func refusalWhileJoiningAndByeEndTheSession() {
        var session = MemberSession(me: me, name: "bob", now: clock.now)
        let info = ErrorInfo(code: .nameTaken, message: "taken")
        #expect(session.received(.error(info), now: clock.now) == [.ended(.refused(info))])

        var other = MemberSession(me: me, name: "bob", now: clock.now)
        for message in welcome() { _ = other.received(message, now: clock.now) }
        #expect(other.received(.bye(Bye(reason: "room_closed")), now: clock.now) == [.ended(.roomClosed)])
    }

    @Test func tooLongIsRefusedLocally() {
        var session = MemberSession(me: me, name: "bob", now: clock.now)
        let actions = session.post(String(repeating: "x", count: 4097), now: clock.now)
        guard case .show(.notice)? = actions.first else {
            Issue.record("expected a notice")
            return
        }
        #expect(session.outbox.isEmpty)
    }
}
