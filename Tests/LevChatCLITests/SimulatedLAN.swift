import Foundation
import Synchronization
import Testing

/// One simulated LAN (scripts/simlan) for one test: hosts in network namespaces of their own, each
/// with its own dbus-daemon and avahi-daemon, joined by a bridge in yet another namespace. Never
/// the machine's own network. Always call `down()` (in a `defer`).
final class SimulatedLAN: Sendable {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/simlan")

    /// Why the LAN tests cannot run here, or nil when they can.
    static let unavailableReason: String? = {
        guard getuid() == 0 else { return "the simulated LAN needs root (network namespaces)" }
        for tool in ["/usr/sbin/avahi-daemon", "/usr/bin/dbus-daemon", "/usr/bin/avahi-browse", "/usr/bin/avahi-publish"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "the simulated LAN needs \(tool) (apt-get install avahi-daemon avahi-utils dbus)"
        }
        return nil
    }()

    /// In CI (LEVCHAT_REQUIRE_LAN_TESTS=1) the LAN tests always run, so that a missing tool fails
    /// loudly instead of skipping.
    static let enabled = unavailableReason == nil || ProcessInfo.processInfo.environment["LEVCHAT_REQUIRE_LAN_TESTS"] == "1"
    static let skipComment = Comment(rawValue: "skipped: simulated LAN unavailable: \(unavailableReason ?? "")")

    let prefix: String
    let hosts: [String]
    private let peers = Mutex<[PeerProcess]>([])
    var environment: [String: String] { ["SIMLAN_PREFIX": prefix] }

    init(hosts: [String]) async throws {
        prefix = "lt" + String(UInt32.random(in: 0..<UInt32.max), radix: 36).prefix(6)
        self.hosts = hosts
        let (status, output) = try await SimulatedLAN.run([SimulatedLAN.script.path, "up"] + hosts, environment: ["SIMLAN_PREFIX": prefix])
        guard status == 0 else {
            _ = try? await SimulatedLAN.run([SimulatedLAN.script.path, "down"], environment: ["SIMLAN_PREFIX": prefix])
            throw PeerTestError.timedOut("simlan up failed (\(status)): \(output)")
        }
    }

    /// Stops every peer started on this LAN and everything the LAN started, and deletes its
    /// namespaces.
    func down() {
        for peer in peers.withLock({ $0 }) { peer.killNow() }
        guard let pid = try? Spawn.start(SimulatedLAN.script.path, ["down"], environment: Spawn.environment(environment)) else { return }
        ChildExit(pid: pid).waitBlocking()
    }

    /// `levchat-peer ARGS` on `host`.
    func peer(_ label: String, on host: String, _ arguments: [String], environment: [String: String] = [:]) throws -> PeerProcess {
        let peer = try PeerProcess(label, arguments, environment: self.environment.merging(environment) { $1 },
                                   prefix: [SimulatedLAN.script.path, "exec", host])
        peers.withLock { $0.append(peer) }
        return peer
    }

    /// Any command on `host`, running until it exits or the LAN goes down.
    func background(_ label: String, on host: String, _ command: [String]) throws -> PeerProcess {
        let process = try PeerProcess(label, [], environment: environment,
                                      prefix: [SimulatedLAN.script.path, "exec", host] + command, runsBinary: false)
        peers.withLock { $0.append(process) }
        return process
    }

    /// Runs a command on `host` to completion and returns its status and combined output.
    func run(on host: String, _ command: [String], timeout: Duration = .seconds(30)) async throws -> (Int32, String) {
        try await SimulatedLAN.run([SimulatedLAN.script.path, "exec", host] + command, environment: environment, timeout: timeout)
    }

    func ip(of host: String) async throws -> String {
        try await SimulatedLAN.run([SimulatedLAN.script.path, "ip", host], environment: environment).1
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func avahi(_ host: String, _ action: String) async throws {
        let (status, output) = try await SimulatedLAN.run([SimulatedLAN.script.path, "avahi", host, action], environment: environment)
        guard status == 0 else { throw PeerTestError.timedOut("simlan avahi \(host) \(action): \(output)") }
    }

    func link(_ host: String, up: Bool) async throws {
        _ = try await SimulatedLAN.run([SimulatedLAN.script.path, "link", host, up ? "up" : "down"], environment: environment)
    }

    /// Cuts the LAN in two: `hosts` on one side, the rest on the other.
    func split(_ hosts: [String]) async throws {
        let (status, output) = try await SimulatedLAN.run([SimulatedLAN.script.path, "split"] + hosts, environment: environment)
        guard status == 0 else { throw PeerTestError.timedOut("simlan split: \(output)") }
    }

    func heal() async throws {
        let (status, output) = try await SimulatedLAN.run([SimulatedLAN.script.path, "heal"], environment: environment)
        guard status == 0 else { throw PeerTestError.timedOut("simlan heal: \(output)") }
    }

    /// The `_levchat._tcp` services resolved on `host` right now, as avahi-browse prints them.
    func browse(on host: String) async throws -> [String] {
        let (_, output) = try await run(on: host, ["avahi-browse", "--resolve", "--parsable", "--terminate", "_levchat._tcp"])
        return output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("=") }
    }

    /// Polls avahi-browse on `host` until `condition` holds for its resolved lines.
    @discardableResult
    func waitForBrowse(on host: String, _ what: String, timeout: Duration = .seconds(20),
                       until condition: ([String]) -> Bool) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        var lines: [String] = []
        while ContinuousClock.now < deadline {
            lines = try await browse(on: host)
            if condition(lines) { return lines }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw PeerTestError.timedOut("avahi-browse on \(host): \(what) within \(timeout); last saw:\n\(lines.joined(separator: "\n"))")
    }

    /// Runs a command to its exit. Output goes through a file, not a pipe: daemons that `simlan up`
    /// leaves running may inherit pipe ends from this process and would keep a pipe open forever.
    static func run(_ command: [String], environment: [String: String], timeout: Duration = .seconds(60)) async throws -> (Int32, String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("simlan-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: file) }
        let output = open(file.path, O_WRONLY | O_CLOEXEC)
        guard output >= 0 else { throw Spawn.Failure.failed("cannot open \(file.path)", errno) }
        let pid: pid_t
        do {
            defer { close(output) }
            pid = try Spawn.start(command[0], Array(command.dropFirst()), environment: Spawn.environment(environment),
                                  stdout: output, stderr: output)
        }
        let exit = ChildExit(pid: pid)
        let deadline = ContinuousClock.now + timeout
        while !exit.hasExited && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if !exit.hasExited { kill(pid, SIGKILL) }
        let status = await exit.wait()
        return (status, (try? String(contentsOf: file, encoding: .utf8)) ?? "")
    }
}
