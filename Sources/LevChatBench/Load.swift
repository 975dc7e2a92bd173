#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A relay under test: a server process (the levchat host, or ngircd) and how to put members in
/// its room.
protocol BenchServer: AnyObject, Sendable {
    var label: String { get }
    var process: ServerProcess { get }
    /// Connects `count` members, one after the other, each in the room before the next; returns
    /// them with how long each took.
    func connect(_ count: Int, stats: Stats) async throws -> (members: [any BenchMember], joinMillis: [Double])
}

/// One simulated member: sends lines, and reports every line it receives to `Stats`.
protocol BenchMember: AnyObject, Sendable {
    func send(_ text: String)
    func finish()
}

/// The same load shape for both servers (Docs/BENCHMARKS.md): at saturation each member keeps 8
/// of its lines in flight, a line counting as through when every other member has it (so no
/// member's backlog grows without bound). Deliveries are counted at every member other than the
/// sender.
final class Stats: Sendable {
    enum Mode { case idle, saturate, paced }
    struct State {
        var mode = Mode.idle
        var deliveries = 0
        var latencies: [Int64] = []
        var members: [any BenchMember] = []
        var lastDelivery: Int64 = 0
        /// Saturation lines in flight: how many members still have to receive each.
        var awaiting: [Int: Int] = [:]
        var nextLine = 0
    }
    let state = Mutex(State())
    let epoch = ContinuousClock.now
    static let window = 8
    static let bodyBytes = 100

    func nowNanos() -> Int64 { (ContinuousClock.now - epoch).nanoseconds }

    /// A member received a line from another member.
    func delivered(from sender: Int, to receiver: Int, text: Substring) {
        guard sender != receiver else { return }
        let now = nowNanos()
        let refill = state.withLock { s -> (any BenchMember, String)? in
            s.deliveries += 1
            s.lastDelivery = now
            switch s.mode {
            case .paced:
                if text.hasPrefix("t="), let end = text.firstIndex(of: ";"), let sent = Int64(text[text.index(text.startIndex, offsetBy: 2)..<end]) {
                    s.latencies.append(now - sent)
                }
                return nil
            case .saturate:
                guard text.hasPrefix("L"), let end = text.firstIndex(of: ";"), let line = Int(text[text.index(after: text.startIndex)..<end]),
                      let left = s.awaiting[line] else { return nil }
                if left > 1 {
                    s.awaiting[line] = left - 1
                    return nil
                }
                s.awaiting[line] = nil
                return (s.members[sender], Stats.loadLine(&s))
            case .idle:
                return nil
            }
        }
        if let (member, line) = refill { member.send(line) }
    }

    /// Starts saturation: every member sends its window.
    func saturate() {
        let sends = state.withLock { s -> [(any BenchMember, String)] in
            s.deliveries = 0
            s.mode = .saturate
            return s.members.flatMap { member in (0..<Stats.window).map { _ in (member, Stats.loadLine(&s)) } }
        }
        for (member, line) in sends { member.send(line) }
    }

    /// `L<n>;` and padding: a saturation line every other member must receive.
    private static func loadLine(_ s: inout State) -> String {
        let n = s.nextLine
        s.nextLine += 1
        s.awaiting[n] = s.members.count - 1
        let tag = "L\(n);"
        return tag + String(repeating: "x", count: max(0, bodyBytes - tag.utf8.count))
    }

    func stampedLine() -> String {
        let stamp = "t=\(nowNanos());"
        return stamp + String(repeating: "x", count: max(0, Stats.bodyBytes - stamp.utf8.count))
    }

    /// A line for the callgrind runs.
    static let plainLine = String(repeating: "p", count: bodyBytes)
}

/// A server's own process: its CPU time and peak memory from /proc, stopped by its pid.
final class ServerProcess: Sendable {
    let pid: Int32
    private let stopAction: @Sendable () -> Void

    init(pid: Int32, stop: @escaping @Sendable () -> Void) {
        self.pid = pid
        stopAction = stop
    }

    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return .nan }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// `VmHWM`: the most memory it has held, shared code pages included.
    func peakRSSMiB() -> Double { statusMiB("VmHWM:") }

    /// `RssAnon`: memory of its own now (heap and stacks), not the code pages every process shares.
    func privateMiB() -> Double { statusMiB("RssAnon:") }

    private func statusMiB(_ field: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }),
              let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
        return kib / 1024
    }

    func stop() { stopAction() }
}

/// A child process this bench started; Foundation reaps it, so `isRunning` (not `kill(pid, 0)`,
/// true for a zombie) says whether it is still there.
final class RunningProcess: @unchecked Sendable {  // Process is thread-safe for these calls
    private let process: Process
    var pid: Int32 { process.processIdentifier }

    init(_ process: Process) { self.process = process }

    func waitOrKill(after timeout: Duration) {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A process for `command` (its first word the executable), e.g. a wrapper, the binary, its
/// arguments.
func serverTask(_ command: [String]) -> Process {
    let task = Process()
    task.executableURL = URL(fileURLWithPath: command[0])
    task.arguments = Array(command.dropFirst())
    return task
}

/// Starts a server with no signal blocked: Foundation's `Process` hands a child the spawning
/// thread's signal mask, and the threads of Dispatch and NIO block nearly every signal, so ngIRCd
/// would otherwise never see its SIGTERM.
func launch(_ task: Process) throws {
    var none = sigset_t(), saved = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, &saved)
    defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
    try task.run()
}

/// This process's own CPU time (the load generator's).
func generatorCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// One server at one room size: join, saturate, then the paced rates.
struct LoadRun {
    struct Paced {
        let offered: Int
        let achieved: Double
        let p50: Double, p99: Double
        let lost: Int
    }

    struct Result {
        let server: String
        let members: Int
        let deliveriesPerSecond: Double
        let cpuMicrosPerDelivery: Double
        let hostCPUPercent: Double
        let generatorCPUPercent: Double
        let paced: [Paced]
        let peakRSSMiB: Double
        let privateMiB: Double
        let joinP50: Double, joinMax: Double

        /// The generator, not the server, set the pace: it used more CPU than the server and the
        /// two together filled both cores.
        var generatorBound: Bool { generatorCPUPercent > hostCPUPercent && generatorCPUPercent + hostCPUPercent > 170 }
    }

    let server: any BenchServer
    let members: Int
    let seconds: Int
    let rates: [Int]

    func run() async throws -> Result {
        let stats = Stats()
        let (clients, joins) = try await server.connect(members, stats: stats)
        stats.state.withLock { $0.members = clients }
        defer { for client in clients { client.finish() } }

        // Saturation: each member keeps a window of lines in flight.
        let (cpu0, gen0, start) = (server.process.cpuSeconds(), generatorCPUSeconds(), ContinuousClock.now)
        stats.saturate()
        try await Task.sleep(for: .seconds(seconds))
        let deliveries = stats.state.withLock { s -> Int in s.mode = .idle; return s.deliveries }
        let (cpu1, gen1) = (server.process.cpuSeconds(), generatorCPUSeconds())
        let wall = Double((ContinuousClock.now - start).nanoseconds) / 1e9
        try await LoadRun.settle(stats)

        var paced: [Paced] = []
        for rate in rates {
            stats.state.withLock { $0.mode = .paced; $0.latencies.removeAll(keepingCapacity: true) }
            let total = rate * seconds
            let sendSeconds = try await LoadRun.offer(total, at: rate, from: clients, stats: stats)
            try await LoadRun.settle(stats)
            let latencies = stats.state.withLock { s -> [Double] in s.mode = .idle; return s.latencies.sorted().map { Double($0) / 1e6 } }
            let expected = total * (members - 1)
            paced.append(Paced(offered: rate, achieved: Double(total) / sendSeconds,
                               p50: percentile(0.5, latencies), p99: percentile(0.99, latencies), lost: max(0, expected - latencies.count)))
        }
        let sortedJoins = joins.sorted()
        return Result(server: server.label, members: members,
                      deliveriesPerSecond: Double(deliveries) / wall,
                      cpuMicrosPerDelivery: deliveries > 0 ? (cpu1 - cpu0) * 1e6 / Double(deliveries) : .nan,
                      hostCPUPercent: (cpu1 - cpu0) / wall * 100, generatorCPUPercent: (gen1 - gen0) / wall * 100,
                      paced: paced, peakRSSMiB: server.process.peakRSSMiB(), privateMiB: server.process.privateMiB(),
                      joinP50: percentile(0.5, sortedJoins), joinMax: sortedJoins.last ?? 0)
    }

    /// Sends `total` time-stamped lines at `rate` a second, round robin over `clients`; returns the
    /// seconds it took (more than total/rate when the bench could not keep up).
    static func offer(_ total: Int, at rate: Int, from clients: [any BenchMember], stats: Stats) async throws -> Double {
        let begin = ContinuousClock.now
        for i in 0..<total {
            try await Task.sleep(until: begin + .nanoseconds(Int64(i) * 1_000_000_000 / Int64(rate)), clock: .continuous)
            clients[i % clients.count].send(stats.stampedLine())
        }
        return Double((ContinuousClock.now - begin).nanoseconds) / 1e9
    }

    /// Waits until nothing has arrived for 300 ms (at most 10 s): the lines in flight are through.
    static func settle(_ stats: Stats) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            if stats.nowNanos() - stats.state.withLock({ $0.lastDelivery }) > 300_000_000 { return }
        }
    }
}

func percentile(_ p: Double, _ sorted: [Double]) -> Double {
    sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

enum BenchError: Error, CustomStringConvertible {
    case missing(String), server(String)
    var description: String {
        switch self {
        case .missing(let s): s
        case .server(let s): s
        }
    }
}
