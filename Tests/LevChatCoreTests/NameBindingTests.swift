import LevChatTestSupport
import Testing
@testable import LevChatCore

/// Names belong to keys (Docs/PROTOCOL.md, "Names"): a line shows under a name only when the key
/// that signed the line also claimed the name.
@Suite struct NameBindingTests {
    var clock = FakeClock()
    let alice = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
    let bob = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])
    let carol = testMember(node: node(3), name: "carol", ordinal: 3, endpoints: [])

    /// Carol, in a room with alice (host) and bob.
    func carolsSession() -> MemberSession {
        var session = MemberSession(me: carol.node, name: "carol", now: clock.now)
        _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
        _ = session.received(.welcome(Welcome(you: carol, roster: RosterSnapshot(epoch: 1, host: alice.node, members: [alice, bob, carol]),
                                              historyCount: 0)), now: clock.now)
        return session
    }

    /// A record of `author`'s, signed by its own key under `name`.
    func record(_ seq: Int, by author: Int, as name: String, _ text: String) -> ChatRecord {
        signedRecord(seq: seq, id: MessageID(node: node(author), seq: seq), from: name, text: text, time: 0)
    }

    @Test func aMemberSigningUnderAnotherMembersNameIsNotShown() {
        var session = carolsSession()
        // Eve's key signs a line that says it is bob's: the signature is good, the name is not hers.
        let eve = testMember(node: node(9), name: "eve", ordinal: 4, endpoints: [])
        _ = session.received(.presence(Presence(event: .joined, member: eve, reason: nil, time: 0)), now: clock.now)
        let forged = record(1, by: 9, as: "bob", "bob says eve is right")
        #expect(ChatSignature.verify(forged, room: testGrant.roomID))
        #expect(session.received(.msg(forged), now: clock.now)
                == [.show(.notice("dropped a message from bob: it is signed by the key of another member of the room"))])
        // Her own name is fine.
        let honest = record(2, by: 9, as: "eve", "hi")
        #expect(session.received(.msg(honest), now: clock.now) == [.show(.message(honest, replayed: false))])
    }

    @Test func aRecordWhoseFromWasChangedAfterSigningIsDropped() {
        var session = carolsSession()
        var moved = record(1, by: 2, as: "bob", "hi")
        moved.from = "alice"
        #expect(session.received(.msg(moved), now: clock.now)
                == [.show(.notice("dropped a message shown as from alice: its signature does not verify"))])
    }

    /// A newcomer (or a host after a change) never saw bob become robert: the lines bob signed
    /// as bob before are robert's own, and show under robert. They were dropped, a notice each.
    @Test func aLineSignedUnderANameBeforeARenameNobodyHereSawIsTheMembersOwn() {
        let robert = testMember(node: bob.node, name: "robert", ordinal: 2, endpoints: [], counter: 2)
        var session = MemberSession(me: carol.node, name: "carol", now: clock.now)
        _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
        let early = record(1, by: 2, as: "bob", "said as bob, long ago")
        var shown = early
        shown.from = "robert"
        _ = session.received(.history(HistoryChunk(records: [early])), now: clock.now)
        let welcomed = session.received(.welcome(Welcome(you: carol, roster: RosterSnapshot(epoch: 1, host: alice.node, members: [alice, robert, carol]),
                                                         historyCount: 1)), now: clock.now)
        #expect(welcomed.contains(.show(.message(shown, replayed: true))), "\(welcomed)")
        #expect(!welcomed.contains { if case .show(.notice) = $0 { true } else { false } }, "\(welcomed)")
    }

    /// The rule for every case: a line of a member in the room shows under that member's name
    /// now, unless it was signed under a name another member holds now (and not one this member
    /// was seen to have): then not at all. For 3,000 random rooms and lines, names drawn from a
    /// small set so that they collide, case and look-alikes included.
    @Test func aMembersLineShowsUnderItsNameOrNotAtAll() {
        var random = SplitMix(seed: 0x6E61_6D65)
        let pool = ["bob", "Bob", "b0b", "robert", "alice", "carol", "dave", "eve", "ʙᴏʙ"]
        for _ in 0..<3_000 {
            let count = Int.random(in: 1...4, using: &random)
            var names: [String] = []
            while names.count < count, let name = pool.randomElement(using: &random) {
                if !names.contains(where: { NameRule.sameName($0, name) }) { names.append(name) }
            }
            let members = names.enumerated().map { testMember(node: node($0.offset + 1), name: $0.element, ordinal: $0.offset + 1, endpoints: []) }
            let author = members.randomElement(using: &random)!
            let signedAs = pool.randomElement(using: &random)!
            let former = Bool.random(using: &random) ? [signedAs] : []
            let line = signedRecord(seq: 1, id: MessageID(node: author.node, seq: 1), from: signedAs, text: "x", time: 0)
            let shown = NameRule.shownName(of: line, members: members, formerNames: former)
            let anothers = members.contains { $0.node != author.node && NameRule.sameName($0.name, signedAs) }
            let expected: String? = signedAs == author.name || former.contains(signedAs) || !anothers ? author.name : nil
            #expect(shown == expected, "\(names) \(author.name) as \(signedAs) \(former)")
            // Never under a name but the author's own now.
            #expect(shown == nil || shown == author.name)
        }
    }

    @Test func aLineSignedJustBeforeARenameShowsUnderTheNewName() {
        var session = carolsSession()
        let robert = testMember(node: bob.node, name: "robert", ordinal: 2, endpoints: [], counter: 2)
        _ = session.received(.presence(Presence(event: .renamed, member: robert, reason: nil, time: 0, previous: bob)), now: clock.now)
        let late = record(1, by: 2, as: "bob", "said as bob")
        var shown = late
        shown.from = "robert"
        #expect(session.received(.msg(late), now: clock.now) == [.show(.message(shown, replayed: false))])
    }

    @Test func someoneGoneShowsUnderTheSignedNameMarkedWhenTheNameIsTakenNow() {
        var session = carolsSession()
        // node(7) said it as "dave" and left before carol came: shown as dave.
        let dave = record(1, by: 7, as: "dave", "bye")
        #expect(session.received(.msg(dave), now: clock.now) == [.show(.message(dave, replayed: false))])
        // node(8) said it as "Bob" (another key than the bob in the room): marked with its node.
        let other = record(2, by: 8, as: "Bob", "an old line")
        var shown = other
        shown.from = "Bob (another key, \(node(8)))"
        #expect(session.received(.msg(other), now: clock.now) == [.show(.message(shown, replayed: false))])
    }

    @Test func theHostsWordAloneGivesNobodyAName() {
        var session = carolsSession()
        // The host says node(9) is "dave", with a claim that node(9)'s key never made.
        var fake = testMember(node: node(9), name: "eve", ordinal: 4, endpoints: [])
        fake.name = "dave"
        let actions = session.received(.presence(Presence(event: .joined, member: fake, reason: nil, time: 0)), now: clock.now)
        #expect(actions == [.show(.notice("ignored the host's word that a member is called dave: that member's key did not claim it"))])
        #expect(session.roster?.members.map(\.name) == ["alice", "bob", "carol"])
        // An old claim of bob's (counter 1) replayed as a rename is refused too.
        let replayed = testMember(node: bob.node, name: "bobby", ordinal: 2, endpoints: [], counter: 1)
        #expect(session.received(.presence(Presence(event: .renamed, member: replayed, reason: nil, time: 0)), now: clock.now).count == 1)
        #expect(session.roster?.members.map(\.name) == ["alice", "bob", "carol"])
        // A welcome's roster entry without its own claim is left out, and said.
        var unsigned = bob
        unsigned.claim = nil
        var other = MemberSession(me: carol.node, name: "carol", now: clock.now)
        _ = other.connect(listenPort: 1, endpoints: [], now: clock.now)
        let welcomed = other.received(.welcome(Welcome(you: carol, roster: RosterSnapshot(epoch: 1, host: alice.node, members: [alice, unsigned, carol]),
                                                       historyCount: 0)), now: clock.now)
        #expect(welcomed.first == .show(.notice("left bob out of the room's list: that member's key did not claim the name")))
        #expect(other.roster?.members.map(\.name) == ["alice", "carol"])
    }

    @Test mutating func theHostRefusesAPushUnderAnotherMembersNameAndAJoinClaimingWithAnotherKey() {
        var room = HostRoom(host: node(1), name: "alice", endpoints: [])
        for (n, name) in [(2, "bob"), (9, "eve")] {
            room.connectionOpened(ConnectionID(UInt64(n)), now: clock.now)
            _ = room.received(.join(Join(node: node(n), name: name, listenPort: 0, endpoints: [], lastSeq: 0)), from: ConnectionID(UInt64(n)),
                              observedHost: "10.0.0.\(n)", now: clock.now)
        }
        let pushed = room.received(.push(Push(records: [record(5, by: 9, as: "bob", "bob says eve is right")])), from: ConnectionID(9),
                                   observedHost: "", now: clock.now)
        #expect(pushed == [.show(.notice("refused a record pushed by a member: it is under a name its sender does not hold"))])
        #expect(room.log.lastSeq == 0)
        // Eve's own line from before a rename this host never saw (she was "evelyn" under the
        // last host) is hers, and taken.
        let own = room.received(.push(Push(records: [record(1, by: 9, as: "evelyn", "said as evelyn")])), from: ConnectionID(9),
                                observedHost: "", now: clock.now)
        #expect(!own.contains { if case .show(.notice) = $0 { true } else { false } }, "\(own)")
        #expect(room.log.lastSeq == 1)
        // A chat under a name that is not the sender's closes its link.
        let chat = signedChat(id: MessageID(node: node(9), seq: 1), name: "bob", text: "hi")
        #expect(room.received(.chat(chat), from: ConnectionID(9), observedHost: "", now: clock.now).contains(.close(ConnectionID(9), reason: "chat under another name")))
        // A joiner whose name claim is another key's is refused.
        room.connectionOpened(ConnectionID(3), now: clock.now)
        let join = Join(node: node(3), name: "carol", listenPort: 0, endpoints: [], lastSeq: 0, key: publicKey(of: node(3)),
                        claim: nameClaim(node(4), "carol"), proof: linkProof(node(3)))
        #expect(room.received(.join(join), from: ConnectionID(3), observedHost: "", now: clock.now).first
                == .send(ConnectionID(3), .error(ErrorInfo(code: .protocolError, message: "the claim to the name carol is not signed by your key"))))
    }
}

@Suite struct NameRuleTests {
    /// A login name gives a valid name whenever any is in it: itself if it is one, the user part
    /// of `jdoe@corp.example.com`, else its first 32 characters (64 bytes); nil only for one with
    /// nothing printable to keep. For 5,000 random login names of every length and script.
    @Test func aLoginNameGivesAValidNameWheneverItCan() {
        #expect((try? NameRule.fromLogin("pi")) == "pi")
        #expect((try? NameRule.fromLogin("firstname.lastname@corp.example.com")) == "firstname.lastname")
        #expect((try? NameRule.fromLogin("CORP\\jdoe")) == "CORP\\jdoe")
        #expect((try? NameRule.fromLogin(String(repeating: "a", count: 40))) == String(repeating: "a", count: 32))
        #expect(throws: NameError.unprintable) { try NameRule.fromLogin("a\u{1B}[31m") }
        var random = SplitMix(seed: 0x6C6F_6769)
        let pieces: [String] = ["a", "Z", "7", ".", "_", "-", "@", " ", "é", "名", "😀", "\\", "\u{1B}", "\t", "\u{200B}"]
        for _ in 0..<5_000 {
            let login = (0..<Int.random(in: 0...60, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
            guard let name = try? NameRule.fromLogin(login) else {
                // Nothing to keep: neither the whole, nor the user part, nor its first 32 characters is a name.
                #expect((try? NameRule.validate(login)) == nil, "\(login.debugDescription)")
                continue
            }
            #expect(NameRule.isValid(name), "\(login.debugDescription) gave \(name.debugDescription)")
            #expect(name == (try? NameRule.validate(login)) ?? name, "a valid login name is kept as it is")
            #expect(login.contains(name) || login.trimmingWhitespace().contains(name), "\(login.debugDescription) gave \(name.debugDescription)")
        }
    }

    @Test(arguments: [
        ("alice", "ALICE"), ("alice", "\u{430}lice"), ("paypal", "\u{440}\u{430}y\u{440}\u{430}l"), ("bob", "b\u{43E}b"),
        ("alice", "a1ice"), ("oli", "0l1"), ("café", "cafe\u{301}"), ("kappa", "\u{3BA}\u{3B1}pp\u{3B1}"),
        ("bob", "\u{FF42}\u{FF4F}\u{FF42}"), ("bob", "\u{1D41B}\u{1D428}\u{1D41B}"), ("bob", "\u{24D1}\u{24DE}\u{24D1}"),
        ("bob", "\u{299}\u{1D0F}\u{299}"), ("bob", "b\u{F3}b"), ("bob", "b\u{F8}b"), ("bob", "\u{1D47}\u{1D52}\u{1D47}"),
        ("bob", "\u{1F151}\u{1F15E}\u{1F151}"), ("r2d2", "r\u{FF12}d\u{1D7D0}"),
    ])
    func lookAlikesAreTheSameName(a: String, b: String) {
        #expect(NameRule.sameName(a, b))
    }

    /// Whole blocks of compatibility letters and digits, by where Unicode puts them (not by the
    /// names the rule reads): each assigned one folds to its Latin letter or digit.
    @Test func everyFullwidthMathematicalAndEnclosedLetterIsItsLatinLetter() {
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var blocks: [(ClosedRange<UInt32>, (UInt32) -> Character)] = [
            (0xFF21...0xFF3A, { letters[Int($0 - 0xFF21)] }), (0xFF41...0xFF5A, { letters[26 + Int($0 - 0xFF41)] }),
            (0xFF10...0xFF19, { Character(String($0 - 0xFF10)) }),
            (0x1D400...0x1D6A3, { letters[Int(($0 - 0x1D400) % 52)] }),
            (0x1D7CE...0x1D7FF, { Character(String(($0 - 0x1D7CE) % 10)) }),
            (0x24B6...0x24CF, { letters[Int($0 - 0x24B6)] }), (0x24D0...0x24E9, { letters[26 + Int($0 - 0x24D0)] }),
            (0x249C...0x24B5, { letters[26 + Int($0 - 0x249C)] }),
        ]
        for base: UInt32 in [0x1F110, 0x1F130, 0x1F150, 0x1F170] { blocks.append((base...base + 25, { letters[Int($0 - base)] })) }
        var checked = 0
        for (range, expected) in blocks {
            for value in range {
                guard let scalar = Unicode.Scalar(value), scalar.properties.generalCategory != .unassigned else { continue }
                #expect(NameRule.sameName(String(scalar), String(expected(value))), "U+\(String(value, radix: 16, uppercase: true))")
                checked += 1
            }
        }
        #expect(checked > 900)  // 946 assigned in these blocks
    }

    /// Every Latin letter with a mark, precomposed or not, is that letter: each precomposed letter
    /// of U+00C0–U+024F that is canonically a letter and a combining mark (which Swift's `==`
    /// decides from Unicode's own data) folds as the letter does.
    @Test func aLetterWithAMarkIsThatLetter() {
        let marks = (0x300...0x36F).compactMap(Unicode.Scalar.init).map { String($0) }
        var checked = 0
        for value in 0xC0...0x24F {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let composed = String(scalar)
            for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" {
                guard let mark = marks.first(where: { String(letter) + $0 == composed }) else { continue }
                #expect(NameRule.sameName(composed, String(letter)), "U+\(String(value, radix: 16, uppercase: true))")
                #expect(NameRule.sameName(String(letter) + mark, String(letter)))
                checked += 1
            }
        }
        #expect(checked > 150)
    }

    @Test func differentNamesStayDifferent() {
        #expect(!NameRule.sameName("alice", "alicia"))
        #expect(!NameRule.sameName("bob", "rob"))
    }

    @Test(arguments: [
        "ali\u{200B}ce", "\u{200D}", "bob\u{FEFF}", "bob\tsmith", "a\u{2060}b", "x\u{AD}y", "\u{3164}", "a\u{202E}b", "a\u{1B}[2Jb", "a\u{E000}",
    ])
    func invisibleAndControlCharactersAreRefused(name: String) {
        #expect(throws: NameError.unprintable) { try NameRule.validate(name) }
    }

    @Test func lengthIsBoundInCharactersAndBytes() throws {
        #expect(try NameRule.validate(String(repeating: "x", count: 32)).count == 32)
        #expect(throws: NameError.tooLong(33)) { try NameRule.validate(String(repeating: "x", count: 33)) }
        // One character with 100,000 combining marks is one character but far too many bytes.
        let heavy = "e" + String(repeating: "\u{301}", count: 100_000)
        #expect(heavy.count == 1)
        #expect(throws: NameError.tooManyBytes(200_001)) { try NameRule.validate(heavy) }
        #expect(throws: NameError.tooManyBytes(66)) { try NameRule.validate(String(repeating: "€", count: 22)) }
    }
}

@Suite struct SameKeyAgainTests {
    /// Without the key's own proof for the new link, nobody takes a member's place: a join or a
    /// resume that replays bob's key and name claim (every roster carries both) with no proof,
    /// with a proof by another key, or with bob's proof for another link is refused, and bob's
    /// link stays (`LinkProof`).
    @Test func aReplayedKeyAndClaimDoNotTakeAMembersPlace() {
        let clock = FakeClock()
        var room = HostRoom.withBob(now: clock.now)
        let other = identity(of: node(5)).proveLink(room: testGrant.roomID, binding: [])
        let elsewhere = identity(of: node(2)).proveLink(room: testGrant.roomID, binding: Array(repeating: 1, count: 32))
        var n: UInt64 = 10
        for proof in [nil, other, elsewhere, "not base64", Base64.encode(Array(repeating: 0, count: 64))] as [String?] {
            for asResume in [false, true] {
                n += 1
                room.connectionOpened(ConnectionID(n), now: clock.now)
                var join = Join(node: node(2), name: "bob", listenPort: 0, endpoints: [], lastSeq: 0)
                join.proof = proof
                var resume = Resume(node: node(2), name: "bob", ordinal: 2, listenPort: 0, endpoints: [], lastSeq: 0, tail: [])
                resume.proof = proof
                let actions = room.received(asResume ? .resume(resume) : .join(join), from: ConnectionID(n), observedHost: "", now: clock.now)
                let word = asResume ? "resume" : "join"
                #expect(actions == [.send(ConnectionID(n), .error(ErrorInfo(code: .protocolError, message: "a \(word) must prove its key on this link"))),
                                    .close(ConnectionID(n), reason: "a \(word) must prove its key on this link")], "\(String(describing: proof))")
            }
        }
        #expect(room.members.map(\.name) == ["alice", "bob"])
        let stillBob = room.received(.chat(signedChat(id: MessageID(node: node(2), seq: 1), text: "still here")), from: ConnectionID(2),
                                     observedHost: "", now: clock.now)
        #expect(stillBob.contains { if case .show(.message) = $0 { true } else { false } })
    }

    /// A persistent identity whose run restarted joins before the host saw its old link die: the
    /// old link goes, the member is in the room once.
    @Test func aJoinByAKeyAlreadyInTheRoomReplacesItsOldLink() {
        let clock = FakeClock()
        var room = HostRoom.withBob(now: clock.now)
        room.connectionOpened(ConnectionID(3), now: clock.now)
        let actions = room.received(.join(Join(node: node(2), name: "bob", listenPort: 0, endpoints: [], lastSeq: 0)), from: ConnectionID(3),
                                    observedHost: "", now: clock.now)
        // The old link is told why before it closes (another run with the same identity would
        // otherwise come back and take the place in turn).
        #expect(actions.prefix(2) == [.send(ConnectionID(2), .error(ErrorInfo(code: .replaced, message: "your identity joined this room again, and that link took this one's place"))),
                                      .close(ConnectionID(2), reason: "replaced by a newer connection of the same member")])
        #expect(room.members.map(\.name) == ["alice", "bob"])
        // Bob's lines come on the new link now; the old one is gone.
        let onNew = room.received(.chat(signedChat(id: MessageID(node: node(2), seq: 1), text: "hi")), from: ConnectionID(3),
                                  observedHost: "", now: clock.now)
        #expect(onNew.contains { if case .show(.message) = $0 { true } else { false } })
        #expect(room.received(.chat(signedChat(id: MessageID(node: node(2), seq: 2), text: "old")), from: ConnectionID(2),
                              observedHost: "", now: clock.now).isEmpty)
        // Nobody joins with the host's own key.
        room.connectionOpened(ConnectionID(4), now: clock.now)
        #expect(room.received(.join(Join(node: node(1), name: "alice2", listenPort: 0, endpoints: [], lastSeq: 0)), from: ConnectionID(4),
                              observedHost: "", now: clock.now).first
                == .send(ConnectionID(4), .error(ErrorInfo(code: .protocolError, message: "that node id is the host's"))))
    }
}

@Suite struct ChurnTests {
    @Test func renamesAreLimitedPerMemberAMinute() {
        var clock = FakeClock()
        var room = HostRoom.withBob(now: clock.now)
        for n in 1...HostRoom.renamesPerMinute {
            let actions = room.received(.nick(Rename(node: node(2), name: "bob\(n)", counter: 1 + n)), from: ConnectionID(2), observedHost: "", now: clock.now)
            #expect(actions.contains { if case .broadcast(.presence, _) = $0 { true } else { false } } || actions.contains { if case .show(.renamed) = $0 { true } else { false } })
        }
        let refused = room.received(.nick(Rename(node: node(2), name: "bob9", counter: 20)), from: ConnectionID(2), observedHost: "", now: clock.now)
        #expect(refused == [.send(ConnectionID(2), .error(ErrorInfo(code: .protocolError, message: "name not changed: at most 5 new names a minute")))])
        clock.advance(.seconds(61))
        let later = room.received(.nick(Rename(node: node(2), name: "bob9", counter: 21)), from: ConnectionID(2), observedHost: "", now: clock.now)
        #expect(room.members.map(\.name).contains("bob9"), "\(later)")
    }

    @Test func aLinkThatPushesMoreThanAResumeCanNeedIsClosed() {
        let clock = FakeClock()
        var room = HostRoom.withBob(now: clock.now)
        let record = signedRecord(seq: 1, id: MessageID(node: node(2), seq: 1), from: "bob", text: "x", time: 0)
        for _ in 0..<(HostRoom.pushedRecordsPerLink / 1000) {
            #expect(!room.received(.push(Push(records: Array(repeating: record, count: 1000))), from: ConnectionID(2), observedHost: "",
                                   now: clock.now).contains(.close(ConnectionID(2), reason: "pushed more records than a resume can need")))
        }
        #expect(room.received(.push(Push(records: [record])), from: ConnectionID(2), observedHost: "", now: clock.now)
                == [.close(ConnectionID(2), reason: "pushed more records than a resume can need")])
    }
}

extension HostRoom {
    /// Alice's room with bob joined on connection 2.
    static func withBob(now: Moment) -> HostRoom {
        var room = HostRoom(host: node(1), name: "alice", endpoints: [])
        room.connectionOpened(ConnectionID(2), now: now)
        _ = room.received(.join(Join(node: node(2), name: "bob", listenPort: 0, endpoints: [], lastSeq: 0)), from: ConnectionID(2),
                          observedHost: "", now: now)
        return room
    }
}
