#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LevChatCore
import Synchronization

/// A real member: `levchat-peer join --json` in its own process, in the bench's room. Unlike the
/// bench's simulated members it does all a member's machine does with each line (opens the
/// broadcast, verifies the sender's Ed25519 signature, checks the name, renders a JSON line), so
/// its CPU per received message is what a member pays (Docs/BENCHMARKS.md, "What a member pays").
final class RealMember: Sendable {
    let process: ServerProcess
    private let counts = Tally()
    private let entered = AsyncStream.makeStream(of: Void.self)

    private final class Tally: Sendable {
        struct Counts {
            var messages = 0
            var lastArrival = ContinuousClock.now
        }
        let state = Mutex(Counts())
    }

    init(binary: URL, port: Int, code: RoomCode) throws {
        let task = serverTask([binary.path, "join", "--peer", "127.0.0.1:\(port)", "--name", "real", "--json", "--ephemeral"])
        var environment = ProcessInfo.processInfo.environment
        environment["LEVCHAT_CODE"] = code.description
        if environment["LEVCHAT_DEAD_AFTER_MS"] == nil { environment["LEVCHAT_DEAD_AFTER_MS"] = "60000" }
        task.environment = environment
        let (input, output) = (Pipe(), Pipe())
        task.standardInput = input
        task.standardOutput = output
        task.standardError = FileHandle.nullDevice
        try launch(task)
        let handle = output.fileHandleForReading
        let (counts, entered) = (counts, entered.continuation)
        // One JSON object a line: `entered` once in, then a `message` per line received.
        Thread {
            var pending = Data()
            while case let chunk = handle.availableData, !chunk.isEmpty {
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = pending[pending.startIndex..<newline]
                    pending = pending[(newline + 1)...]
                    if line.range(of: Data(#""type":"message""#.utf8)) != nil {
                        counts.state.withLock { $0.messages += 1; $0.lastArrival = .now }
                    } else if line.range(of: Data(#""type":"entered""#.utf8)) != nil {
                        entered.yield()
                    }
                }
            }
            entered.finish()
        }.start()
        let (running, stdin) = (RunningProcess(task), input.fileHandleForWriting)
        process = ServerProcess(pid: task.processIdentifier) {
            // End of input: the member leaves.
            try? stdin.close()
            running.waitOrKill(after: .seconds(30))
        }
    }

    var messages: Int { counts.state.withLock { $0.messages } }

    /// Returns once the member is in the room; throws when it ended before.
    func waitUntilEntered() async throws {
        for await _ in entered.stream { return }
        throw BenchError.server("the real member (levchat-peer join) did not get into the room")
    }

    /// Waits until it has `count` messages, or until none has come for 2 s.
    func waitFor(_ count: Int) async throws {
        while true {
            let (have, quiet) = counts.state.withLock { ($0.messages, ContinuousClock.now - $0.lastArrival) }
            if have >= count || quiet > .seconds(2) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// One room of `size` with a real member among the bench's simulated ones: `rate` lines a second
/// for `seconds`, from the simulated members; the real member's CPU per message it received and
/// both processes' memory.
struct MemberCostRun {
    struct Result {
        let members: Int
        let offered: Int
        let received: Int
        let memberCPUMicrosPerMessage: Double
        let memberCPUPercent: Double
        let memberPrivateMiB: Double, memberPeakMiB: Double
        let hostPrivateMiB: Double, hostPeakMiB: Double
    }

    let binary: URL
    let size: Int
    let rate: Int
    let seconds: Int

    func run() async throws -> Result {
        let server = try LevChatServer(binary: binary)
        defer { server.process.stop() }
        let stats = Stats()
        let (clients, _) = try await server.connect(size - 1, stats: stats)
        stats.state.withLock { $0.members = clients }
        defer { for client in clients { client.finish() } }
        let member = try RealMember(binary: binary, port: server.port, code: server.code)
        defer { member.process.stop() }
        try await member.waitUntilEntered()
        stats.state.withLock { $0.mode = .paced }
        let (cpu0, before, start) = (member.process.cpuSeconds(), member.messages, ContinuousClock.now)
        let total = rate * seconds
        _ = try await LoadRun.offer(total, at: rate, from: clients, stats: stats)
        try await member.waitFor(before + total)
        let (cpu1, received) = (member.process.cpuSeconds(), member.messages - before)
        let wall = Double((ContinuousClock.now - start).nanoseconds) / 1e9
        return Result(members: size, offered: total, received: received,
                      memberCPUMicrosPerMessage: received > 0 ? (cpu1 - cpu0) * 1e6 / Double(received) : .nan,
                      memberCPUPercent: (cpu1 - cpu0) / wall * 100,
                      memberPrivateMiB: member.process.privateMiB(), memberPeakMiB: member.process.peakRSSMiB(),
                      hostPrivateMiB: server.process.privateMiB(), hostPeakMiB: server.process.peakRSSMiB())
    }
}
