import Foundation
import Testing

/// Nothing lost under bulk input (Docs/PROTOCOL.md, "Flow control"): a file piped into `join`
/// waits in its pipe while the send window is full, and leaving waits for every echo. The real
/// binary over loopback; the figures (lines per second, the chatter's delay) are in
/// Docs/BENCHMARKS.md, not asserted here.
@Suite(.timeLimit(.minutes(20)))
struct FlowControlTests {
    static func writeLines(_ count: Int, prefix: String) throws -> (URL, [String]) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-paste-\(UUID().uuidString).txt")
        let lines = (1...count).map { String(format: "%@ %06d: a pasted line of about the length people write in a chat", prefix, $0) }
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        return (file, lines)
    }

    /// How many lines from `name` `peer` printed so far. Counting substrings is cheap; the JSON
    /// is parsed once, at the end, by `texts`.
    static func count(from name: String, at peer: PeerProcess) -> Int {
        let marker = "\"from\":\"\(name)\""
        return peer.outputLines.lazy.filter { $0.contains(marker) }.count
    }

    /// The texts `from` sent, in the order `peer` printed them, once all `count` have arrived.
    static func texts(from name: String, count: Int, at peer: PeerProcess, timeout: Duration) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, Self.count(from: name, at: peer) < count {
            try await Task.sleep(for: .milliseconds(500))
        }
        let marker = "\"from\":\"\(name)\""
        return peer.outputLines.filter { $0.contains(marker) }.compactMap(Event.init(line:))
            .filter { $0.type == "message" && $0["from"] == name }.compactMap { $0["text"] }
    }

    /// Where two sequences of lines first differ, for a failure message.
    static func firstDifference(_ seen: [String], _ expected: [String]) -> Int {
        zip(seen, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(seen.count, expected.count)
    }

    @Test func aHundredThousandPipedLinesArriveOnceEachInOrder() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let watcher = try await room.join("watcher")
        let (file, lines) = try Self.writeLines(100_000, prefix: "paste")
        defer { try? FileManager.default.removeItem(at: file) }
        let paster = try await room.join("paster", stdinFile: file.path, waitForEntry: false)
        #expect(try await paster.waitForExit(timeout: .seconds(900)) == 0, "\(paster.errorText.suffix(2000))")
        let seen = try await Self.texts(from: "paster", count: lines.count, at: watcher, timeout: .seconds(60))
        #expect(seen.count == lines.count)
        #expect(seen == lines, "first difference at \(Self.firstDifference(seen, lines))")
    }

    /// A file piped into the host while a member is not reading (frozen, as a laptop with its lid
    /// shut): the host holds its input back instead of piling its lines up for that member, which
    /// is therefore not dropped for its backlog, and gets every line once it reads again. Before
    /// the host's window it was dropped, and resumed with only the last 1,000 lines of history.
    @Test func linesPipedIntoTheHostWaitForAMemberThatStoppedReading() async throws {
        // A small backlog, so that piling up would be seen at once; a long dead-link time, so the
        // frozen member is not dropped for its silence instead.
        let timers = ["LEVCHAT_SEND_BACKLOG_BYTES": "262144", "LEVCHAT_DEAD_AFTER_MS": "60000"]
        let room = try await LoopbackRoom(environment: timers)
        defer { room.stopAll() }
        let watcher = try await room.join("watcher", environment: timers)
        // Long lines (3.9 KB): 5,000 of them are more than the kernel's socket buffers hold.
        let filler = String(repeating: "x", count: 3_900)
        let lines = (1...5_000).map { String(format: "host %05d ", $0) + filler }
        await watcher.freeze()
        // From a thread of its own: the pipe fills while the host holds its input back, and the
        // write then blocks.
        let host = room.host
        let writer = Thread { for line in lines { host.send(line) } }
        writer.start()
        let deadline = ContinuousClock.now + .seconds(8)
        while ContinuousClock.now < deadline, Self.count(from: "alice", at: host) < lines.count {
            try await Task.sleep(for: .milliseconds(200))
        }
        let sentWhileFrozen = Self.count(from: "alice", at: host)
        watcher.signal(SIGCONT)
        let seen = try await Self.texts(from: "alice", count: lines.count, at: watcher, timeout: .seconds(300))
        #expect(sentWhileFrozen < lines.count, "the host sequenced all \(lines.count) lines while the member read none")
        #expect(seen.count == lines.count)
        #expect(seen == lines, "first difference at \(Self.firstDifference(seen, lines))")
        #expect(!host.errorText.contains("dropping connection"), "\(host.errorText.suffix(2000))")
        #expect(watcher.events.filter { $0.type == "entered" }.count == 1)
    }

    @Test func oneMemberPastingDoesNotHoldUpAnother() async throws {
        let room = try await LoopbackRoom()
        defer { room.stopAll() }
        let chatter = try await room.join("chatter")
        let (file, lines) = try Self.writeLines(20_000, prefix: "bulk")
        defer { try? FileManager.default.removeItem(at: file) }
        let paster = try await room.join("paster", stdinFile: file.path, waitForEntry: false)
        try await room.host.waitFor("the paste under way") { $0.isMessage(from: "paster", text: lines[99]) }
        let said = (1...20).map { "chatter line \($0)" }
        for line in said {
            chatter.send(line)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await paster.waitForExit(timeout: .seconds(600)) == 0, "\(paster.errorText.suffix(2000))")
        let pasted = try await Self.texts(from: "paster", count: lines.count, at: room.host, timeout: .seconds(60))
        #expect(pasted == lines)
        let chatted = try await Self.texts(from: "chatter", count: said.count, at: room.host, timeout: .seconds(60))
        #expect(chatted == said)
        // The chatter's lines went through while the paste was still coming, not after it.
        let order = room.host.outputLines.compactMap(Event.init(line:)).filter { $0.type == "message" }
        let lastChat = try #require(order.lastIndex { $0["from"] == "chatter" })
        let lastPaste = try #require(order.lastIndex { $0["from"] == "paster" })
        #expect(lastChat < lastPaste, "the chatter's last line came after the whole paste")
    }
}
