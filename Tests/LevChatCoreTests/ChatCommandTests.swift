@testable import LevChatCore
import LevChatTestSupport
import Testing

/// The chat's commands and looks (issue 11): `/me`, `/nick`, `/code`, pending own lines, name
/// colours and mentions.
@Suite struct InputLineCommandTests {
    @Test func commandsWithArguments() {
        #expect(InputLine(parsing: "/me waves at everyone") == .act("waves at everyone"))
        #expect(InputLine(parsing: "/ME  waves ") == .act("waves"))
        #expect(InputLine(parsing: "/nick robert") == .nick("robert"))
        #expect(InputLine(parsing: "/code") == .code)
        #expect(InputLine(parsing: "//me is not a command") == .say("/me is not a command"))
        #expect(InputLine(parsing: "/mean") == .unknownCommand("mean"))
    }

    @Test func aMissingArgumentGivesTheUsage() {
        guard case .usage(let me) = InputLine(parsing: "/me"), case .usage(let nick) = InputLine(parsing: "/nick   ") else {
            Issue.record("no usage for /me or /nick without an argument")
            return
        }
        #expect(me.hasPrefix("/me ACTION") && nick.hasPrefix("/nick NEW"))
    }

    /// A name in quotes is what they hold, as `/send` reads its words: `/nick "bob smith"` took
    /// the quotes into the name. For any name from characters that include spaces, quotes inside,
    /// backslashes and non-ASCII letters, in either quotes it can be written in, and bare.
    @Test func aNameInQuotesIsWhatTheyHold() {
        var random = SplitMix(seed: 0x6E69_636B)
        let characters: [Character] = ["a", "Z", "7", " ", " ", "\"", "'", "\\", "-", "é", "ｂ", "名", "😀", "."]
        for _ in 0..<5_000 {
            let name = String((0..<Int.random(in: 1...12, using: &random)).map { _ in characters.randomElement(using: &random)! })
            let trimmed = name.trimmingWhitespace()
            guard !trimmed.isEmpty else { continue }
            if !trimmed.contains("\"") && !trimmed.contains("\\") {
                #expect(InputLine(parsing: "/nick \"\(trimmed)\"") == .nick(trimmed), "\(trimmed)")
                #expect(InputLine(parsing: "/whois  \"\(trimmed)\" ") == .whois(trimmed), "\(trimmed)")
            }
            if !trimmed.contains("'") {
                #expect(InputLine(parsing: "/nick '\(trimmed)'") == .nick(trimmed), "\(trimmed)")
            }
            // Bare: the rest of the line as it is, unless it is one quoted word.
            if let first = trimmed.first, first != "\"" && first != "'" {
                #expect(InputLine(parsing: "/nick \(name)") == .nick(trimmed), "\(name)")
            }
        }
        for empty in ["/nick ''", "/nick \"\"", "/whois ''"] {
            guard case .usage = InputLine(parsing: empty) else {
                Issue.record("\(empty) should give the usage")
                continue
            }
        }
        // Not one quoted word: as typed.
        #expect(InputLine(parsing: "/nick \"bob") == .nick("\"bob"))
        #expect(InputLine(parsing: "/nick 'bob' 'smith'") == .nick("'bob' 'smith'"))
        #expect(InputLine(parsing: "/nick o'brien") == .nick("o'brien"))
    }

    @Test func historyTakesACountOrAll() {
        #expect(InputLine(parsing: "/history") == .history(InputLine.defaultHistoryCount))
        #expect(InputLine(parsing: "/history 50") == .history(50))
        #expect(InputLine(parsing: "/log all") == .history(Int.max))
        for bad in ["/history 0", "/history -3", "/history lots", "/history 99999999999999999999999"] {
            guard case .usage(let usage) = InputLine(parsing: bad) else {
                Issue.record("\(bad) should give the usage")
                continue
            }
            #expect(usage.hasPrefix("/history [N|all]"))
        }
    }

    @Test func helpListsEveryCommandTabCompletes() {
        for command in InputLine.commands { #expect(InputLine.helpText.contains(command + " "), "\(command)") }
    }

    /// The help comes from the command table (issue 20): the same text users had before.
    @Test func helpIsBuiltFromTheTable() {
        #expect(InputLine.helpText == """
            Commands:
              /me ACTION        say what you do: /me waves shows * bob waves
              /nick NEW         take a new name in the room (everyone sees it)
              /code             show the room code again, to share
              /who              list the members of the room (the host is marked) with their key fingerprints
              /whois NAME       a member's whole key fingerprint, and since when this peer knows it
              /history N        the room's last N messages (20; all: everything kept), in the room's order
              /send PATH [NAME] offer a file or folder to the room, or to NAME only (quote a path with spaces)
              /get ID [DIR]     download offer ID (into DIR, else --downloads)
              /files            list the file offers still open
              /cancel [ID]      stop a transfer of offer ID (either side); alone: a /send being read, else the only transfer
              /help             show this help
              /quit             leave the room (Ctrl-D and Ctrl-C leave too)
              //text            send a line that starts with a slash
            Anything else you type is sent to the room.
            """)
    }

    /// Every name and alias in the table reaches its command, in any case, with or without an
    /// argument; a command that needs one gives its usage without it. Only the table's names are
    /// commands.
    @Test func everyNameInTheTableParsesToItsCommand() {
        for command in ChatCommand.table {
            for name in command.names {
                for argument in ["", " x", " 7", " all"] {
                    let line = InputLine(parsing: "/" + name.uppercased() + argument)
                    if case .unknownCommand = line { Issue.record("/\(name) is not recognised") }
                    if case .usage(let usage) = line { #expect(usage == command.usage) }
                }
            }
            #expect(InputLine.commands.contains("/" + command.names[0]))
        }
        let names = ChatCommand.table.flatMap(\.names)
        #expect(Set(names).count == names.count, "a name in two commands")
        for word in ["", "mee", "quitt", "helpme", "x"] where !names.contains(word) {
            #expect(InputLine(parsing: "/" + word) == .unknownCommand(word))
        }
    }

    /// An unknown command says so and points to /help; the commands of other chat programs that
    /// have no place here also say why (no private messages, nobody put out of a room).
    @Test func anUnknownCommandSaysWhyWhenAnotherChatHasIt() {
        #expect(ChatCommand.unknown("dance") == "unknown command /dance; /help lists the commands")
        #expect(ChatCommand.unknown("msg").hasPrefix("unknown command /msg; there are no private messages here: every line goes to the whole room"))
        #expect(ChatCommand.unknown("kick").contains("nobody can be put out of a room"))
        #expect(ChatCommand.unknown("join").contains("levchat-peer join CODE in another terminal"))
        let names = ChatCommand.table.flatMap(\.names)
        for name in ["msg", "query", "w", "join", "part", "kick", "ban", "ignore", "clear", "list"] {
            #expect(!names.contains(name), "/\(name) is a command and never gets its hint")
            #expect(InputLine(parsing: "/\(name) bob hello") == .unknownCommand(name))
            #expect(ChatCommand.unknown(name) != "unknown command /\(name); /help lists the commands", "/\(name) has no hint")
            #expect(ChatCommand.unknown(name).hasSuffix("; /help lists the commands"))
        }
    }

    /// What reaches the room's role, and what the console answers alone.
    @Test func onlyRoomRequestsReachTheRole() {
        #expect(InputLine(parsing: "hi").roomRequest == .say("hi"))
        #expect(InputLine(parsing: "/me waves").roomRequest == .act("waves"))
        #expect(InputLine(parsing: "/quit").roomRequest == .quit)
        for local in ["/code", "/help", "/nope", "/me", "   "] { #expect(InputLine(parsing: local).roomRequest == nil, "\(local)") }
    }
}

@Suite struct ChatLookTests {
    @Test func aNameKeepsItsColourWhateverItsCase() {
        #expect(ChatLook.color(of: "alice") == ChatLook.color(of: "Alice"))
        #expect(ChatLook.palette.contains(ChatLook.color(of: "bob")))
        // FNV-1a, not the seeded hashValue: the same on every run and machine. FNV-1a-32("alice")
        // is 0x872213E7, and 0x872213E7 % 12 == 11.
        #expect(ChatLook.color(of: "alice") == ChatLook.palette[11])
    }

    @Test func namesSpreadOverThePalette() {
        let colors = Set((0..<200).map { ChatLook.color(of: "user\($0)") })
        #expect(colors == Set(ChatLook.palette))
    }

    @Test func mentionsAreWholeWordsInAnyCase() {
        #expect(ChatLook.mentions("hi bob!", name: "bob"))
        #expect(ChatLook.mentions("Bob, look", name: "bob"))
        #expect(ChatLook.mentions("ask bob", name: "bob"))
        #expect(ChatLook.mentions("привет, Ёжик", name: "ёжик"))
        #expect(!ChatLook.mentions("bobcat", name: "bob"))
        #expect(!ChatLook.mentions("kebob", name: "bob"))
        #expect(!ChatLook.mentions("bo", name: "bob"))
        #expect(!ChatLook.mentions("anything", name: ""))
    }
}

@Suite struct RenameTests {
    var clock = FakeClock()
    var room = HostRoom(host: node(1), name: "alice", endpoints: ["10.0.0.1:7000"])
    let bob = ConnectionID(1), carol = ConnectionID(2)

    mutating func admit(_ id: ConnectionID, _ n: Int, _ name: String) {
        room.connectionOpened(id, now: clock.now)
        _ = room.received(.join(Join(node: node(n), name: name, listenPort: 4000, endpoints: [], lastSeq: 0)), from: id,
                          observedHost: "10.0.0.\(n)", now: clock.now)
    }

    @Test mutating func aMemberRenamedIsAnnouncedToEveryone() throws {
        admit(bob, 2, "bob")
        admit(carol, 3, "carol")
        let actions = room.received(.nick(Rename(node: node(2), name: " robert ")), from: bob, observedHost: "10.0.0.2", now: clock.now)
        guard case .broadcast(.presence(let presence), let to) = actions.first else {
            Issue.record("no announcement: \(actions)")
            return
        }
        #expect(Set(to) == [bob, carol])
        #expect(presence.event == .renamed && presence.member.name == "robert" && presence.previous?.name == "bob")
        #expect(presence.roster == nil && room.roster.members.map(\.name) == ["alice", "robert", "carol"])
        #expect(actions.last == .show(.renamed(from: try #require(presence.previous), to: presence.member, time: clock.now.wallMillis)))
        // The new name is the one the next chat is stamped with.
        let chat = signedChat(id: MessageID(node: node(2), seq: 1), name: "robert", text: "hi")
        let echo = room.received(.chat(chat), from: bob, observedHost: "10.0.0.2", now: clock.now)
        guard case .broadcast(.msg(let record), _) = echo.first else {
            Issue.record("no echo: \(echo)")
            return
        }
        #expect(record.from == "robert")
    }

    @Test mutating func aTakenOrInvalidNameIsRefusedToTheAskerAlone() {
        admit(bob, 2, "bob")
        admit(carol, 3, "carol")
        for (name, code) in [("Carol", ErrorCode.nameTaken), ("ALICE", .nameTaken), ("", .protocolError), ("a\u{7}b", .protocolError),
                             (String(repeating: "x", count: 33), .protocolError), ("bob", .protocolError)] {
            let actions = room.received(.nick(Rename(node: node(2), name: name)), from: bob, observedHost: "10.0.0.2", now: clock.now)
            guard actions.count == 1, case .send(bob, .error(let info)) = actions[0] else {
                Issue.record("\(name): \(actions)")
                continue
            }
            #expect(info.code == code.rawValue, "\(name): \(info)")
        }
        #expect(room.roster.members.map(\.name) == ["alice", "bob", "carol"])
    }

    @Test mutating func theHostRenamesItself() {
        admit(bob, 2, "bob")
        let actions = room.renameSelf(to: "alicia", now: clock.now)
        #expect(room.me.name == "alicia" && room.roster.members.first?.name == "alicia")
        guard case .broadcast(.presence(let presence), [bob]) = actions.first else {
            Issue.record("\(actions)")
            return
        }
        #expect(presence.event == .renamed && presence.previous?.name == "alice")
        #expect(room.renameSelf(to: "Bob", now: clock.now) == [.show(.notice("name not changed: Bob is taken in this room"))])
    }

    let aliceEntry = testMember(node: node(1), name: "alice", ordinal: 1, endpoints: [])
    let bobEntry = testMember(node: node(2), name: "bob", ordinal: 2, endpoints: [])

    /// bob, welcomed into alice's room.
    func joinedSession() -> MemberSession {
        var session = MemberSession(me: bobEntry.node, name: "bob", now: clock.now)
        _ = session.connect(listenPort: 1, endpoints: [], now: clock.now)
        let roster = RosterSnapshot(epoch: 1, host: aliceEntry.node, members: [aliceEntry, bobEntry])
        _ = session.received(.welcome(Welcome(you: bobEntry, roster: roster, historyCount: 0)),
                             now: clock.now)
        return session
    }

    @Test func aNewNameIsKeptForTheNextHost() throws {
        let bob = bobEntry
        var session = joinedSession()
        #expect(session.rename(to: "robert") == [.send(.nick(Rename(node: node(2), name: "robert")))])
        #expect(session.rename(to: "  ") == [.show(.notice("name not changed: a name needs at least one visible character"))])
        let robert = testMember(node: bob.node, name: "robert", ordinal: bob.ordinal, endpoints: bob.endpoints, counter: 2)
        let presence = Presence(event: .renamed, member: robert, reason: nil, time: 5, previous: bob)
        #expect(session.received(.presence(presence), now: clock.now) == [.show(.renamed(from: bob, to: robert, time: 5))])
        #expect(session.name == "robert" && session.roster?.members.map(\.name) == ["alice", "robert"])
        guard case .resume(let resume) = session.connect(listenPort: 1, endpoints: [], now: clock.now) else {
            Issue.record("a member with a room resumes")
            return
        }
        #expect(resume.name == "robert")
    }

    @Test func ownLinesArePendingUntilTheirEcho() {
        let me = node(2)
        var session = joinedSession()
        let actions = session.post("waves", kind: .action, now: clock.now)
        let id = MessageID(node: me, seq: 1)
        #expect(actions.first == .show(.pending(id, text: "waves", kind: .action)))
        guard case .send(.chat(let chat))? = actions.last else {
            Issue.record("\(actions)")
            return
        }
        #expect(chat.chatKind == .action && chat.isSigned(room: testGrant.roomID, key: publicKey(of: me)))
        // Too long is refused at once: never pending.
        #expect(session.post(String(repeating: "x", count: 5000), now: clock.now).allSatisfy {
            if case .show(.pending) = $0 { false } else { true }
        })
    }
}

@Suite struct RenameMessageTests {
    @Test func nickRoundTripsAndRenamedIsAPresenceEvent() throws {
        let nick = WireMessage.nick(Rename(node: node(2), name: "robert"))
        let text = String(decoding: nick.encoded(), as: UTF8.self)
        #expect(text.contains(#""type":"nick""#) && text.contains(#""name":"robert""#) && text.contains(#""claim":{"#), "\(text)")
        #expect(try WireMessage.decode(nick.encoded()) == nick)
        #expect(throws: MessageError.self) { try WireMessage.decode(Array(#"{"type":"nick"}"#.utf8)) }
        #expect(PresenceEvent(rawValue: "renamed") == .renamed)
    }
}
