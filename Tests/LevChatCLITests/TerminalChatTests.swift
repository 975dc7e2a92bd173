import Foundation
import LevChatCore
import Testing

/// The terminal chat (Docs/CLI.md, "The terminal chat"), driven through the real binary in a real
/// terminal (tmux) on loopback: the input line survives incoming lines, own lines show once,
/// history, Tab, wide characters, colours, and the terminal put back on every way out.
@Suite(.timeLimit(.minutes(3)))
struct TerminalChatTests {
    /// bob in a terminal of `columns` columns, in `room`, with the code from the environment.
    static func bob(in room: LoopbackRoom, columns: Int = 80, environment: [String: String] = [:],
                    extra: [String] = []) async throws -> Tmux {
        let tmux = Tmux()
        try tmux.start(PeerProcess.binary.path, ["join", "--ephemeral", "--name", "bob", "--peer", room.peerArgument, "--bind", "127.0.0.1"] + extra,
                       columns: columns, environment: ["LEVCHAT_CODE": room.code, "NO_COLOR": ""].merging(environment) { $1 })
        try await room.host.waitFor("bob entering") { $0.isPresence("joined", "bob") }
        try await tmux.waitForScreen("bob's prompt") { $0.contains("[bob]") }
        return tmux
    }

    /// Whether the row above the input row `input` is an 8 MB transfer's status row that begins
    /// with `start` (name, %, bytes, time left).
    static func statusRow(_ screen: String, starting start: String, above input: String) -> Bool {
        let rows = screen.components(separatedBy: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        guard rows.count >= 2 else { return false }
        let status = rows[rows.count - 2]
        return status.contains(start) && status.contains(" % ") && status.contains("of 8.0 MB") && status.contains("left") && rows.last == input
    }

    /// A room whose files go at 1 MB/s, a folder holding `slow.bin` (`size` random bytes), and a
    /// folder for bob's downloads.
    static func slowFileRoom(size: Int, seed: UInt64) async throws -> (source: String, downloads: String, room: LoopbackRoom) {
        let source = try FileTransferTests.folder("source"), downloads = try FileTransferTests.folder("bob")
        try FileTransferTests.randomFile(at: source + "/slow.bin", size: size, seed: seed)
        return (source, downloads, try await LoopbackRoom(environment: ["LEVCHAT_FILE_RATE_BYTES": "1000000"]))
    }

    /// The input row: the last row with anything on it.
    static func inputRow(_ tmux: Tmux) throws -> String { lastRow(try tmux.screen()) }

    static func lastRow(_ screen: String) -> String {
        screen.components(separatedBy: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? ""
    }

    @Test func anIncomingLineGoesAboveThePartialInput() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let tmux = try await Self.bob(in: room)
        defer { tmux.kill() }

        try tmux.type("hello wor")
        try await tmux.waitForScreen("the partial input") { $0.contains("[bob] hello wor") }
        room.host.send("hi everyone, welcome")
        try await tmux.waitForScreen("alice's line") { $0.contains("alice: hi everyone, welcome") }
        let rows = try tmux.rows()
        #expect(rows.last == "[bob] hello wor", "\(rows)")
        let incoming = try #require(rows.firstIndex { $0.hasSuffix("alice: hi everyone, welcome") })
        #expect(incoming < rows.count - 1)
        #expect(!rows.contains { $0.contains("hello wor[") || $0.contains("wor alice") }, "\(rows)")
        let cursor = try tmux.cursor()
        #expect(cursor.x == "[bob] hello wor".count && cursor.y == rows.count - 1, "\(cursor)")

        // Finishing the word sends the whole line, shown once: the room's line, no echo of typing.
        try tmux.type("ld")
        try tmux.keys("Enter")
        try await room.host.waitFor("bob's line") { $0.isMessage(from: "bob", text: "hello world") }
        try await tmux.waitForScreen("bob's line echoed") { $0.contains("bob: hello world") }
        let after = try tmux.rows()
        #expect(after.filter { $0.contains("hello world") }.count == 1, "\(after)")
        #expect(after.last == "[bob]", "\(after)")

        // Up recalls the last line; Tab completes a member's name.
        try tmux.keys("Up")
        try await tmux.waitForScreen("the recalled line") { Self.lastRow($0) == "[bob] hello world" }
        try tmux.keys("C-u")
        try tmux.type("al")
        try tmux.keys("Tab")
        try await tmux.waitForScreen("the completed name") { Self.lastRow($0) == "[bob] alice:" }
        try tmux.type("see /me")
        try tmux.keys("C-u")
        try tmux.type("/me waves")
        try tmux.keys("Enter")
        try await room.host.waitFor("bob's action") { $0.isMessage(from: "bob", text: "waves") && $0["kind"] == "action" }
        try await tmux.waitForScreen("the action") { $0.contains("* bob waves") }
    }

    /// Tab after `/send ` completes a path, escaped as a shell user types it, and the line then
    /// offers that file (Docs/CLI.md, "Files").
    @Test func tabCompletesAPathToSend() async throws {
        let folder = try FileTransferTests.folder("tab")
        defer { FileTransferTests.remove(folder) }
        try "minutes\n".write(toFile: folder + "/my report.txt", atomically: true, encoding: .utf8)
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let tmux = try await Self.bob(in: room, columns: 200)
        defer { tmux.kill() }
        try tmux.type("/send \(folder)/my")
        try tmux.keys("Tab")
        try await tmux.waitForScreen("the completed path") { Self.lastRow($0) == "[bob] /send \(folder)/my\\ report.txt" }
        try tmux.keys("Enter")
        let offer = try await room.host.waitFor("bob's offer") { $0.type == "offer" && $0["from"] == "bob" }
        #expect(offer["name"] == "my report.txt")
        // Then the member it goes to, a name with a space in it, as one shell word.
        let carol = try await room.join("carol smith")
        try await tmux.waitForScreen("carol entering") { $0.contains("carol smith has entered") }
        try tmux.type("/send \(folder)/my\\ report.txt car")
        try tmux.keys("Tab")
        try await tmux.waitForScreen("the completed name") { Self.lastRow($0) == "[bob] /send \(folder)/my\\ report.txt carol\\ smith" }
        try tmux.keys("Enter")
        // (The offer to the room came before her, in the history she was given.)
        try await carol.waitFor("the offer to carol") { $0.type == "offer" && $0["from"] == "bob" && $0["to"] == "carol smith" }
    }

    /// A download's progress is a status row above the input line (name, %, bytes, rate, time
    /// left), gone when the file is in; the input line stays whole under it.
    @Test func aDownloadShowsAStatusRowAboveTheInputLine() async throws {
        // 8 seconds at 1 MB/s: the status row stays long enough to be seen on a slow machine.
        let (source, downloads, room) = try await Self.slowFileRoom(size: 8_000_000, seed: 8)
        defer { FileTransferTests.remove(source, downloads); room.stopAll() }
        let tmux = try await Self.bob(in: room, columns: 100, extra: ["--downloads", downloads])
        defer { tmux.kill() }
        room.host.send("/send \(source)/slow.bin")
        try await tmux.waitForScreen("the offer") { $0.contains("alice offers slow.bin") }
        try tmux.type("/get 1")
        try tmux.keys("Enter")
        try tmux.type("typing on")
        try await tmux.waitForScreen("the status row") { Self.statusRow($0, starting: "⇣ slow.bin", above: "[bob] typing on") }
        try await tmux.waitForScreen("the file in", timeout: .seconds(60)) { $0.contains("received slow.bin") }
        let after = try tmux.rows()
        #expect(!after.contains { $0.contains("⇣") }, "\(after)")
        #expect(after.last == "[bob] typing on", "\(after)")
    }

    /// More transfers than the screen has room for: the bottom area takes at most half the
    /// screen and says how many more there are. It took as many rows as there were transfers, and
    /// on a short screen every redraw (ten a second) scrolled copies of its top rows into the
    /// terminal's history, burying the chat.
    @Test func transfersOnAShortScreenStayInTheirRows() async throws {
        let source = try FileTransferTests.folder("source"), downloads = try FileTransferTests.folder("bob")
        defer { FileTransferTests.remove(source, downloads) }
        for index in 1...4 { try FileTransferTests.randomFile(at: source + "/f\(index).bin", size: 16_000_000, seed: UInt64(40 + index)) }
        // 16 MB at 400 kB/s each: the four go on for 40 s, longer than a loaded machine takes to
        // reach the last check (they are stopped with the room).
        let room = try await LoopbackRoom(environment: ["LEVCHAT_FILE_RATE_BYTES": "400000"])
        defer { room.stopAll() }
        let tmux = try await Self.bob(in: room, columns: 80, extra: ["--downloads", downloads])
        defer { tmux.kill() }
        for index in 1...4 {
            room.host.send("/send \(source)/f\(index).bin")
            try await tmux.waitForScreen("offer \(index)") { $0.contains("alice offers f\(index).bin") }
        }
        try tmux.resize(columns: 80, rows: 6)
        for index in 1...4 {
            try tmux.type("/get \(index)")
            try tmux.keys("Enter")
        }
        // Half of 6 rows: two status rows and what else there is.
        try await tmux.waitForScreen("two rows and the rest", timeout: .seconds(30)) { screen in
            let rows = screen.components(separatedBy: "\n")
            return rows.filter { $0.hasPrefix("⇣ f") }.count == 2 && rows.contains { $0.hasPrefix("… 2 more transfers") }
        }
        try await Task.sleep(for: .seconds(2))  // twenty redraws
        // Nothing of the bottom area went into the terminal's history: what it keeps of it is
        // what is on the screen.
        let kept = try tmux.everything().components(separatedBy: "\n")
        #expect(kept.filter { $0.hasPrefix("⇣") }.count == 2 && kept.filter { $0.hasPrefix("…") }.count == 1, "\(kept.suffix(30))")
        // Three rows: one for all four, above the input row.
        try tmux.resize(columns: 80, rows: 3)
        try await tmux.waitForScreen("one row for all four") { screen in
            let rows = screen.components(separatedBy: "\n")
            return rows.contains { $0.hasPrefix("… 4 more transfers") } && !rows.contains { $0.hasPrefix("⇣") }
        }
    }

    /// The sender's side: a file going out to a member has its own status row (`⇡ NAME to WHO`)
    /// above the input line while it goes, gone when it is sent; and the `/send` shows as pending
    /// only until its offer comes back from the host, like any own line.
    @Test func anUploadShowsAStatusRowToo() async throws {
        let source = try FileTransferTests.folder("source"), downloads = try FileTransferTests.folder("alice")
        defer { FileTransferTests.remove(source, downloads) }
        try FileTransferTests.randomFile(at: source + "/slow.bin", size: 8_000_000, seed: 9)
        let room = try await LoopbackRoom(environment: ["XDG_DOWNLOAD_DIR": downloads])
        defer { room.stopAll() }
        // 8 MB at 400 kB/s: the row is there for 20 s, which a loaded machine's polling of tmux
        // cannot miss (at 1 MB/s its 8 s were missed once, on a fresh-clone CI run).
        let tmux = try await Self.bob(in: room, columns: 100, environment: ["LEVCHAT_FILE_RATE_BYTES": "400000"])
        defer { tmux.kill() }
        try tmux.type("/send \(source)/slow.bin")
        try tmux.keys("Enter")
        try await room.host.waitFor("the offer") { $0.type == "offer" && $0["name"] == "slow.bin" }
        room.host.send("/get 1")
        try tmux.type("typing on")
        try await tmux.waitForScreen("the status row", timeout: .seconds(30)) { Self.statusRow($0, starting: "⇡ slow.bin to alice", above: "[bob] typing on") }
        try await room.host.waitFor("alice has it", timeout: .seconds(90)) { $0.type == "received" && $0.int("id") == 1 }
        try await tmux.waitForScreen("sent") { $0.contains("sent slow.bin to alice") }
        let after = try tmux.rows()
        #expect(!after.contains { $0.contains("⇡") }, "\(after)")
        // The offer's echo took the place of its pending row.
        #expect(!after.contains { $0.contains("[sending…]") }, "\(after)")
        #expect(after.last == "[bob] typing on", "\(after)")
    }

    @Test func wideCharactersAndANarrowTerminalKeepTheLineWhole() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let tmux = try await Self.bob(in: room, columns: 30)
        defer { tmux.kill() }

        let text = "😀 ça va? 你好 0123456789abcdefghij"
        try tmux.type(text)
        try await tmux.waitForScreen("the tail of the line") { Self.lastRow($0).hasSuffix("abcdefghij") }
        room.host.send("meanwhile")
        try await tmux.waitForScreen("alice's line") { $0.contains("alice: meanwhile") }
        let row = try Self.inputRow(tmux)
        #expect(row.hasPrefix("[bob] ") && row.hasSuffix("abcdefghij"), "\(row)")
        #expect(DisplayWidth.of(row) <= 29, "\(row) is \(DisplayWidth.of(row)) columns")
        #expect(try tmux.cursor().x <= 29)

        // A resized terminal (SIGWINCH) gets the line drawn again at its new width, once. The
        // row must be as wide as only that redraw makes it (the whole line, or all but a column
        // or two of the screen): tmux's own reflow of the previous drawing also ends in
        // "abcdefghij" on one row, and a check it satisfies went on to the next resize before
        // bob had redrawn, on a loaded machine.
        let whole = DisplayWidth.of("[bob] " + text)
        for columns in [50, 24, 30] {
            try tmux.resize(columns: columns)
            try await tmux.waitForScreen("the line at \(columns) columns") { screen in
                let row = Self.lastRow(screen)
                let width = DisplayWidth.of(row)
                return row.hasSuffix("abcdefghij") && width <= columns - 1 && width >= min(whole, columns - 1) - 1
                    && screen.components(separatedBy: "\n").filter { $0.hasPrefix("[bob]") }.count == 1
            }
        }

        // Home shows the start of the line, emoji and CJK whole.
        try tmux.keys("Home")
        try await tmux.waitForScreen("the start of the line") { Self.lastRow($0).hasPrefix("[bob] 😀 ça va? 你好") }
        #expect(try tmux.cursor().x == "[bob] ".count)
        try tmux.keys("End")
        try tmux.keys("Enter")
        try await room.host.waitFor("the whole line") { $0.isMessage(from: "bob", text: text) }

        // Backspace takes a whole emoji (one grapheme cluster: a family of four).
        try tmux.type("x👨‍👩‍👧‍👦")
        try await tmux.waitForScreen("the emoji") { $0.contains("[bob] x👨") }
        try tmux.keys("BSpace")
        try await tmux.waitForScreen("the emoji gone") { Self.lastRow($0) == "[bob] x" }
        try tmux.keys("Enter")
        try await room.host.waitFor("x alone") { $0.isMessage(from: "bob", text: "x") }
    }

    @Test func ownLinesArePendingUntilEchoedAndMarkedWhenNeverDelivered() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let carol = try await room.join("carol")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-tty-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tmux = Tmux()
        defer { tmux.kill() }
        // Bob never takes the frozen host for lost (a dead-link time of ten minutes), so he can
        // never promote himself and sequence his own line, however slow the machine; leaving is
        // ended by a second Ctrl-C, not by a timer (issue 20: with 8 s, a slow fresh machine let
        // bob promote himself before the Ctrl-C arrived, and the verdict depended on its speed).
        let env = "LEVCHAT_CODE=\(room.code) NO_COLOR= LEVCHAT_HEARTBEAT_MS=1000 LEVCHAT_DEAD_AFTER_MS=600000"
        try tmux.startShell("env \(env) '\(PeerProcess.binary.path)' join --ephemeral --name bob --peer \(room.peerArgument) --bind 127.0.0.1; "
                            + "echo \"exit=$?\"; sleep 60")
        try await room.host.waitFor("bob entering") { $0.isPresence("joined", "bob") }
        try await tmux.waitForScreen("bob's prompt") { $0.contains("[bob]") }

        // A host that does not answer for a moment: the line waits, dimmed, then is the room's.
        await room.host.freeze()
        try tmux.type("are you there?")
        try tmux.keys("Enter")
        try await tmux.waitForScreen("the pending line") { $0.contains("[sending…] bob: are you there?") }
        room.host.signal(SIGCONT)
        try await tmux.waitForScreen("the confirmed line") { $0.contains("bob: are you there?") && !$0.contains("[sending…]") }
        let rows = try tmux.rows()
        #expect(rows.filter { $0.contains("are you there?") }.count == 1, "\(rows)")

        // Nobody answers at all: leaving marks the line as not sent.
        await room.host.freeze()
        await carol.freeze()
        defer {
            room.host.signal(SIGCONT)
            carol.signal(SIGCONT)
        }
        try tmux.type("lost line")
        try tmux.keys("Enter")
        try await tmux.waitForScreen("the second pending line") { $0.contains("[sending…] bob: lost line") }
        // The first Ctrl-C leaves once the host echoes; the second gives up waiting.
        try tmux.keys("C-c")
        try tmux.keys("C-c")
        try await tmux.waitForScreen("bob's exit", timeout: .seconds(30)) { $0.contains("exit=") }
        let screen = try tmux.screen()
        #expect(screen.contains("[not sent] bob: lost line"), "\(screen)")
        #expect(screen.contains("exit=69") && screen.contains("never confirmed"), "\(screen)")
        #expect(!screen.contains("[sending…]"), "\(screen)")
    }

    /// Ctrl-Z does not stop the chat, and says so: whoever pressed it believes the shell is back,
    /// and what they type next would go to the room unannounced. The line typed so far stays.
    @Test func ctrlZSaysTheChatGoesOn() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let tmux = try await Self.bob(in: room, columns: 200)
        defer { tmux.kill() }
        try tmux.type("half typed")
        try await tmux.waitForScreen("the partial input") { Self.lastRow($0) == "[bob] half typed" }
        try tmux.keys("C-z")
        try await tmux.waitForScreen("the notice") { $0.contains("Ctrl-Z does not stop the chat here") }
        let rows = try tmux.rows()
        #expect(rows.last == "[bob] half typed", "\(rows)")
        try tmux.type(" and done")
        try tmux.keys("Enter")
        try await room.host.waitFor("bob's whole line") { $0.isMessage(from: "bob", text: "half typed and done") }
    }

    /// Ctrl-D during a download: the run waits for it, says so, and Ctrl-C then leaves at once
    /// (the terminal is raw, so only the key reader can hear it; it stopped reading at Ctrl-D).
    @Test func ctrlCLeavesAfterCtrlDWhileADownloadRuns() async throws {
        // 20 s at 1 MB/s: the download is still going when Ctrl-C comes, whatever the machine.
        let (source, downloads, room) = try await Self.slowFileRoom(size: 20_000_000, seed: 9)
        defer { FileTransferTests.remove(source, downloads); room.stopAll() }
        room.host.send("/send \(source)/slow.bin")
        _ = try await room.host.waitFor("the offer") { $0.type == "offer" && $0["name"] == "slow.bin" }
        let exitFile = downloads + "/../levchat-tty-exit-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: exitFile) }
        let tmux = Tmux()
        defer { tmux.kill() }
        try tmux.startShell("""
            LEVCHAT_CODE=\(room.code) NO_COLOR= '\(PeerProcess.binary.path)' join --ephemeral --name bob --peer \(room.peerArgument) \
            --bind 127.0.0.1 --downloads \(downloads); echo $? > \(exitFile); sleep 60
            """)
        try await room.host.waitFor("bob entering") { $0.isPresence("joined", "bob") }
        try await tmux.waitForScreen("bob's prompt") { $0.contains("[bob]") }
        try tmux.type("/get 1")
        try tmux.keys("Enter")
        try await tmux.waitForScreen("the download") { $0.contains("⇣ slow.bin") }
        try tmux.keys("C-d")
        try await tmux.waitForScreen("the wait said") { $0.contains("input ended: leaving once the download under way is over (Ctrl-C leaves now)") }
        try tmux.keys("C-c")
        try await room.host.waitFor("bob leaving") { $0.isPresence("left", "bob") }
        let deadline = ContinuousClock.now + .seconds(20)
        while (try? String(contentsOfFile: exitFile, encoding: .utf8))?.isEmpty ?? true, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect((try? String(contentsOfFile: exitFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(FileManager.default.fileExists(atPath: downloads + "/slow.bin.part"))
        #expect(!FileManager.default.fileExists(atPath: downloads + "/slow.bin"))
    }

    @Test func theTerminalIsPutBackOnEveryWayOut() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-tty-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bin = "'\(PeerProcess.binary.path)' join --ephemeral --name bob --peer \(room.peerArgument) --bind 127.0.0.1"
        let wrong = room.code.first == "7" ? "8" + room.code.dropFirst() : "7" + room.code.dropFirst()
        let tmux = Tmux()
        defer { tmux.kill() }
        let d = dir.path
        try tmux.startShell("""
            stty -g > \(d)/before; LEVCHAT_CODE=\(wrong) \(bin); echo $? > \(d)/wrong-exit; stty -g > \(d)/after-wrong; \
            LEVCHAT_CODE=\(room.code) \(bin); echo $? > \(d)/exit; stty -g > \(d)/after; sleep 60
            """)
        func read(_ name: String) -> String? {
            (try? String(contentsOfFile: "\(d)/\(name)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        try await room.host.waitFor("bob entering") { $0.isPresence("joined", "bob") }
        try await tmux.waitForScreen("bob's prompt") { $0.contains("[bob]") }
        let before = try #require(read("before"))
        #expect(read("wrong-exit") == "65")
        #expect(read("after-wrong") == before)

        // While the chat runs the terminal is in raw mode (so the check below can fail).
        let during = try CommandOutput.run("/bin/stty", ["-g", "-F", try tmux.paneTTY()])
        #expect(during.trimmingCharacters(in: .whitespacesAndNewlines) != before)

        try tmux.type("half a li")
        try tmux.keys("C-c")
        try await room.host.waitFor("bob leaving") { $0.isPresence("left", "bob") }
        let deadline = ContinuousClock.now + .seconds(20)
        // The shell creates the file before stty writes into it: wait for its content, not for it.
        while (read("after") ?? "").isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(read("exit") == "0")
        #expect(read("after") == before)
    }

    @Test func coloursOnlyOnATerminalAndNeverWithNoColor() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let colored = try await Self.bob(in: room)
        defer { colored.kill() }
        #expect(try !colored.rangTheBell())
        room.host.send("hi bob, colours?")
        try await colored.waitForScreen("alice's line") { $0.contains("alice: hi bob, colours?") }
        let escapes = try colored.screenWithEscapes()
        #expect(escapes.contains("38;5;"), "names are coloured on a terminal")
        // A line naming bob stands out (bold text, its time in reverse video) and rings the bell.
        #expect(escapes.contains("\u{1B}[1mhi bob, colours?") && escapes.contains(/\x1B\[(0;)?7m(\x1B\[[0-9;]*m)*\[/), "\(escapes)")
        #expect(try colored.rangTheBell())

        let plain = Tmux()
        defer { plain.kill() }
        try plain.start(PeerProcess.binary.path, ["join", "--ephemeral", "--name", "dan", "--peer", room.peerArgument, "--bind", "127.0.0.1", "--no-bell"],
                        environment: ["LEVCHAT_CODE": room.code, "NO_COLOR": "1"])
        try await plain.waitForScreen("dan's prompt") { $0.contains("[dan]") }
        room.host.send("hi dan, no colours")
        try await plain.waitForScreen("alice's line") { $0.contains("alice: hi dan, no colours") }
        let plainScreen = try plain.screenWithEscapes()
        #expect(!plainScreen.contains("\u{1B}["), "\(plainScreen)")
        #expect(try !plain.rangTheBell(), "--no-bell")

        // A pipe: today's lines exactly, no escape codes, no bell, even for a mention and /me.
        let piped = try await room.join("eve", extra: ["--color", "auto"], waitForEntry: false, json: false)
        try await piped.waitForLine("eve entering") { $0.contains("* eve has entered the room") }
        room.host.send("hi eve, plain?")
        piped.send("/me waves")
        try await piped.waitForLine("the action") { $0.hasSuffix("* eve waves") }
        try await piped.waitForLine("the mention") { $0.hasSuffix("alice: hi eve, plain?") }
        #expect(!piped.outputLines.joined().contains { $0 == "\u{1B}" || $0 == "\u{07}" }, "\(piped.outputLines)")

        let forced = try await room.join("fay", extra: ["--color", "always"], waitForEntry: false, json: false)
        try await forced.waitForLine("fay entering") { $0.contains("fay") && $0.contains("has entered the room") }
        #expect(forced.outputLines.joined().contains("\u{1B}["))
        #expect(!forced.outputLines.joined().contains("\u{07}"), "no bell when stdout is not a terminal")
    }
}
