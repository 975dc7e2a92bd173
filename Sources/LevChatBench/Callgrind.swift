import Foundation
import Synchronization

/// User-space instructions per delivery of a server under `valgrind --tool=callgrind`: stable on a
/// noisy machine, unlike time. Two runs at the same room size with different message counts; the
/// difference cancels start-up and joins (Docs/BENCHMARKS.md).
struct CallgrindRun {
    let members: Int
    let messages: (few: Int, many: Int)
    let makeServer: ([String]) throws -> any BenchServer

    func instructionsPerDelivery() async throws -> Double {
        let few = try await instructions(sending: messages.few)
        let many = try await instructions(sending: messages.many)
        return Double(many - few) / Double((messages.many - messages.few) * (members - 1))
    }

    /// Total instructions of one server run in which `count` lines are sent, each delivered to
    /// every other member before the next is sent.
    private func instructions(sending count: Int) async throws -> Int {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("levchat-callgrind-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("callgrind.out")
        chmod(directory.path, 0o777)  // ngircd writes it as user nobody
        let server = try makeServer(["/usr/bin/valgrind", "--tool=callgrind", "--callgrind-out-file=\(output.path)"])
        let stats = Stats()
        do {
            let (clients, _) = try await server.connect(members, stats: stats)
            stats.state.withLock { $0.members = clients; $0.deliveries = 0 }
            for i in 0..<count {
                clients[i % members].send(Stats.plainLine)
                let target = (i + 1) * (members - 1)
                let deadline = ContinuousClock.now + .seconds(60)
                while stats.state.withLock({ $0.deliveries }) < target {
                    guard ContinuousClock.now < deadline else { throw BenchError.server("\(server.label) under valgrind stopped delivering") }
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
            for client in clients { client.finish() }
            try await Task.sleep(for: .milliseconds(500))
        } catch {
            server.process.stop()
            throw error
        }
        server.process.stop()
        guard let text = try? String(contentsOf: output, encoding: .utf8),
              let line = text.split(separator: "\n").last(where: { $0.hasPrefix("totals:") || $0.hasPrefix("summary:") }),
              let total = Int(line.split(separator: " ").last ?? "") else {
            throw BenchError.server("valgrind wrote no instruction count for \(server.label) (is valgrind installed?)")
        }
        return total
    }
}
