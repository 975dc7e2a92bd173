import Crypto
import Foundation
import Testing

/// `levchat-bench` itself: usage, bad options as one sentence, and a short side-by-side run with
/// both servers on loopback (the figures are Docs/BENCHMARKS.md's business, not a test's).
@Suite(.timeLimit(.minutes(2)))
struct BenchTests {
    static let bench = PeerProcess.binary.deletingLastPathComponent().appendingPathComponent("levchat-bench")

    func run(_ arguments: [String]) async throws -> (status: Int32, output: [String], errors: String) {
        let process = try PeerProcess("bench", arguments, prefix: [Self.bench.path], runsBinary: false)
        defer { process.stop() }
        let status = try await process.waitForExit(timeout: .seconds(90))
        return (status, process.outputLines, process.errorText)
    }

    @Test func helpPrintsUsage() async throws {
        let (status, output, _) = try await run(["--help"])
        #expect(status == 0)
        let text = output.joined(separator: "\n")
        #expect(text.contains("USAGE: levchat-bench") && text.contains("--members") && text.contains("--callgrind"), "\(text)")
    }

    @Test(arguments: [
        (["--members", "1"], "--members takes room sizes from 2 to 1000"),
        (["--members", "10,,50"], "--members takes room sizes from 2 to 1000"),
        (["--rates", "100,"], "--rates takes messages per second from 1 to 100000"),
        (["--servers", "levchat,"], "--servers takes levchat, ngircd or both"),
        (["--callgrind-messages", "50,,250"], "--callgrind-messages takes two line counts"),
        (["--servers", "irc"], "--servers takes levchat, ngircd or both"),
        (["--seconds", "0"], "--seconds takes 1 to 600"),
        (["--seconds", "-2"], "--seconds takes 1 to 600, not -2"),
        (["--members", "-5"], "--members takes room sizes from 2 to 1000"),
        (["--callgrind-messages", "9,3"], "--callgrind-messages takes two line counts"),
        (["--member-threads", "idle"], "--member-threads takes batch or normal"),
        (["--frobnicate"], "Unknown option '--frobnicate'"),
        (["transfer-floor"], "give either --listen PORT (the receiving side) or --connect PORT (the sending side)"),
        (["transfer-floor", "--listen", "70000", "--into", "x", "--size", "1"], "--listen takes a port from 0 (any free one) to 65535, not 70000"),
        (["transfer-floor", "--listen", "0", "--into", "x"], "--listen needs --into FILE and --size BYTES (more than 0)"),
        (["transfer-floor", "--connect", "9", "--into", "x"], "--connect needs --from FILE"),
        (["transfer-floor", "--listen", "0", "--connect", "9"], "give either --listen PORT (the receiving side) or --connect PORT"),
    ])
    func badOptionsAreOneSentence(_ arguments: [String], _ says: String) async throws {
        let (status, _, errors) = try await run(arguments)
        #expect(status == 64)
        #expect(errors.contains(says), "\(errors)")
        #expect(!errors.contains("Fatal error") && !errors.contains("Backtrace"))
    }

    /// The work alone (`transfer-floor`): a file sealed, opened, written, hashed and made durable
    /// by two processes over 127.0.0.1 arrives byte for byte, the receiver's SHA-256 is the file's,
    /// and a sender whose file is missing says so in one sentence.
    @Test func theWorkAloneMovesAFileWhole() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-floor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // Not a whole number of 60 KiB records, so the last one is short.
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(3 << 20) + 12_345).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let source = folder.appendingPathComponent("source"), target = folder.appendingPathComponent("target")
        try Data(bytes).write(to: source)
        let receiver = try PeerProcess("floor-receiver", ["transfer-floor", "--listen", "0", "--into", target.path, "--size", "\(bytes.count)"],
                                       prefix: [Self.bench.path], runsBinary: false)
        defer { receiver.stop() }
        try await receiver.waitForLine("ready", timeout: .seconds(60)) { $0.hasPrefix("ready ") }
        let port = try #require(receiver.outputLines.first { $0.hasPrefix("ready ") }.flatMap { Int($0.dropFirst(6)) })
        let (status, _, errors) = try await run(["transfer-floor", "--connect", "\(port)", "--from", source.path])
        #expect(status == 0, "\(errors)")
        #expect(try await receiver.waitForExit(timeout: .seconds(60)) == 0, "\(receiver.errorText)")
        #expect(try Data(contentsOf: target) == Data(bytes))
        let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        #expect(receiver.outputLines.contains { $0.hasPrefix("received \(bytes.count) bytes in ") && $0.hasSuffix("sha256 \(digest)") },
                "\(receiver.outputLines)")
        let missing = try await run(["transfer-floor", "--connect", "\(port)", "--from", folder.appendingPathComponent("nothing").path])
        #expect(missing.status == 1 && missing.errors.contains("nothing: No such file or directory"), "\(missing.errors)")
        #expect(!missing.errors.contains("Fatal error"))
    }

    /// The member loops as batch threads: the kernel took it for every loop (`SCHED_BATCH` needs
    /// no privilege), and the run is whole.
    @Test func memberLoopsRunAsBatchThreadsWhenAsked() async throws {
        let (status, output, errors) = try await run(["--members", "2", "--seconds", "1", "--rates", "50", "--servers", "levchat",
                                                      "--no-real-member", "--member-threads", "batch"])
        #expect(status == 0, "\(errors)")
        #expect(output.contains("this bench's member loops: SCHED_BATCH (a delivery that wakes one does not preempt the server)"), "\(output)")
        let rows = output.filter { $0.hasPrefix("levchat-peer ") }
        #expect(rows.count == 1 && !rows[0].contains("missing"), "\(output)")
    }

    /// Both servers in CI (which installs ngircd); on a developer's machine without ngircd, the
    /// levchat half alone.
    @Test func aShortRunMeasuresBothServers() async throws {
        let both = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ngircd")
            || ProcessInfo.processInfo.environment["LEVCHAT_REQUIRE_LAN_TESTS"] == "1"
        let (status, output, errors) = try await run(["--members", "2,3", "--seconds", "1", "--rates", "50",
                                                      "--servers", both ? "levchat,ngircd" : "levchat"])
        #expect(status == 0, "\(errors)")
        let rows = output.filter { $0.hasPrefix("levchat-peer ") || $0.hasPrefix("ngircd ") }
        #expect(rows.count == (both ? 4 : 2), "\(output)")
        #expect(!rows.contains { $0.contains("missing") }, "\(rows)")
        // What a member pays: a real levchat-peer join in each room size, every line received,
        // a CPU time and memory figures.
        let header = try #require(output.firstIndex { $0.hasPrefix("members  received  member CPU/message") }, "\(output)")
        let real = output[(header + 1)...].prefix(2).map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(real.map { $0.first } == ["2", "3"], "\(output)")
        for row in real {
            #expect(row.count == 14 && row[1] == "50" && Double(row[2]).map { $0 >= 0 } == true, "\(row)")
            #expect(Double(row[6]).map { $0 > 0 } == true && Double(row[10]).map { $0 > 0 } == true, "\(row)")
        }
    }
}
