import Foundation
import LevChatCore
import Testing

/// The three-terminal session of the issue, and the other user-visible room behaviours, with the
/// real binary as separate processes over loopback (`--peer`, `--json`).
@Suite(.timeLimit(.minutes(2)))
struct RoomFlowTests {
    @Test func threePeersChatBothWaysWithPresenceAndWho() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        // The code typed as people do: lower case, a space instead of the dash.
        let carolCode = room.code.lowercased().replacingOccurrences(of: "-", with: " ")
        let carol = try await room.join("carol", code: carolCode)
        try await room.host.waitFor("carol entering") { $0.isPresence("joined", "carol") }
        try await bob.waitFor("carol entering") { $0.isPresence("joined", "carol") }

        room.host.send("hello from alice")
        bob.send("hi from bob")
        carol.send("hey from carol")
        for peer in [room.host, bob, carol] {
            for (from, text) in [("alice", "hello from alice"), ("bob", "hi from bob"), ("carol", "hey from carol")] {
                let message = try await peer.waitFor("\(from)'s message") { $0.isMessage(from: from, text: text) }
                #expect(message["time"]?.hasSuffix("Z") == true)
                #expect(message.int("seq") != nil)
            }
        }
        // One order for everyone.
        let orders = [room.host, bob, carol].map { $0.events.filter { $0.type == "message" }.map { $0.int("seq")! } }
        #expect(orders.allSatisfy { $0 == [1, 2, 3] })
        let texts = [room.host, bob, carol].map { $0.events.filter { $0.type == "message" }.map { $0["text"]! } }
        #expect(Set(texts.map { $0.joined(separator: "|") }).count == 1)

        for peer in [room.host, bob, carol] {
            peer.send("/who")
            let members = try await peer.waitFor("/who answer") { $0.type == "members" }
            #expect(members.memberNames == ["alice", "bob", "carol"])
            #expect(members.hostName == "alice")
        }

        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
        try await room.host.waitFor("bob leaving") { $0.isPresence("left", "bob") }
        try await carol.waitFor("bob leaving") { $0.isPresence("left", "bob") }
        carol.send("/who")
        try await carol.waitFor("/who without bob") { $0.type == "members" && $0.memberNames == ["alice", "carol"] }
    }

    /// `/history`: the room's log as this peer holds it, from the host and from a member, in
    /// JSON and as text.
    /// A pipe that sends 64 MB without a newline (a binary file piped in, `< /dev/zero`): the line
    /// is cut as it comes and refused in one notice, the memory does not follow it, and the next
    /// line goes out. `readLine` kept all of it (3 GB in three seconds from /dev/zero).
    @Test func aLineWithoutAnEndIsCutNotHeld() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let carol = try await room.join("carol")
        func peakMemory() throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(carol.pid)/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") })
            return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))  // kB
        }
        let before = try peakMemory()
        carol.write([UInt8](repeating: 0x7A, count: 64 << 20) + Array("\nhello after\n".utf8))
        try await carol.waitFor("the long line refused") { $0.type == "notice" && ($0["message"] ?? "").contains("over 4096 bytes") }
        try await room.host.waitFor("the next line") { $0.isMessage(from: "carol", text: "hello after") }
        let growth = try peakMemory() - before
        #expect(growth < 16 * 1024, "carol's peak memory grew by \(growth) kB")
        #expect(!room.host.events.contains { $0.type == "message" && ($0["text"]?.count ?? 0) > 4096 })
    }

    @Test func historyShowsTheRoomsLastMessagesInOrder() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let textBob = try await room.join("tbob", waitForEntry: false, json: false)
        try await textBob.waitForLine("entered") { $0.contains("has entered the room") }
        for i in 1...3 { room.host.send("line \(i)") }
        try await bob.waitFor("line 3") { $0.isMessage(from: "alice", text: "line 3") }
        bob.send("/me waves")
        for peer in [room.host, bob] { try await peer.waitFor("bob's action") { $0.type == "message" && $0["kind"] == "action" } }
        try await textBob.waitForLine("bob's action") { $0.contains("* bob waves") }

        for peer in [room.host, bob] {
            peer.send("/history 2")
            let answer = try await peer.waitFor("/history answer") { $0.type == "history" }
            let messages = answer.fields["messages"] as? [[String: Any]] ?? []
            #expect(messages.map { $0["text"] as? String } == ["line 3", "waves"], "\(peer.label): \(answer)")
            #expect(messages.map { ($0["seq"] as? NSNumber)?.intValue } == [3, 4])
            #expect(messages.last?["kind"] as? String == "action" && messages.last?["from"] as? String == "bob")
        }
        textBob.send("/history all")
        try await textBob.waitForLine("the text answer") { $0.contains("the last 4 messages:") }
        try await textBob.waitForLine("its last line") { $0.hasSuffix("* bob waves") && $0.hasPrefix("  [") }
        textBob.send("/history 1")
        try await textBob.waitForLine("one of four") { $0.contains("the last message (3 older kept; /history all):") }
        textBob.send("/history none")
        try await textBob.waitForLine("the usage") { $0.contains("usage: /history [N|all]") }
    }

    @Test func lateJoinerSeesTheRecentHistoryFirst() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        for i in 1...3 { room.host.send("old \(i)") }
        try await room.host.waitFor("third message") { $0.isMessage(from: "alice", text: "old 3") }
        let dave = try await room.join("dave")
        let events = dave.events
        let history = events.filter { $0.type == "message" }
        #expect(history.map { $0["text"]! } == ["old 1", "old 2", "old 3"])
        #expect(history.allSatisfy { $0.bool("history") == true })
        let enteredIndex = try #require(events.firstIndex { $0.type == "entered" })
        let lastHistoryIndex = try #require(events.lastIndex { $0.type == "message" })
        #expect(lastHistoryIndex < enteredIndex)
    }

    /// `create --code-length 12`: a 60-bit code in groups of three, and it joins as any code does.
    @Test func aLongerCodeJoinsLikeAnyOther() async throws {
        let host = try PeerProcess("alice", ["create", "--name", "alice", "--no-mdns", "--port", "0", "--bind", "127.0.0.1", "--json",
                                             "--code-length", "12"])
        defer { host.stop() }
        let room = try await host.waitFor("room event") { $0.type == "room" }
        let code = try #require(room["code"])
        #expect(code.count == 15 && code.split(separator: "-").count == 4, "\(code)")
        let port = try #require(room.int("port"))
        let bob = try PeerProcess("bob", ["join", "--name", "bob", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1", "--json"],
                                  environment: ["LEVCHAT_CODE": code.lowercased()])
        defer { bob.stop() }
        try await bob.waitFor("bob entering") { $0.type == "entered" }
        // Six of its characters are not the code.
        let short = try PeerProcess("eve", ["join", "--name", "eve", "--peer", "127.0.0.1:\(port)", "--bind", "127.0.0.1", "--json"],
                                    environment: ["LEVCHAT_CODE": String(code.prefix(7))])
        defer { short.stop() }
        #expect(try await short.waitForExit() == 65)
    }

    /// Taken means taken whatever the letters: another case, a Cyrillic о for the Latin o, or a
    /// 0 for it, all read as bob.
    @Test(arguments: ["Bob", "b\u{43E}b", "B0B", "\u{FF42}\u{FF4F}\u{FF42}", "\u{1D41B}\u{1D428}\u{1D41B}", "b\u{F3}b", "\u{299}\u{1D0F}\u{299}"])
    func aTakenNameIsRefusedAndTheRoomGoesOn(_ lookAlike: String) async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let impostor = try await room.join(lookAlike, waitForEntry: false)
        #expect(try await impostor.waitForExit() == 67)
        #expect(impostor.events.contains { $0.type == "error" && ($0["message"] ?? "").contains("taken") })
        bob.send("still here")
        try await room.host.waitFor("bob's message") { $0.isMessage(from: "bob", text: "still here") }
    }

    /// Two users whose login name is `pi` (no `--name`): the second joins as `pi-2` and is told
    /// so; it was refused (exit 67). A name given with `--name` is still refused when taken.
    @Test func aTakenLoginNameGivesWayToANumberedOne() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        func joinAsPi(_ label: String, _ extra: [String] = []) throws -> PeerProcess {
            try PeerProcess(label, ["join", room.code, "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"] + extra,
                            environment: ["USER": "pi"])
        }
        let first = try joinAsPi("pi")
        defer { first.stop() }
        try await first.waitFor("the first pi entering") { $0.type == "entered" && $0["name"] == "pi" }
        let second = try joinAsPi("pi-2")
        defer { second.stop() }
        let entered = try await second.waitFor("the second entering") { $0.type == "entered" }
        #expect(entered["name"] == "pi-2", "\(entered)")
        #expect(second.events.contains { $0.type == "notice" && $0["message"] == "the name pi is taken in this room; joining as pi-2 (--name chooses a name, /nick changes it)" },
                "\(second.transcript)")
        try await room.host.waitFor("pi-2 in the room") { $0.isPresence("joined", "pi-2") }
        second.send("hello from the second pi")
        try await room.host.waitFor("its line") { $0.isMessage(from: "pi-2", text: "hello from the second pi") }
        let chosen = try joinAsPi("chosen", ["--name", "pi"])
        defer { chosen.stop() }
        #expect(try await chosen.waitForExit() == 67)
    }

    /// A directory user's login name (`firstname.lastname@corp.example.com`, as SSSD gives it) is
    /// past 32 characters: without `--name` the run refused to start. Now the user part is the
    /// name. A login name with nothing to keep is one sentence, its escape shown escaped.
    @Test func aLongLoginNameGivesItsUserPart() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let jdoe = try PeerProcess("jdoe", ["join", room.code, "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"],
                                   environment: ["USER": "firstname.lastname@corp.example.com"])
        defer { jdoe.stop() }
        try await jdoe.waitFor("entering") { $0.type == "entered" && $0["name"] == "firstname.lastname" }
        let odd = try PeerProcess("odd", ["join", room.code, "--peer", room.peerArgument, "--bind", "127.0.0.1", "--json"],
                                  environment: ["USER": "\u{1B}[2J"])
        defer { odd.stop() }
        #expect(try await odd.waitForExit() == 64)
        #expect(odd.errorText.contains("cannot be used as a room name") && !odd.errorText.contains("\u{1B}"), "\(odd.errorText.debugDescription)")
    }

    @Test func aWrongCodeIsToldApartFromAnUnreachableRoom() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let wrong = room.code.first == "A" ? "B" + room.code.dropFirst() : "A" + room.code.dropFirst()
        let mallory = try await room.join("mallory", code: String(wrong), waitForEntry: false)
        #expect(try await mallory.waitForExit() == 65)
        #expect(mallory.events.contains { $0.type == "error" && ($0["message"] ?? "").contains("wrong room code") })
        try await room.host.waitForDiagnostic("wrong room code")
        #expect(!room.host.events.contains { $0.isPresence("joined", "mallory") })

        // A port where nothing listens: unreachable, a different code and sentence.
        let ghost = try PeerProcess("ghost", ["join", room.code, "--name", "ghost", "--peer", "127.0.0.1:1", "--bind", "127.0.0.1", "--json"])
        defer { ghost.stop() }
        #expect(try await ghost.waitForExit() == 69)
        #expect(ghost.events.contains { $0.type == "error" && ($0["message"] ?? "").contains("could not reach 127.0.0.1:1") })
    }

    @Test func whenTheHostLeavesTheMostSeniorMemberHostsAndTheRoomGoesOn() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol")
        room.host.send("before")
        for peer in [bob, carol] { try await peer.waitFor("alice's message") { $0.isMessage(from: "alice", text: "before") } }
        room.host.send("/quit")
        #expect(try await room.host.waitForExit() == 0)
        for peer in [bob, carol] {
            let change = try await peer.waitFor("bob hosting") { $0.type == "host" }
            #expect(change["host"] == "bob" && change["previous"] == "alice" && change.int("epoch") == 2)
        }
        carol.send("after")
        bob.send("from the new host")
        for peer in [bob, carol] {
            try await peer.waitFor("carol's message") { $0.isMessage(from: "carol", text: "after") }
            try await peer.waitFor("bob's message") { $0.isMessage(from: "bob", text: "from the new host") }
            peer.send("/who")
            let members = try await peer.waitFor("/who") { $0.type == "members" }
            #expect(members.memberNames == ["bob", "carol"] && members.hostName == "bob")
        }
        // Then bob leaves too; carol is alone and hosts, and leaving last ends the room cleanly.
        bob.send("/quit")
        #expect(try await bob.waitForExit() == 0)
        try await carol.waitFor("carol hosting") { $0.type == "host" && $0["host"] == "carol" }
        carol.send("/quit")
        #expect(try await carol.waitForExit() == 0)
        for peer in [bob, carol] {
            #expect(peer.events.filter { $0.isMessage(from: "alice", text: "before") }.count == 1)
        }
    }

    @Test func whenTheHostIsKilledTheMembersCarryOnWithEveryMessageExactlyOnce() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol")
        let dave = try await room.join("dave")
        let sent = (1...60).map { ("bob", "b\($0)") } + (1...60).map { ("carol", "c\($0)") }
        for i in 0..<60 {
            bob.send("b\(i + 1)")
            carol.send("c\(i + 1)")
            if i == 20 { room.host.signal(SIGKILL) }
            try await Task.sleep(for: .milliseconds(10))
        }
        for peer in [bob, carol, dave] {
            for (from, text) in sent { try await peer.waitFor("\(text)") { $0.isMessage(from: from, text: text) } }
        }
        try await Task.sleep(for: .milliseconds(300))
        let logs = [bob, carol, dave].map { peer in peer.events.filter { $0.type == "message" }.map { "\($0.int("seq") ?? 0) \($0["from"] ?? ""): \($0["text"] ?? "")" } }
        #expect(logs[0].count == sent.count)
        #expect(Set(logs[0]).count == logs[0].count)
        #expect(logs[1] == logs[0] && logs[2] == logs[0])
        #expect(bob.events.contains { $0.type == "host" && $0["host"] == "bob" && $0["previous"] == "alice" })
    }

    /// `--bind ADDR` is where a peer's links come from as well as where it listens, so on a
    /// machine with several addresses (here 127.0.0.9, .10 and .11, all on loopback) the roster
    /// has each member at the address it listens on. When the host dies, carol finds bob there
    /// and follows him: one host. (When bob's links came from 127.0.0.1, the roster had him where
    /// nothing listens; carol took him for gone and made a room of her own.)
    @Test func membersBoundToAddressesOfTheirOwnFindEachOtherWhenTheHostDies() async throws {
        let room = try await LoopbackRoom(address: "127.0.0.9")
        defer { room.stopAll() }
        let bob = try await room.join("bob", address: "127.0.0.10")
        let carol = try await room.join("carol", address: "127.0.0.11")
        try await bob.waitFor("carol entering") { $0.isPresence("joined", "carol") }
        room.host.signal(SIGKILL)
        try await carol.waitFor("bob hosting") { $0.type == "host" && $0["host"] == "bob" }
        carol.send("after the host")
        try await bob.waitFor("carol's line") { $0.isMessage(from: "carol", text: "after the host") }
        carol.send("/who")
        let members = try await carol.waitFor("/who answer") { $0.type == "members" }
        #expect(members.memberNames == ["bob", "carol"] && members.hostName == "bob")
        #expect(!carol.events.contains { $0.type == "host" && $0["host"] == "carol" })
    }

    /// A script's commands, read before the room is entered (`levchat-peer join CODE < cmds`),
    /// are answered from the room once it is: `/history` answered an empty history and `/files`
    /// no offers, while `/who` said "still joining".
    @Test func commandsReadBeforeTheRoomIsEnteredAreAnsweredFromIt() async throws {
        let source = try FileTransferTests.folder("source")
        defer { FileTransferTests.remove(source) }
        try "minutes\n".write(toFile: source + "/minutes.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        for i in 1...3 { room.host.send("old \(i)") }
        room.host.send("/send \(source)/minutes.txt")
        try await room.host.waitFor("the offer") { $0.type == "offer" && $0["name"] == "minutes.txt" }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-commands-\(UUID().uuidString).txt")
        try "/history 2\n/who\n/whois alice\n/files\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = try await room.join("script", stdinFile: file.path, waitForEntry: false)
        #expect(try await script.waitForExit() == 0)
        let history = try #require(script.events.first { $0.type == "history" }, "\(script.transcript)")
        let messages = history.fields["messages"] as? [[String: Any]] ?? []
        // The last two: alice's third line, then her offer.
        #expect(messages.count == 2 && messages.first?["text"] as? String == "old 3", "\(history)")
        let who = try #require(script.events.first { $0.type == "members" }, "\(script.transcript)")
        #expect("\(who)".contains("alice"))
        #expect(script.events.contains { $0.type == "whois" && $0["name"] == "alice" }, "\(script.transcript)")
        let files = try #require(script.events.first { $0.type == "files" }, "\(script.transcript)")
        let offers = files.fields["offers"] as? [[String: Any]] ?? []
        #expect(offers.map { $0["name"] as? String } == ["minutes.txt"], "\(files)")
        #expect(!script.events.contains { $0.type == "notice" && $0["message"] == "still joining the room" }, "\(script.transcript)")
    }

    @Test func inputFromAFileIsAllDeliveredBeforeLeaving() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-input-\(UUID().uuidString).txt")
        let lines = (1...20).map { "line \($0) from a file" }
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let reader = try await room.join("filer", stdinFile: file.path, waitForEntry: false)
        #expect(try await reader.waitForExit() == 0)
        let seen = room.host.events.filter { $0.type == "message" && $0["from"] == "filer" }.map { $0["text"]! }
        #expect(seen == lines)
        try await room.host.waitFor("filer leaving") { $0.isPresence("left", "filer") }
        #expect(room.host.events.first { $0.isPresence("left", "filer") }?["reason"] == "quit")
    }

    @Test func endOfInputAndInterruptBothLeaveCleanly() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol")
        bob.send("bye from bob")
        bob.closeInput()
        #expect(try await bob.waitForExit() == 0)
        carol.signal(SIGINT)
        #expect(try await carol.waitForExit() == 0)
        try await room.host.waitFor("bob's last message") { $0.isMessage(from: "bob", text: "bye from bob") }
        for name in ["bob", "carol"] {
            let left = try await room.host.waitFor("\(name) leaving") { $0.isPresence("left", name) }
            #expect(left["reason"] == "quit")
        }
    }

    @Test func aMemberThatVanishesIsAnnouncedAsGone() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol")
        bob.signal(SIGKILL)
        let left = try await carol.waitFor("bob gone") { $0.isPresence("left", "bob") }
        #expect(left["reason"] == "lost")
    }

    @Test func aSilentHostIsDetectedByHeartbeats() async throws {
        // SIGSTOP freezes the host: its socket stays open, so only the heartbeat timeout can tell.
        let fast = ["LEVCHAT_HEARTBEAT_MS": "100", "LEVCHAT_DEAD_AFTER_MS": "600"]
        let room = try await LoopbackRoom(environment: fast)
        defer {
            room.host.signal(SIGCONT)
            room.stopAll()
        }
        let bob = try await room.join("bob", environment: fast)
        await room.host.freeze()
        // Alone with a host that went silent, bob carries the room on as its host.
        let change = try await bob.waitFor("bob hosting") { $0.type == "host" }
        #expect(change["host"] == "bob" && change["previous"] == "alice")
        #expect(bob.isRunning)
    }

    @Test func controlCharactersNeverReachAnotherTerminalRaw() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        bob.send("red \u{1B}[31malert\u{1B}[0m\tand a tab \u{07}")
        let message = try await room.host.waitFor("bob's message") { $0.type == "message" && $0["from"] == "bob" }
        #expect(message["text"] == "red \\x1B[31malert\\x1B[0m\tand a tab \\x07")
        #expect(!room.host.outputLines.joined().contains("\u{1B}"))
    }

    @Test func textModeShowsNamesTimestampsAndPresence() async throws {
        let host = try PeerProcess("alice-text", ["create", "--name", "alice", "--no-mdns", "--port", "0", "--bind", "127.0.0.1"])
        defer { host.stop() }
        let deadline = ContinuousClock.now + .seconds(20)
        var codeLine: String?
        while codeLine == nil && ContinuousClock.now < deadline {
            codeLine = host.outputLines.first { $0.hasPrefix("Room code: ") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let line = try #require(codeLine)
        #expect(line.contains("levchat-peer join"))
        let code = String(line.dropFirst("Room code: ".count).prefix(7))
        // /help: a line per command, as the help text has them (its newlines are not untrusted
        // text, to be shown as \x0A).
        host.send("/help")
        let helpDeadline = ContinuousClock.now + .seconds(20)
        while !host.outputLines.contains(where: { $0.hasPrefix("Anything else you type") }) && ContinuousClock.now < helpDeadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let helpLines = InputLine.helpText.split(separator: "\n").map(String.init)
        let shown = host.outputLines.drop { $0 != "Commands:" }.prefix(helpLines.count)
        #expect(Array(shown) == helpLines)
        #expect(!host.outputLines.contains { $0.contains("\\x0A") })
        host.send("/quit")
        #expect(try await host.waitForExit() == 0)
        #expect(host.outputLines.contains { $0.range(of: #"^\[\d\d:\d\d:\d\d\] \* alice created the room$"#, options: .regularExpression) != nil })
        #expect(code.count == 7)
    }
}

/// `/me`, `/nick` and `/code` with the real binary over loopback, as `--json` events.
@Suite(.timeLimit(.minutes(2)))
struct ChatCommandFlowTests {
    @Test func actionsNewNamesAndTheCode() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let bob = try await room.join("bob")
        let carol = try await room.join("carol")
        try await bob.waitFor("carol entering") { $0.isPresence("joined", "carol") }

        bob.send("/me waves")
        for peer in [room.host, bob, carol] {
            let action = try await peer.waitFor("bob's action") { $0.isMessage(from: "bob", text: "waves") }
            #expect(action["kind"] == "action")
        }
        // IRC's private message is no command here: bob is told every line goes to the whole
        // room, and nothing of it reaches the room (the next line does, alone).
        bob.send("/msg carol the secret plan")
        let told = try await bob.waitFor("the notice") { $0.type == "notice" && ($0["message"] ?? "").hasPrefix("unknown command /msg") }
        #expect(told["message"]?.contains("there are no private messages here") == true, "\(told)")
        room.host.send("plain words")
        let plain = try await carol.waitFor("a plain line") { $0.isMessage(from: "alice", text: "plain words") }
        #expect(!carol.transcript.contains("secret plan"), "\(carol.transcript)")
        #expect(plain["kind"] == nil, "a said line has no kind, as before")

        bob.send("/nick robert")
        for peer in [room.host, bob, carol] {
            let renamed = try await peer.waitFor("the new name") { $0.isPresence("renamed", "robert") }
            #expect(renamed["previous"] == "bob")
        }
        bob.send("as robert now")
        try await carol.waitFor("robert's line") { $0.isMessage(from: "robert", text: "as robert now") }
        // A newcomer never saw bob become robert: the line bob wrote as bob is robert's, shown
        // in the history under robert, not dropped with a notice.
        let erin = try await room.join("erin")
        let early = try #require(erin.events.first { $0.type == "message" && $0["text"] == "waves" }, "\(erin.transcript)")
        #expect(early["from"] == "robert", "\(early)")
        #expect(!erin.events.contains { $0.type == "notice" && ($0["message"] ?? "").contains("dropped") }, "\(erin.transcript)")
        erin.send("/quit")
        #expect(try await erin.waitForExit() == 0)
        try await carol.waitFor("erin leaving") { $0.isPresence("left", "erin") }

        // Names stay unique, whatever their case; the refusal goes to carol alone.
        carol.send("/nick Robert")
        let refusal = try await carol.waitFor("the refusal") { $0.type == "notice" && $0["message"]?.contains("taken") == true }
        #expect(refusal["message"] == "name not changed: Robert is taken in this room")
        carol.send("/nick")
        try await carol.waitFor("the usage") { $0.type == "notice" && $0["message"]?.hasPrefix("usage: /nick NEW") == true }
        // A name in quotes is what they hold.
        carol.send("/nick \"carol smith\"")
        try await room.host.waitFor("the name without its quotes") { $0.isPresence("renamed", "carol smith") && $0["previous"] == "carol" }
        carol.send("/whois 'carol smith'")
        try await carol.waitFor("/whois of a quoted name") { $0.type == "whois" && $0["name"] == "carol smith" }
        carol.send("/nick carol")
        try await room.host.waitFor("carol again") { $0.isPresence("renamed", "carol") && $0["previous"] == "carol smith" }
        room.host.send("/nick alicia")
        try await carol.waitFor("the host's new name") { $0.isPresence("renamed", "alicia") }

        carol.send("/code")
        let code = try await carol.waitFor("the code") { $0.type == "code" }
        #expect(code["code"] == room.code)
        #expect(!room.host.events.contains { $0.type == "code" }, "/code is answered locally")

        // The new name stays through a host change: alicia leaves, robert (the most senior) hosts.
        room.host.send("/quit")
        let host = try await carol.waitFor("the new host") { $0.type == "host" }
        #expect(host["host"] == "robert" && host["previous"] == "alicia")
        carol.send("/who")
        let who = try await carol.waitFor("/who after the change") { $0.type == "members" && $0.hostName == "robert" }
        #expect(who.memberNames == ["robert", "carol"])
        bob.send("still robert")
        try await carol.waitFor("robert's line after") { $0.isMessage(from: "robert", text: "still robert") }
    }
}
