import Foundation
import LevChatCore
import LevChatTransport
import NIOCore
import Synchronization

/// Load benchmark of a real `levchat-peer` host over loopback, with the real handshake and
/// encryption. Prints, for each room size: deliveries per second at saturation, end-to-end latency
/// at a fixed offered rate, host CPU per delivery, host peak RSS, and join time.
///
///     swift build -c release && .build/release/levchat-bench [--members 2,10,50] [--seconds 3] [--rate 1000]
@main
struct Bench {
    static func main() async throws {
        let options = try Options(CommandLine.arguments.dropFirst())
        print("levchat-bench: host = \(Options.peerBinary.path); \(options.seconds) s per phase; offered rate \(options.rate) msg/s")
        CryptoCosts.printAll()
        print("")
        print("members  deliveries/s  p50 latency  p99 latency  host CPU/delivery  host peak RSS  join p50  join max")
        for members in options.members {
            let result = try await Scenario(members: members, options: options).run()
            print(result.row)
        }
    }

}

/// CPU per join handshake (each side, in this process) and per chat signature and verification.
enum CryptoCosts {
    static func printAll() {
        let code = RoomCode.random()
        let credentials = RoomCredentials(code: code, grant: RoomGrant.random())
        let rounds = 200
        var joinerTime = Duration.zero, hostTime = Duration.zero
        let clock = ContinuousClock()
        for _ in 0..<rounds {
            var joiner = ClientHandshake(credentials: RoomCredentials(code: code, grant: nil))
            var host = HostHandshake(code: code, grant: credentials.grant!)
            var t = clock.now
            let challenge = try! host.receiveHello(joiner.helloBytes)
            hostTime += clock.now - t
            t = clock.now
            let auth = try! joiner.receiveChallenge(challenge)
            joinerTime += clock.now - t
            t = clock.now
            let (ok, _) = try! host.receiveAuth(auth)
            hostTime += clock.now - t
            t = clock.now
            _ = try! joiner.receiveAuthOK(ok)
            joinerTime += clock.now - t
        }
        let identity = PeerIdentity()
        let room = credentials.grant!.roomID
        let text = String(repeating: "x", count: 100)
        var t = clock.now
        var chats: [Chat] = []
        for seq in 1...rounds { chats.append(Chat(signedBy: identity, room: room, seq: seq, text: text)) }
        let signTime = clock.now - t
        let key = Base64.encode(identity.publicKey)
        t = clock.now
        let verified = chats.filter { $0.isSigned(room: room, key: key) }.count
        let verifyTime = clock.now - t
        func micros(_ d: Duration) -> String { String(format: "%.0f µs", Double(d.nanoseconds) / 1e3 / Double(rounds)) }
        print("CPace join handshake CPU: joiner \(micros(joinerTime)), host \(micros(hostTime)) (mean of \(rounds))")
        print("Ed25519 per 100-byte chat: sign \(micros(signTime)), verify \(micros(verifyTime)) (\(verified)/\(rounds) verified)")
    }
}

struct Options {
    var members = [2, 10, 50]
    var seconds = 3
    var rate = 1000

    init(_ args: ArraySlice<String>) throws {
        var args = args
        while let flag = args.popFirst() {
            guard let value = args.popFirst() else { throw BenchError.usage("\(flag) needs a value") }
            switch flag {
            case "--members": members = value.split(separator: ",").compactMap { Int($0) }
            case "--seconds": seconds = Int(value) ?? seconds
            case "--rate": rate = Int(value) ?? rate
            default: throw BenchError.usage("unknown option \(flag)")
            }
        }
    }

    static let peerBinary: URL = {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("levchat-peer")
    }()
}

enum BenchError: Error, CustomStringConvertible {
    case usage(String), host(String)
    var description: String {
        switch self {
        case .usage(let s): "usage: \(s)"
        case .host(let s): "host: \(s)"
        }
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

/// Shared counters of every client in the run.
final class Stats: Sendable {
    enum Mode { case idle, saturate, paced }
    struct State {
        var mode = Mode.idle
        var deliveries = 0
        var latencies: [Int64] = []
    }
    let state = Mutex(State())
    let epoch = ContinuousClock.now

    func nowNanos() -> Int64 { (ContinuousClock.now - epoch).nanoseconds }
}

/// One room: a host process and N clients.
struct Scenario {
    struct Result {
        let members: Int
        let deliveriesPerSecond: Double
        let p50: Double, p99: Double
        let cpuMicrosPerDelivery: Double
        let peakRSSMiB: Double
        let joinP50: Double, joinMax: Double

        var row: String {
            String(format: "%7d  %12.0f  %8.3f ms  %8.3f ms  %14.2f µs  %10.1f MiB  %5.1f ms  %5.1f ms",
                   members, deliveriesPerSecond, p50, p99, cpuMicrosPerDelivery, peakRSSMiB, joinP50, joinMax)
        }
    }

    let members: Int
    let options: Options

    func run() async throws -> Result {
        let host = try HostProcess()
        defer { host.stop() }
        let stats = Stats()
        let keyring = RoomKeyring(code: host.code)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            var clients: [BenchClient] = []
            var joinTimes: [Double] = []
            for i in 0..<members {
                let client = BenchClient(name: "m\(i)", stats: stats)
                let start = ContinuousClock.now
                let port = host.port
                group.addTask { try await client.run(port: port, keyring: keyring) }
                try await client.waitUntilJoined()
                joinTimes.append(Double((ContinuousClock.now - start).nanoseconds) / 1e6)
                clients.append(client)
            }

            // Saturation: every client keeps a window of messages in flight.
            let cpu0 = host.cpuSeconds()
            stats.state.withLock { $0.deliveries = 0; $0.mode = .saturate }
            for client in clients { client.sendWindow() }
            try await Task.sleep(for: .seconds(options.seconds))
            let (deliveries, cpu1) = (stats.state.withLock { s -> Int in s.mode = .idle; return s.deliveries }, host.cpuSeconds())
            try await Task.sleep(for: .milliseconds(500))  // let the window drain

            // Fixed offered rate, round robin over the clients; latency from send to each receipt.
            stats.state.withLock { $0.mode = .paced; $0.latencies.removeAll(keepingCapacity: true) }
            let total = options.rate * options.seconds
            let start = ContinuousClock.now
            for i in 0..<total {
                try await Task.sleep(until: start + .nanoseconds(Int64(i) * 1_000_000_000 / Int64(options.rate)), clock: .continuous)
                clients[i % clients.count].sendStamped()
            }
            try await Task.sleep(for: .milliseconds(500))
            let latencies = stats.state.withLock { s -> [Int64] in s.mode = .idle; return s.latencies.sorted() }
            for client in clients { client.finish() }
            group.cancelAll()

            func percentile(_ p: Double, _ values: [Double]) -> Double {
                values.isEmpty ? .nan : values[min(values.count - 1, Int(Double(values.count) * p))]
            }
            let sortedJoins = joinTimes.sorted()
            return Result(
                members: members,
                deliveriesPerSecond: Double(deliveries) / Double(options.seconds),
                p50: percentile(0.5, latencies.map { Double($0) / 1e6 }),
                p99: percentile(0.99, latencies.map { Double($0) / 1e6 }),
                cpuMicrosPerDelivery: deliveries > 0 ? (cpu1 - cpu0) * 1e6 / Double(deliveries) : .nan,
                peakRSSMiB: host.peakRSSMiB(),
                joinP50: percentile(0.5, sortedJoins.isEmpty ? [0] : sortedJoins),
                joinMax: sortedJoins.last ?? 0)
        }
    }
}

/// One benchmark member: the real handshake, then a reader loop that counts deliveries.
final class BenchClient: Sendable {
    static let window = 8
    let name: String
    let identity = PeerIdentity()
    var node: NodeID { identity.node }
    let stats: Stats
    private let room = Mutex<RoomID?>(nil)
    private let queue = OutboundQueue(maxBytes: 64 << 20)
    private let joined = Mutex<Bool>(false)
    private let nextSeq = Mutex<Int>(1)

    init(name: String, stats: Stats) {
        self.name = name
        self.stats = stats
    }

    /// Bench members skip the signature checks real members make on every message (the host's
    /// cost is what is measured); they do sign what they send, as the host verifies it.
    func run(port: Int, keyring: RoomKeyring) async throws {
        let join = Join(node: node, name: name, listenPort: 0, endpoints: [], lastSeq: 0, key: Base64.encode(identity.publicKey))
        _ = queue.enqueue(WireMessage.join(join).encoded())
        try await SecureLink.connect(to: "127.0.0.1:\(port)", keyring: keyring, connectTimeout: .seconds(5),
                                     handshakeTimeout: .seconds(30)) { link in
            room.withLock { $0 = link.roomID }
            let (sealer, outbound) = (link.sealer, link.outbound)
            var reader = link.reader
            await withDiscardingTaskGroup { group in
                group.addTask { try? await SecureWriter.drain(self.queue, sealer: sealer, to: outbound) }
                while let message = try? await reader.next() {
                    switch message {
                    case .welcome(let welcome):
                        if let grant = welcome.grant {
                            reader.expectBroadcasts(BroadcastOpener(grant: grant, epoch: welcome.roster.epoch, host: welcome.roster.host))
                        }
                        joined.withLock { $0 = true }
                    case .msg(let record): received(record)
                    default: break
                    }
                }
                group.cancelAll()
            }
        }
    }

    private func received(_ record: ChatRecord) {
        let now = stats.nowNanos()
        let mode = stats.state.withLock { s -> Stats.Mode in
            s.deliveries += 1
            if s.mode == .paced, record.text.hasPrefix("t="), let sent = Int64(record.text.dropFirst(2)) {
                s.latencies.append(now - sent)
            }
            return s.mode
        }
        if mode == .saturate && record.id.node == node { send("load") }
    }

    func waitUntilJoined() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !joined.withLock({ $0 }) {
            guard ContinuousClock.now < deadline else { throw BenchError.host("\(name) did not join") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    func sendWindow() { for _ in 0..<BenchClient.window { send("load") } }
    func sendStamped() { send("t=\(stats.nowNanos())") }
    func finish() { queue.finish() }

    private func send(_ text: String) {
        let seq = nextSeq.withLock { n -> Int in defer { n += 1 }; return n }
        guard let room = room.withLock({ $0 }) else { return }
        _ = queue.enqueue(WireMessage.chat(Chat(signedBy: identity, room: room, seq: seq, text: text)).encoded())
    }
}

/// The real `levchat-peer create` in its own process, so its CPU and memory are its own.
final class HostProcess {
    let process = Process()
    let stdin = Pipe()
    let code: RoomCode
    let port: Int

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: Options.peerBinary.path) else {
            throw BenchError.host("\(Options.peerBinary.path) is missing: run 'swift build -c release' first")
        }
        process.executableURL = Options.peerBinary
        process.arguments = ["create", "--name", "host", "--no-mdns", "--port", "0", "--bind", "127.0.0.1", "--json"]
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line is the room event; after it, stdout is drained and dropped.
        var line = Data()
        let handle = stdout.fileHandleForReading
        while true {
            let byte = try handle.read(upToCount: 1) ?? Data()
            if byte.isEmpty || byte == Data([0x0A]) { break }
            line.append(byte)
        }
        guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
              let codeText = object["code"] as? String, let port = object["port"] as? Int
        else { throw BenchError.host("no room event from the host") }
        code = try RoomCode(parsing: codeText)
        self.port = port
        Thread { while !(handle.availableData.isEmpty) {} }.start()
    }

    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return .nan }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func peakRSSMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
        return kib / 1024
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
