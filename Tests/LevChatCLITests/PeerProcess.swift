import Foundation
import Synchronization
import Testing

/// One run of the real `levchat-peer` binary, with its stdin as a pipe (or a file) and its stdout
/// and stderr collected line by line. Stopped by pid, never by name.
final class PeerProcess: Sendable {
    /// Settings that make tests easier to diagnose without changing behaviour.
    static let testEnvironment: [String: String] = [
        "LEVCHAT_LOG": "info",
    ]

    static let binary: URL = {
        if let override = ProcessInfo.processInfo.environment["LEVCHAT_BIN"] { return URL(fileURLWithPath: override) }
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for dir in [here, here.deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("levchat-peer")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return here.appendingPathComponent("levchat-peer")
    }()

    /// Where the runs' identities go: one directory for this test process, removed when it exits.
    static let stateRoot: String = {
        atexit { try? FileManager.default.removeItem(atPath: PeerProcess.stateRootPath) }
        return stateRootPath
    }()
    private static var stateRootPath: String {
        FileManager.default.temporaryDirectory.appendingPathComponent("levchat-test-state-\(getpid())").path
    }

    let label: String
    let pid: pid_t
    private let exit: ChildExit
    private let input: FileHandle?
    private let out = LineBuffer()
    private let err = LineBuffer()
    private let started = ContinuousClock.now

    /// `prefix` runs the binary through another command (for example `nsenter ...`).
    /// With `runsBinary: false`, `prefix` is the whole command.
    init(_ label: String, _ arguments: [String], environment: [String: String] = [:],
         stdinFile: String? = nil, prefix: [String] = [], runsBinary: Bool = true) throws {
        self.label = label
        let command = prefix.isEmpty ? [PeerProcess.binary.path] + arguments
                                     : prefix + (runsBinary ? [PeerProcess.binary.path] : []) + arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in PeerProcess.testEnvironment { env[k] = v }
        // Each run a user of its own (its identity and known_peers in a directory of its own),
        // unless the test gives one: never the identity of whoever runs the tests.
        env["XDG_STATE_HOME"] = PeerProcess.stateRoot + "/\(UUID().uuidString)"
        for (k, v) in environment { env[k] = v }
        let stdinFD: Int32
        if let stdinFile {
            stdinFD = open(stdinFile, O_RDONLY | O_CLOEXEC)
            guard stdinFD >= 0 else { throw Spawn.Failure.failed("cannot open \(stdinFile)", errno) }
            input = nil
        } else {
            let pipe = try Spawn.pipe()
            stdinFD = pipe.read
            // Non-blocking, so `send` can give up on a peer that takes no more input.
            _ = fcntl(pipe.write, F_SETFL, fcntl(pipe.write, F_GETFL) | O_NONBLOCK)
            input = FileHandle(fileDescriptor: pipe.write, closeOnDealloc: true)
        }
        let stdout = try Spawn.pipe(), stderr = try Spawn.pipe()
        defer { [stdinFD, stdout.write, stderr.write].forEach { _ = close($0) } }
        pid = try Spawn.start(command[0], Array(command.dropFirst()), environment: env,
                              stdin: stdinFD, stdout: stdout.write, stderr: stderr.write)
        exit = ChildExit(pid: pid)
        PeerProcess.collect(FileHandle(fileDescriptor: stdout.read, closeOnDealloc: true), into: out)
        PeerProcess.collect(FileHandle(fileDescriptor: stderr.read, closeOnDealloc: true), into: err)
    }

    var isRunning: Bool { !exit.hasExited }
    var outputLines: [String] { out.lines.withLock { $0 } }
    var errorText: String { err.lines.withLock { $0.joined(separator: "\n") } }
    var events: [Event] { outputLines.compactMap(Event.init(line:)) }

    /// Writes a line to the peer's input. A peer whose input is full (flow control holds it
    /// while its lines wait for their echoes) is waited for, up to `patience`; then the line is
    /// not sent and the test fails saying so, instead of the test run hanging on a full pipe (it
    /// did, for 19 minutes, when a host bug left bob's lines unechoed).
    func send(_ line: String, patience: Duration = .seconds(120)) {
        write(Array((line + "\n").utf8), patience: patience)
    }

    /// Bytes to the peer's standard input, as they are (a line needs its own newline).
    func write(_ whole: [UInt8], patience: Duration = .seconds(120)) {
        guard let fd = input?.fileDescriptor else { return }
        var bytes = whole[...]
        let deadline = ContinuousClock.now + patience
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written > 0 {
                bytes = bytes.dropFirst(written)
                continue
            }
            guard written < 0, errno == EAGAIN || errno == EINTR else { return }  // the peer is gone
            guard ContinuousClock.now < deadline else {
                Issue.record("\(label) took no input for \(patience); a line was not sent")
                return
            }
            var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&ready, 1, 1000)
        }
    }

    func closeInput() {
        try? input?.close()
    }

    func signal(_ signo: Int32) {
        if isRunning { kill(pid, signo) }
    }

    /// SIGSTOP, then waits until every thread of the process is stopped. `kill` returns before
    /// that: the kernel starts a process's stop only when one of its threads takes the signal, and
    /// on a loaded machine the others run on meanwhile (a host went on echoing a line sent after
    /// `kill` returned, and a test that took it for frozen failed in CI).
    func freeze() async {
        signal(SIGSTOP)
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline && isRunning && !PeerProcess.everyThreadStopped(pid) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Whether each thread's state in /proc is T (stopped) or t (traced).
    static func everyThreadStopped(_ pid: pid_t) -> Bool {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task"), !threads.isEmpty else { return false }
        return threads.allSatisfy { thread in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/stat", encoding: .utf8),
                  let nameEnd = stat.lastIndex(of: ")"), stat.distance(from: nameEnd, to: stat.endIndex) > 2 else { return false }
            let state = stat[stat.index(nameEnd, offsetBy: 2)]
            return state == "T" || state == "t"
        }
    }

    /// Waits for an event that matches, looking at every event so far (not only new ones).
    @discardableResult
    func waitFor(_ what: String, timeout: Duration = .seconds(20), _ match: (Event) -> Bool) async throws -> Event {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let hit = events.first(where: match) { return hit }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PeerTestError.timedOut("\(label): no \(what) within \(timeout)\n\(transcript)")
    }

    /// Waits until a line of stdout contains `text`.
    func waitForOutput(_ text: String, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if outputLines.contains(where: { $0.contains(text) }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PeerTestError.timedOut("\(label): stdout never said '\(text)'\n\(transcript)")
    }

    /// Waits until stderr contains `text`.
    func waitForDiagnostic(_ text: String, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if errorText.contains(text) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PeerTestError.timedOut("\(label): stderr never said '\(text)'\n\(transcript)")
    }

    func waitForExit(timeout: Duration = .seconds(20)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard let status = exit.status else { throw PeerTestError.timedOut("\(label) did not exit within \(timeout)\n\(transcript)") }
        // Let the readers take the last bytes.
        try await Task.sleep(for: .milliseconds(50))
        return status
    }

    /// Waits for a line of output (text mode) that matches.
    func waitForLine(_ what: String, timeout: Duration = .seconds(20), _ match: (String) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if outputLines.contains(where: match) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PeerTestError.timedOut("\(label): no \(what) within \(timeout)\n\(transcript)")
    }

    /// Stops the process if it still runs: SIGTERM, then SIGKILL. A process that crashed, before
    /// or on the way out, fails the test that ran it: a crash at teardown is still a crash.
    func stop() {
        defer { if exit.crashed { Issue.record("\(label) crashed (signal \(exit.status ?? 0))\n\(transcript)") } }
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if exit.waitBlocking(timeout: 3) == nil {
            kill(pid, SIGKILL)
            exit.waitBlocking()
        }
    }

    /// Ends the process at once (SIGKILL), for teardown.
    func killNow() {
        defer { if exit.crashed { Issue.record("\(label) crashed (signal \(exit.status ?? 0))\n\(transcript)") } }
        guard isRunning else { return }
        kill(pid, SIGKILL)
        exit.waitBlocking()
    }

    var transcript: String {
        "--- \(label) stdout:\n" + outputLines.joined(separator: "\n") + "\n--- \(label) stderr:\n" + errorText
    }

    private static func collect(_ handle: FileHandle, into buffer: LineBuffer) {
        let thread = Thread {
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    buffer.lines.withLock { $0.append(line) }
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            if !pending.isEmpty { buffer.lines.withLock { $0.append(String(decoding: pending, as: UTF8.self)) } }
        }
        thread.start()
    }
}

final class LineBuffer: Sendable {
    let lines = Mutex<[String]>([])
}

enum PeerTestError: Error, CustomStringConvertible {
    case timedOut(String)
    var description: String {
        switch self { case .timedOut(let s): s }
    }
}

/// One `--json` line.
struct Event: @unchecked Sendable, CustomStringConvertible {
    let fields: [String: Any]
    let line: String

    init?(line: String) {
        guard line.hasPrefix("{"), let data = line.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        fields = object
        self.line = line
    }

    var type: String? { fields["type"] as? String }
    subscript(_ key: String) -> String? { fields[key] as? String }
    func int(_ key: String) -> Int? { (fields[key] as? NSNumber)?.intValue }
    func bool(_ key: String) -> Bool? { (fields[key] as? NSNumber)?.boolValue }
    var memberNames: [String] { (fields["members"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } }
    /// A `members` entry's field, by the member's name.
    func member(_ name: String, _ key: String) -> Any? {
        (fields["members"] as? [[String: Any]] ?? []).first { ($0["name"] as? String) == name }?[key]
    }
    var hostName: String? { (fields["members"] as? [[String: Any]] ?? []).first { ($0["host"] as? Bool) == true }?["name"] as? String }
    var description: String { line }

    func isMessage(from: String, text: String) -> Bool { type == "message" && self["from"] == from && self["text"] == text }
    func isPresence(_ event: String, _ name: String) -> Bool { type == "presence" && self["event"] == event && self["name"] == name }
}

/// A room on loopback: the host and its joiners, stopped together at the end of a test.
final class LoopbackRoom: Sendable {
    let host: PeerProcess
    let code: String
    let port: Int
    /// The host's address, on loopback.
    let address: String
    private let joiners = Mutex<[PeerProcess]>([])

    init(hostName: String = "alice", address: String = "127.0.0.1", environment: [String: String] = [:]) async throws {
        self.address = address
        host = try PeerProcess(hostName, ["create", "--name", hostName, "--no-mdns", "--port", "0", "--bind", address, "--json"],
                               environment: environment)
        let room = try await host.waitFor("room event") { $0.type == "room" }
        code = try #require(room["code"])
        port = try #require(room.int("port"))
    }

    var peerArgument: String { "\(address):\(port)" }

    /// `address`: where the joiner listens and connects from, on loopback.
    func join(_ name: String, code: String? = nil, address: String = "127.0.0.1", extra: [String] = [], environment: [String: String] = [:],
              stdinFile: String? = nil, waitForEntry: Bool = true, json: Bool = true) async throws -> PeerProcess {
        let peer = try PeerProcess(name, ["join", code ?? self.code, "--name", name, "--peer", peerArgument, "--bind", address]
                                       + (json ? ["--json"] : []) + extra,
                                   environment: environment, stdinFile: stdinFile)
        joiners.withLock { $0.append(peer) }
        if waitForEntry { try await peer.waitFor("entered event") { $0.type == "entered" } }
        return peer
    }

    func stopAll() {
        for peer in joiners.withLock({ $0 }) { peer.stop() }
        host.stop()
    }
}
